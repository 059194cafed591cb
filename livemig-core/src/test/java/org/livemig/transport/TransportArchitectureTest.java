package org.livemig.transport;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.classes;

import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import org.junit.jupiter.api.Test;

/** The transport moves bytes: it knows the JDK and the stream package (TLS also Bouncy Castle), nothing above. */
class TransportArchitectureTest {

    @Test
    void transportDependsOnlyOnTheJdkAndStream() {
        JavaClasses classes = new ClassFileImporter()
                .withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_TESTS)
                .importPackages("org.livemig.transport");
        classes().that().resideInAPackage("org.livemig.transport")
                .should().onlyDependOnClassesThat()
                .resideInAnyPackage("java..", "org.livemig.transport..", "org.livemig.stream..")
                .check(classes);
        // TLS adds the JDK's TLS and X.509 (javax.net.ssl, javax.security, javax.naming for
        // names), the JDK's ciphers (javax.crypto, under Bouncy Castle's PSK records) and Bouncy
        // Castle (PSK, PEM keys), and still nothing of livemig above it.
        classes().that().resideInAPackage("org.livemig.transport.tls..")
                .should().onlyDependOnClassesThat()
                .resideInAnyPackage("java..", "javax.net.ssl..", "javax.security..", "javax.naming..",
                        "javax.crypto..", "org.bouncycastle..", "org.livemig.transport..", "org.livemig.stream..")
                .check(classes);
    }
}
