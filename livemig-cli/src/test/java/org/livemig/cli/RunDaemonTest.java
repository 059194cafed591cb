package org.livemig.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.livemig.monitor.QmpClient;

/** {@code run --daemonize --pidfile}: returns once ready, the pid file locked while it runs and gone after. */
class RunDaemonTest {
    @TempDir
    Path dir;

    @Test
    void aDaemonIsReadyWhenRunReturnsAndItsPidFileIsLockedUntilItQuits() throws Exception {
        Path pidfile = dir.resolve("m.pid");
        Path sock = dir.resolve("m.sock");
        Cli.Run r = Cli.run("run", "--ram", "16M", "--vcpus", "1", "--workload", "idle", "--no-warm-up", "--qmp", "unix:" + sock,
                "--daemonize", "--pidfile", pidfile.toString());
        long pid = -1;
        try {
            assertThat(r.status()).as(r.all()).isZero();
            assertThat(r.err()).containsPattern("livemig run: ready: pid \\d+, QMP on unix:" + sock + ", guest running");
            // Ready means ready: the socket answers and the pid file names the live process, at once.
            pid = Long.parseLong(Files.readString(pidfile).strip());
            assertThat(ProcessHandle.of(pid)).isPresent().get().matches(ProcessHandle::isAlive);
            try (QmpClient c = QmpClient.connect("unix:" + sock)) {
                c.negotiate();
                assertThat(c.execute("query-status").path("status").asString()).isEqualTo("running");
            }
            Cli.Run second = Cli.run("run", "--ram", "16M", "--no-warm-up", "--qmp", "unix:" + dir.resolve("other.sock"),
                    "--pidfile", pidfile.toString());
            assertThat(second.status()).isEqualTo(ExitCodes.USAGE);
            assertThat(second.err()).contains("--pidfile " + pidfile + " is locked by a running machine (pid " + pid + ")");
            try (QmpClient c = QmpClient.connect("unix:" + sock)) {
                c.negotiate();
                c.execute("quit");
            }
            ProcessHandle h = ProcessHandle.of(pid).orElse(null);
            if (h != null) {
                h.onExit().get(30, java.util.concurrent.TimeUnit.SECONDS);
            }
            await().atMost(Duration.ofSeconds(10)).until(() -> !Files.exists(pidfile));
            assertThat(sock).doesNotExist();
        } finally {
            if (pid > 0) {
                ProcessHandle.of(pid).ifPresent(ProcessHandle::destroyForcibly);
            }
        }
    }

    @Test
    void aDaemonThatCannotStartReportsWhyAndItsStatus() {
        Cli.Run r = Cli.run("run", "--ram", "16M", "--no-warm-up", "--workload", "warp", "--qmp", "unix:" + dir.resolve("x.sock"),
                "--daemonize");
        assertThat(r.status()).isEqualTo(ExitCodes.USAGE);
        assertThat(r.err()).contains("warp").contains("the machine did not get ready: its process exited with status 2");
        assertThat(Cli.run("run", "--daemonize").status()).isEqualTo(ExitCodes.USAGE);
    }
}
