package org.livemig.arch;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;

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
}
