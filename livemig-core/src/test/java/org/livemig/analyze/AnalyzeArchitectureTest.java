package org.livemig.analyze;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.classes;

import com.tngtech.archunit.core.importer.ImportOption;
import com.tngtech.archunit.junit.AnalyzeClasses;
import com.tngtech.archunit.junit.ArchTest;
import com.tngtech.archunit.lang.ArchRule;

/** The analyze package stands on the stream codecs and Jackson only: no machine, migration or monitor. */
@AnalyzeClasses(packages = "org.livemig", importOptions = ImportOption.DoNotIncludeTests.class)
class AnalyzeArchitectureTest {
    @ArchTest
    static final ArchRule onlyStreamAndJackson = classes().that().resideInAPackage("org.livemig.analyze..")
            .should().onlyDependOnClassesThat()
            .resideInAnyPackage("java..", "org.livemig.analyze..", "org.livemig.stream..", "tools.jackson..");
}
