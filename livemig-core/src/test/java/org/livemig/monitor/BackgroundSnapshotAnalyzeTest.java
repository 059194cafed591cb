package org.livemig.monitor;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.livemig.analyze.Analysis;
import org.livemig.analyze.Analyzer;
import org.livemig.machine.RunState;
import org.livemig.stream.QemuStream;

/**
 * A background snapshot of a running guest, taken over QMP as QEMU's users take it
 * ({@code background-snapshot} on, {@code migrate} to a file), by a real QEMU 7.2 (skipped
 * without one or when its kernel lacks userfaultfd write-protect) and by livemig: the migration
 * completes with the guest running on, and {@code analyze} reads the file through, its RAM block
 * whole and its trailer found.
 */
class BackgroundSnapshotAnalyzeTest {
    private static final long RAM = 32L << 20;

    @TempDir
    Path dir;

    private final List<AutoCloseable> open = new ArrayList<>();

    @AfterEach
    void closeAll() throws Exception {
        Collections.reverse(open);
        for (AutoCloseable c : open) {
            c.close();
        }
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"qemu", "livemig"})
    void aBackgroundSnapshotAnalyzes(String backend) throws Exception {
        QmpVm vm = backend.equals("qemu") ? QemuVm.start(dir, "src", false)
                : LivemigVm.start(dir, LivemigVm.config("src", RAM, "ab:2000"), RunState.RUNNING);
        open.add(vm);
        vm.caps("background-snapshot");
        Path file = dir.resolve(backend + ".mig");
        vm.cmd("migrate", "uri", "exec:cat > " + file);
        await().atMost(QmpVm.LONG).until(() -> List.of("completed", "failed").contains(vm.migrationStatus()));
        String error = vm.cmd("query-migrate").path("error-desc").asString("");
        if (vm.isQemu()) {
            Assumptions.assumeFalse(error.contains("not supported by host kernel"), error);
        }
        assertThat(vm.migrationStatus()).as(error).isEqualTo("completed");
        assertThat(vm.runState()).as("the guest ran on").isEqualTo("running");
        // exec's cat may still be writing when the migration completes: the file reads once it is whole.
        Analysis whole = await().atMost(QmpVm.LONG).ignoreExceptions()
                .until(() -> Analyzer.analyzeFile(file, Analyzer.Options.DEFAULT), x -> x != null);
        try (Analysis a = whole) {
            assertThat(a.ram().blocks()).containsKey("pc.ram");
            assertThat(a.ram().block("pc.ram").usedLength()).isEqualTo(RAM);
            assertThat(a.mappedRam()).isEmpty();
            assertThat(a.desc()).as("vmdesc trailer").isNotNull();
            assertThat(a.stats().sections(QemuStream.SECTION_FULL)).isPositive();
            assertThat(a.stats().trailingBytes).isZero();
        }
    }
}
