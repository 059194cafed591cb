package org.livemig.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.livemig.migration.WarmUp;
import org.livemig.transport.tls.TlsWarmUp;

/**
 * {@code livemig run}'s warm-ups start once the monitor can greet, and a migration started during
 * them still gives way and completes (issue 21). Child processes, as a machine runs.
 */
class RunWarmUpTest {
    private static final Duration LONG = Duration.ofMinutes(2);
    @TempDir
    Path dir;
    private final List<QmpSide> sides = new ArrayList<>();

    @AfterEach
    void closeAll() throws Exception {
        for (QmpSide s : sides) {
            s.close();
        }
    }

    private static MachineOptions machine(String fill) {
        MachineOptions m = new MachineOptions();
        m.ram = "32M";
        m.vcpus = 1;
        m.workload = "idle";
        m.fill = fill;
        m.blobSize = "64K";
        m.seed = 5;
        return m;
    }

    private QmpSide start(String fill, boolean incoming, List<String> extra) throws IOException, InterruptedException {
        QmpSide s = QmpSide.start(machine(fill), incoming, dir, (incoming ? "dst" : "src") + sides.size(), extra);
        sides.add(s);
        return s;
    }

    /** Whether the process has a thread whose name (as Linux keeps it, 15 characters) starts {@code name}'s. */
    private static boolean hasThread(long pid, String name) throws IOException {
        String comm = name.length() > 15 ? name.substring(0, 15) : name;
        try (var tasks = Files.list(Path.of("/proc/" + pid + "/task"))) {
            for (Path t : tasks.toList()) {
                try {
                    if (Files.readString(t.resolve("comm")).strip().equals(comm)) {
                        return true;
                    }
                } catch (IOException e) {
                    // the thread ended meanwhile
                }
            }
        }
        return false;
    }

    @Test
    void tlsWarmUpRunsBehindAMonitorThatAlreadyAnswers() throws Exception {
        Path psk = Files.createDirectories(dir.resolve("psk"));
        byte[] key = new byte[16];
        new SecureRandom().nextBytes(key);
        Files.writeString(psk.resolve("keys.psk"), "qemu:" + HexFormat.of().formatHex(key) + "\n");
        // Before, the TLS warm-up ran on the main thread ahead of the monitor (seconds): no
        // thread of its name existed, and the greeting waited for it.
        QmpSide dst = start("zero", true, List.of("-S", "--object", "tls-creds-psk,id=tls0,endpoint=server,dir=" + psk));
        await().atMost(LONG).until(() -> hasThread(dst.pid(), TlsWarmUp.THREAD_NAME));
        assertThat(dst.status()).isEqualTo("inmigrate");
        // then the scratch migrations, on their own thread, as without TLS
        await().atMost(LONG).until(() -> hasThread(dst.pid(), WarmUp.THREAD_NAME));
    }

    @Test
    void aMigrationStartedDuringTheWarmUpCompletesAndTheWarmUpGivesWay() throws Exception {
        // Far more rounds than the test takes, so that the warm-up is still running when the
        // migration starts however slowly the destination starts (seven rounds can end first).
        QmpSide src = start("random", false, List.of("--x-warm-up-rounds", "100000"));
        QmpSide dst = start("zero", true, List.of("-S", "--no-warm-up"));
        src.setCapabilities(java.util.Map.of("events", true));
        String uri = "unix:" + dir.resolve("mig.sock");
        dst.migrateIncoming(uri);
        // The source's warm-up has just started (its greeting came first); it gives way.
        await().atMost(LONG).until(() -> hasThread(src.pid(), WarmUp.THREAD_NAME));
        src.migrate(uri);
        await().atMost(LONG).until(() -> src.queryMigrate().path("status").asString("none").equals("completed"));
        await().atMost(LONG).until(() -> dst.queryMigrate().path("status").asString("none").equals("completed"));
        assertThat(dst.fingerprint(false).get("ram")).isEqualTo(src.fingerprint(false).get("ram"));
        await().atMost(LONG).until(() -> !hasThread(src.pid(), WarmUp.THREAD_NAME));
    }
}
