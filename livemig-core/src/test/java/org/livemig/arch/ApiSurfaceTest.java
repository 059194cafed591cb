package org.livemig.arch;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.codeUnits;
import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.fields;
import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;

import com.tngtech.archunit.base.DescribedPredicate;
import com.tngtech.archunit.core.domain.JavaClass;
import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.domain.JavaCodeUnit;
import com.tngtech.archunit.core.domain.JavaModifier;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import com.tngtech.archunit.lang.ArchCondition;
import com.tngtech.archunit.lang.ConditionEvents;
import com.tngtech.archunit.lang.SimpleConditionEvent;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The library API ({@code org.livemig.api}, the package the module exports) shows an embedding
 * application nothing of the internals: its public signatures use only the JDK's types and its
 * own, it has no public mutable field, and nothing inside livemig depends on it.
 */
class ApiSurfaceTest {
    private static JavaClasses classes;

    @BeforeAll
    static void importClasses() {
        classes = new ClassFileImporter().withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_TESTS)
                .importPackages("org.livemig");
    }

    private static boolean allowed(JavaClass c) {
        JavaClass base = c.isArray() ? c.getBaseComponentType() : c;
        String p = base.getPackageName();
        return base.isPrimitive() || p.startsWith("java.") || p.equals("org.livemig.api");
    }

    private static final DescribedPredicate<JavaCodeUnit> PUBLIC_API = DescribedPredicate.describe("public API",
            u -> u.getModifiers().contains(JavaModifier.PUBLIC) && u.getOwner().getModifiers().contains(JavaModifier.PUBLIC)
                    && u.getOwner().getPackageName().equals("org.livemig.api"));

    @Test
    void publicSignaturesUseOnlyJdkAndApiTypes() {
        codeUnits().that(PUBLIC_API).should(new ArchCondition<>("use only java.* and org.livemig.api types") {
            @Override
            public void check(JavaCodeUnit u, ConditionEvents events) {
                List<JavaClass> types = new ArrayList<>(u.getRawParameterTypes());
                types.add(u.getRawReturnType());
                u.getThrowsClause().getTypes().forEach(types::add);
                for (JavaClass t : types) {
                    if (!allowed(t)) {
                        events.add(SimpleConditionEvent.violated(u, u.getFullName() + " exposes " + t.getName()));
                    }
                }
            }
        }).check(classes);
    }

    @Test
    void noPublicMutableFields() {
        fields().that().areDeclaredInClassesThat().resideInAPackage("org.livemig.api").and().arePublic()
                .should().beFinal().allowEmptyShould(true).check(classes);
    }

    @Test
    void nothingInsideDependsOnTheApi() {
        noClasses().that().resideOutsideOfPackage("org.livemig.api")
                .should().dependOnClassesThat().resideInAPackage("org.livemig.api").check(classes);
    }
}
