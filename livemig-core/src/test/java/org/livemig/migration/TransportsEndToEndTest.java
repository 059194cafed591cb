package org.livemig.migration;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.nio.file.Path;
import java.time.Duration;
import java.util.Set;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.livemig.machine.RunState;

/** Migrations over file: and exec:, and the threads a live migration runs on. */
class TransportsEndToEndTest {
    private static final Duration LONG = Duration.ofSeconds(60);

    @TempDir
    Path dir;

    private static void migrateVia(PrecopyTest.Pair p, String out, String in) throws Exception {
        p.params(m -> m.maxBandwidth = 0);
        Outgoing o = p.migrate(out);
        await().atMost(LONG).until(() -> o.status().isFinal());
        assertThat(o.status()).as(String.valueOf(o.error())).isEqualTo(MigrationStatus.COMPLETED);
        p.listen(in);
        await().atMost(LONG).until(() -> p.dstMig().incoming().status().isFinal());
        assertThat(p.dstMig().incoming().status()).as(String.valueOf(p.dstMig().incoming().error()))
                .isEqualTo(MigrationStatus.COMPLETED);
        assertThat(TestMachines.fingerprint(p.dst()).get("ram")).isEqualTo(TestMachines.fingerprint(p.src()).get("ram"));
        assertThat(TestMachines.fingerprint(p.dst()).get("devices")).isEqualTo(TestMachines.fingerprint(p.src()).get("devices"));
    }

    @Test
    void fileMigrationSavesAndTheIncomingSideLoadsIt() throws Exception {
        try (PrecopyTest.Pair p = PrecopyTest.Pair.of(TestMachines.small("ab:20000"))) {
            Path f = dir.resolve("vm.mig");
            migrateVia(p, "file:" + f, "file:" + f);
        }
    }

    @Test
    void execMigrationWritesToTheCommandAndReadsFromIt() throws Exception {
        try (PrecopyTest.Pair p = PrecopyTest.Pair.of(TestMachines.small("ab:20000"))) {
            Path f = dir.resolve("vm.gz");
            migrateVia(p, "exec:gzip -1 > " + f, "exec:gzip -dc " + f);
        }
    }

    @Test
    void migrationThreadsHaveQemusNames() throws Exception {
        try (PrecopyTest.Pair p = PrecopyTest.Pair.of(TestMachines.small("idle").withFill(org.livemig.machine.Machine.Fill.RANDOM))) {
            p.params(m -> m.maxBandwidth = 4L << 20);
            p.cap(Capability.RETURN_PATH);
            Outgoing o = p.migrate(p.listen("tcp:127.0.0.1:0"));
            await().atMost(LONG).until(() -> o.status() == MigrationStatus.ACTIVE
                    && p.dstMig().incoming().status() == MigrationStatus.ACTIVE);
            Set<String> names = Thread.getAllStackTraces().keySet().stream().map(Thread::getName).collect(Collectors.toSet());
            assertThat(names).contains("main", "CPU 0/livemig", "CPU 1/livemig", "mig/src/main", "mig/src/rp_thr", "mig/dst/main");
            assertThat(o.thread().getName()).isEqualTo("mig/src/main");
            p.srcMig().cancel();
            await().atMost(LONG).until(() -> o.status().isFinal());
            assertThat(p.src().runState()).isEqualTo(RunState.RUNNING);
        }
    }
}
