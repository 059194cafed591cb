package org.livemig.arch;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.classes;
import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;
import static com.tngtech.archunit.library.dependencies.SlicesRuleDefinition.slices;

import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The package rules of ARCHITECTURE.md: dependencies point from monitor down to migration, then
 * to stream/transport/vmstate, then to the machine and its memory. One departure: {@code memory}
 * is a leaf and {@code machine} sits above it and {@code vmstate}, because a Machine owns its
 * GuestRam and describes its devices with VMState.
 */
class PackageRulesTest {
    private static JavaClasses classes;

    @BeforeAll
    static void importClasses() {
        classes = new ClassFileImporter().withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_TESTS)
                .importPackages("org.livemig");
    }

    private static void forbid(String pkg, String... others) {
        String[] patterns = new String[others.length];
        for (int i = 0; i < others.length; i++) {
            patterns[i] = "org.livemig." + others[i] + "..";
        }
        noClasses().that().resideInAPackage("org.livemig." + pkg + "..")
                .should().dependOnClassesThat().resideInAnyPackage(patterns)
                .because("ARCHITECTURE.md: " + pkg + " must not depend on " + String.join(", ", others))
                .allowEmptyShould(true)
                .check(classes);
    }

    @Test
    void machineDoesNotKnowMigrationOrMonitor() {
        forbid("machine", "migration", "monitor", "transport", "stream", "analyze");
    }

    @Test
    void memoryIsALeaf() {
        forbid("memory", "machine", "vmstate", "stream", "transport", "migration", "monitor", "analyze", "trace");
    }

    @Test
    void vmstateDoesNotKnowMachineMigrationOrMonitor() {
        forbid("vmstate", "machine", "migration", "monitor", "transport", "analyze");
    }

    @Test
    void streamKnowsOnlyItself() {
        forbid("stream", "machine", "memory", "vmstate", "transport", "migration", "monitor", "analyze");
    }

    @Test
    void transportDoesNotKnowMigrationOrMonitor() {
        forbid("transport", "machine", "memory", "vmstate", "migration", "monitor", "analyze");
    }

    @Test
    void securityKnowsNothingAboveTransport() {
        forbid("security", "migration", "monitor", "machine", "memory", "vmstate", "stream", "analyze", "relay");
    }

    @Test
    void migrationDoesNotKnowMonitor() {
        forbid("migration", "monitor");
    }

    @Test
    void relayWorksOnStreamsNotMachines() {
        forbid("relay", "machine", "migration", "monitor", "vmstate", "memory");
    }

    @Test
    void analyzeReadsStreamsWithoutAMachine() {
        forbid("analyze", "machine", "migration", "monitor");
    }

    @Test
    void securityDoesNotKnowMigrationOrMonitor() {
        forbid("security", "migration", "monitor", "machine", "analyze", "relay");
    }

    @Test
    void traceIsALeaf() {
        forbid("trace", "machine", "memory", "vmstate", "stream", "transport", "migration", "monitor", "analyze",
                "relay", "security");
    }

    @Test
    void monitorIsTheTop() {
        forbid("analyze", "relay");
        for (String pkg : new String[] {"memory", "machine", "vmstate", "stream", "transport", "migration", "security",
                "analyze", "relay", "trace"}) {
            forbid(pkg, "monitor");
        }
    }

    @Test
    void theRamCoreDoesNotKnowDemandPaging() {
        noClasses().that().resideInAPackage("org.livemig.memory")
                .should().dependOnClassesThat().resideInAPackage("org.livemig.memory.postcopy..")
                .because("ARCHITECTURE.md: memory.postcopy builds on memory, not the other way")
                .check(classes);
    }

    @Test
    void migrationSubPackagesDoNotKnowEachOther() {
        String[] subs = {"postcopy", "multifd", "colo"};
        for (String a : subs) {
            for (String b : subs) {
                if (!a.equals(b)) {
                    noClasses().that().resideInAPackage("org.livemig.migration." + a + "..")
                            .should().dependOnClassesThat().resideInAPackage("org.livemig.migration." + b + "..")
                            .because("ARCHITECTURE.md: migration's sub-packages are reached through Outgoing and Incoming")
                            .allowEmptyShould(true)
                            .check(classes);
                }
            }
        }
    }

    @Test
    void multifdKnowsNoMigrationState() {
        noClasses().that().resideInAPackage("org.livemig.migration.multifd..")
                .should().dependOnClassesThat().resideInAPackage("org.livemig.migration")
                .because("multifd channels move pages between RAM blocks and connections; they know no migration")
                .check(classes);
    }

    @Test
    void onlyTheMigrationsReachTheirSubPackages() {
        for (String sub : new String[] {"postcopy", "multifd", "colo"}) {
            noClasses().that().resideInAPackage("org.livemig.migration")
                    .and().haveNameNotMatching("org\\.livemig\\.migration\\.(Migration|Outgoing|Incoming|RamSaver|RamLoader)(\\$.*)?")
                    .should().dependOnClassesThat().resideInAPackage("org.livemig.migration." + sub + "..")
                    .because("a sub-package is started by the migration that owns it (and RAM hands pages to multifd)")
                    .allowEmptyShould(true)
                    .check(classes);
        }
    }

    @Test
    void livemigLogsThroughSystemLoggerOnly() {
        // An embedding application routes System.Logger to its own framework; java.util.logging
        // is the command line's backend, configured there (cli.LogSetup), never used here.
        noClasses().that().resideInAPackage("org.livemig..")
                .should().dependOnClassesThat().resideInAPackage("java.util.logging..")
                .because("livemig logs through System.Logger").check(classes);
    }

    @Test
    void topLevelPackagesHaveNoCycles() {
        slices().matching("org.livemig.(*)..").should().beFreeOfCycles().check(classes);
    }
}
