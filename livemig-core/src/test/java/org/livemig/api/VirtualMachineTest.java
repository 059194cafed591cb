package org.livemig.api;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.livemig.migration.Capability;
import org.livemig.migration.MigrationStatus;

/** The library API end to end: what the README's embedding examples do, and how it fails. */
class VirtualMachineTest {
    private static final Duration LONG = Duration.ofSeconds(90);
    private static final long RAM = 32L << 20;

    @TempDir
    Path dir;

    @Test
    void twoMachinesInOneJvmMigrateOverASocketAndHoldTheSameState() throws Exception {
        MachineSpec spec = MachineSpec.of("src", RAM).withWorkload("ab:20000").withFill(MachineSpec.Fill.RANDOM);
        try (VirtualMachine src = VirtualMachine.start(spec);
             VirtualMachine dst = VirtualMachine.startIncoming(spec.withName("dst").withFill(MachineSpec.Fill.ZERO))) {
            assertThat(src.runState()).isEqualTo("running");
            assertThat(dst.runState()).isEqualTo("inmigrate");
            IncomingMigration in = dst.listen("tcp:127.0.0.1:0", MigrationOptions.DEFAULTS);
            assertThat(in.uri()).matches("tcp:127\\.0\\.0\\.1:[1-9]\\d*");
            OutgoingMigration out = src.migrate(in.uri(), MigrationOptions.DEFAULTS.withMaxBandwidth(0)
                    .withDowntimeLimit(Duration.ofMillis(300)).with(MigrationCapability.EVENTS));
            MigrationInfo done = out.awaitCompletion(LONG);
            in.awaitCompletion(LONG);
            assertThat(done.state()).isEqualTo(MigrationState.COMPLETED);
            assertThat(done.transferredBytes()).isGreaterThan(RAM / 2);
            assertThat(done.downtimeMillis()).isBetween(0L, 10_000L);
            assertThat(src.runState()).isEqualTo("postmigrate");
            assertThat(dst.runState()).isEqualTo("paused"); // not started on arrival: checked first
            Fingerprint a = src.fingerprint();
            Fingerprint b = dst.fingerprint();
            assertThat(b.sameStateAs(a)).as(a + " vs " + b).isTrue();
            assertThat(b.workloadCheck()).as(b.workloadDetail()).isTrue();
            dst.resume();
            assertThat(dst.runState()).isEqualTo("running");
        }
    }

    @Test
    void aMachineSavedToAFileLoadsBackWithTheSameState() throws Exception {
        Path file = dir.resolve("vm.mig");
        MachineSpec spec = MachineSpec.of("saved", RAM).withWorkload("ab:20000").withFill(MachineSpec.Fill.MIXED);
        Fingerprint saved;
        try (VirtualMachine vm = VirtualMachine.start(spec)) {
            vm.pause();
            vm.migrate("file:" + file, MigrationOptions.DEFAULTS).awaitCompletion(LONG);
            saved = vm.fingerprint();
        }
        assertThat(Files.size(file)).isGreaterThan(RAM / 4);
        try (VirtualMachine vm = VirtualMachine.startIncoming(spec.withName("loaded").withFill(MachineSpec.Fill.ZERO))) {
            vm.listen("file:" + file, MigrationOptions.DEFAULTS).awaitCompletion(LONG);
            Fingerprint loaded = vm.fingerprint();
            assertThat(loaded.sameStateAs(saved)).as(saved + " vs " + loaded).isTrue();
            assertThat(vm.fingerprint().workloadCheck()).isTrue();
        }
    }

    @Test
    void aMigrationToNowhereFailsWithQemusWordsAndTheGuestRunsOn() throws Exception {
        try (VirtualMachine src = VirtualMachine.start(MachineSpec.of("src", RAM).withWorkload("idle"))) {
            Fingerprint before;
            src.pause();
            before = src.fingerprint();
            src.resume();
            OutgoingMigration out = src.migrate("unix:" + dir.resolve("nobody.sock"), MigrationOptions.DEFAULTS);
            assertThatThrownBy(() -> out.awaitCompletion(LONG)).isInstanceOf(MigrationFailedException.class)
                    .hasMessageContaining("outgoing migration failed").hasMessageContaining("nobody.sock");
            assertThat(out.state()).isEqualTo(MigrationState.FAILED);
            assertThat(src.runState()).isEqualTo("running");
            src.pause();
            assertThat(src.fingerprint().ram()).as("RAM untouched by the failed migration").isEqualTo(before.ram());
        }
    }

    @Test
    void optionsAreCheckedAsQmpChecksThem() throws Exception {
        try (VirtualMachine vm = VirtualMachine.start(MachineSpec.of("vm", RAM).withWorkload("idle"))) {
            assertThatThrownBy(() -> vm.migrate("tcp:127.0.0.1:1", MigrationOptions.DEFAULTS.withParameter("multifd-channels", 0)))
                    .isInstanceOf(MigrationFailedException.class)
                    .hasMessage("Parameter 'multifd_channels' expects a value between 1 and 255");
            assertThatThrownBy(() -> vm.migrate("tcp:127.0.0.1:1", MigrationOptions.DEFAULTS.withParameter("no-such", 1)))
                    .isInstanceOf(MigrationFailedException.class).hasMessageContaining("no-such");
            assertThatThrownBy(() -> MigrationOptions.DEFAULTS.withParameter("max-bandwidth", 1.5))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("Double");
            assertThatThrownBy(() -> vm.listen("tcp:127.0.0.1:1", MigrationOptions.DEFAULTS))
                    .isInstanceOf(MigrationFailedException.class); // not an incoming machine (QEMU's words)
            assertThat(vm.runState()).isEqualTo("running");
        }
    }

    @Test
    void theApiNamesEveryCapabilityAndStatusLivemigHas() {
        assertThat(Arrays.stream(MigrationCapability.values()).map(MigrationCapability::qemuName))
                .containsExactlyInAnyOrderElementsOf(Arrays.stream(Capability.values()).map(Capability::qemuName).toList());
        for (MigrationStatus s : MigrationStatus.values()) {
            assertThat(MigrationState.ofQemuName(s.qemuName()).qemuName()).isEqualTo(s.qemuName());
        }
    }
}
