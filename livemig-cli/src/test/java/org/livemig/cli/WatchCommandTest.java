package org.livemig.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.livemig.monitor.QmpClient;
import org.livemig.testing.HostTools;
import picocli.CommandLine;
import tools.jackson.databind.node.ObjectNode;

/** {@code livemig watch} attached to a livemig source and to a real QEMU 7.2 source while they migrate. */
class WatchCommandTest {
    private static final Duration WAIT = Duration.ofSeconds(120);

    @TempDir
    Path dir;

    /** A watch running on its own thread, its output kept. */
    private record Watch(CompletableFuture<Integer> status, StringWriter out, StringWriter err) {
        static Watch start(boolean terminal, String... args) {
            WatchCommand w = new WatchCommand();
            w.terminal = terminal;
            CommandLine cl = new CommandLine(w);
            StringWriter out = new StringWriter();
            StringWriter err = new StringWriter();
            cl.setOut(new PrintWriter(out, true));
            cl.setErr(new PrintWriter(err, true));
            CompletableFuture<Integer> status = new CompletableFuture<>();
            Thread.ofPlatform().name("watch").start(() -> status.complete(cl.execute(args)));
            return new Watch(status, out, err);
        }

        int await() throws Exception {
            return status.get(WAIT.toSeconds(), TimeUnit.SECONDS);
        }
    }

    private static int freePort() throws Exception {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }

    private static MachineOptions machine(String fill) {
        MachineOptions m = new MachineOptions();
        m.ram = "64M";
        m.vcpus = 1;
        m.workload = "idle";
        m.fill = fill;
        m.blobSize = "64K";
        m.seed = 3;
        return m;
    }

    @Test
    void watchesALivemigMigrationToItsEndAndSummarises() throws Exception {
        try (QmpSide src = QmpSide.start(machine("random"), false, dir, "src");
             QmpSide dst = QmpSide.start(machine("zero"), true, dir, "dst")) {
            String socket = dir.resolve("src.qmp").toString();
            Watch plain = Watch.start(false, socket, "--interval", "0.1");
            Watch bar = Watch.start(true, "unix:" + socket, "--interval", "0.1");
            await().atMost(WAIT).until(() -> plain.out().toString().contains("no migration yet")
                    && bar.out().toString().contains("no migration yet"));
            ObjectNode p = QmpClient.args("max-bandwidth", 32L << 20); // 64 MiB in about 2 s
            src.setParameters(p);
            String uri = "tcp:127.0.0.1:" + freePort();
            dst.migrateIncoming(uri);
            src.migrate(uri);
            assertThat(plain.await()).as(plain.err().toString()).isZero();
            assertThat(bar.await()).as(bar.err().toString()).isZero();
            String lines = plain.out().toString();
            assertThat(lines).containsPattern("(?m)^active: +\\d+% of RAM sent \\(.* left\\), \\d+ Mbit/s, dirty syncs \\d+")
                    .contains("migration completed").contains("total time").contains("downtime").contains("normal pages");
            assertThat(lines).doesNotContain("\r").doesNotContain("\033[");
            assertThat(bar.out().toString()).contains("\r[").containsPattern("\\[#+\\.*\\] active").contains("migration completed");
            assertThat(dst.queryMigrate().path("status").asString()).isEqualTo("completed");
        }
    }

    @Test
    void watchesARealQemuMigration() throws Exception {
        Path srcDir = Files.createDirectories(dir.resolve("qsrc"));
        Path dstDir = Files.createDirectories(dir.resolve("qdst"));
        // A QEMU QMP socket serves one client at a time: the watch gets a monitor of its own, as a user gives it one.
        Path watchSocket = srcDir.resolve("watch.sock");
        HostTools.Qemu src = HostTools.startQemu(srcDir, "-accel", "tcg", "-M", "pc", "-m", "64M", "-nodefaults", "-display", "none",
                "-qmp", "unix:" + watchSocket + ",server=on,wait=off");
        try {
            HostTools.Qemu dst = HostTools.startQemu(dstDir, "-accel", "tcg", "-M", "pc", "-m", "64M", "-nodefaults", "-display",
                    "none", "-incoming", "defer");
            try (QmpClient s = QmpClient.connect("unix:" + src.qmpSocket()); QmpClient d = QmpClient.connect("unix:" + dst.qmpSocket())) {
                s.negotiate();
                d.negotiate();
                Watch w = Watch.start(false, watchSocket.toString(), "--interval", "0.1");
                await().atMost(WAIT).until(() -> w.out().toString().contains("no migration yet"));
                s.execute("migrate-set-parameters", QmpClient.args("max-bandwidth", 8L << 20));
                String uri = "tcp:127.0.0.1:" + freePort();
                d.execute("migrate-incoming", QmpClient.args("uri", uri));
                s.execute("migrate", QmpClient.args("uri", uri));
                assertThat(w.await()).as(w.out() + " / " + w.err() + " / " + src.logText()).isZero();
                assertThat(w.out().toString()).contains("migration completed").contains("total time").contains("normal pages");
                await().atMost(WAIT).until(() -> d.execute("query-migrate").path("status").asString().equals("completed"));
            } finally {
                dst.process().destroy();
                dst.process().waitFor(10, TimeUnit.SECONDS);
            }
        } finally {
            src.process().destroy();
            src.process().waitFor(10, TimeUnit.SECONDS);
        }
    }

    @Test
    void aFailedMigrationEndsTheWatchWithStatusOne() throws Exception {
        try (QmpSide src = QmpSide.start(machine("zero"), false, dir, "lone")) {
            Watch w = Watch.start(false, dir.resolve("lone.qmp").toString(), "--interval", "0.1");
            await().atMost(WAIT).until(() -> w.out().toString().contains("no migration yet"));
            src.migrate("tcp:127.0.0.1:" + freePort()); // nothing listens
            assertThat(w.await()).isEqualTo(ExitCodes.FAILED);
            assertThat(w.out().toString()).contains("migration failed: ").contains("Connection refused");
        }
        // On the run process's terminal (its log here): one line, no stack trace (that is for LIVEMIG_LOG_LEVEL=debug).
        java.util.List<String> log = Files.readAllLines(dir.resolve("lone.log"));
        assertThat(log.stream().filter(l -> l.contains("outgoing migration failed")).toList()).singleElement().asString()
                .matches("\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z livemig\\[mig/src/main\\] WARNING: outgoing migration failed: .*Connection refused");
        assertThat(log).noneMatch(l -> l.startsWith("\tat ") || l.contains("Exception"));
    }
}
