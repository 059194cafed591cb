package org.livemig.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.io.File;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.livemig.monitor.QmpClient;
import org.livemig.monitor.QmpJson;

import picocli.CommandLine;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;
import tools.jackson.databind.node.ArrayNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * {@code livemig analyze --listen} and {@code livemig relay} against real QEMU processes
 * (issue 5, item 4). Skipped when {@code qemu-system-x86_64} is not on PATH.
 */
class LiveQemuRelayTest {
    private static final Duration WAIT = Duration.ofSeconds(90);
    private static final int RAM = 32 << 20;

    @TempDir
    Path dir;

    private String binary;
    private final List<Process> processes = new ArrayList<>();
    private final List<QmpClient> clients = new ArrayList<>();

    record Qemu(Process process, QmpClient qmp, Path log) {
    }

    /** A picocli run on a background thread, its stderr readable while it runs. */
    record Cli(CompletableFuture<Integer> status, StringWriter out, StringWriter err) {
    }

    @BeforeEach
    void findQemu() {
        binary = onPath("qemu-system-x86_64");
        Assumptions.assumeTrue(binary != null, "qemu-system-x86_64 is not installed");
    }

    @AfterEach
    void stopAll() throws Exception {
        for (QmpClient c : clients) {
            c.close();
        }
        for (Process p : processes) {
            p.destroy();
            if (!p.waitFor(10, TimeUnit.SECONDS)) {
                p.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            }
        }
    }

    // ------------------------------------------------------------------ tests

    /**
     * Two identical paused QEMUs migrate, one to a file (exec:cat), one over TCP, with the return
     * path on, into {@code analyze --listen}: the source completes (so PONG and SHUT came back)
     * and both analyses print the same state and description.
     */
    @Test
    void analyzeListenSeesWhatTheFileHolds() throws Exception {
        // Once in a few dozen full-suite runs on a busy 2-core host, one of the two QEMU 7.2
        // migrations ended "failed" with no error-desc and nothing in QEMU's log (CI, 2026-12-07;
        // not reproduced in 41 runs of this test alone, idle or loaded): such a run is tried
        // again once with fresh QEMUs, saying which migration it was. Any other failure fails.
        try {
            analyzeListenOnce("1");
        } catch (FailedWithoutReason e) {
            System.err.println("LiveQemuRelayTest: " + e.getMessage() + "; trying again with fresh QEMUs");
            analyzeListenOnce("2");
        }
    }

    private void analyzeListenOnce(String attempt) throws Exception {
        // QEMU migrates a paused VM only once, so two identical ones; the RTC runs on VM time
        Qemu first = start("first" + attempt, "-S", "-rtc", "base=2020-01-01T00:00:00,clock=vm");
        Qemu src = start("src" + attempt, "-S", "-rtc", "base=2020-01-01T00:00:00,clock=vm");
        Path file = dir.resolve("paused" + attempt + ".mig");
        first.qmp().execute("migrate", QmpClient.args("uri", "exec:cat > " + file));
        awaitCompleted(first, () -> "the migration to exec:cat");

        src.qmp().execute("migrate-set-capabilities", capability("return-path"));
        int port = freePort();
        Cli live = cli("analyze", "--listen", "tcp:127.0.0.1:" + port, "--dump", "state", "--timeout", "60");
        awaitListening(live);
        src.qmp().execute("migrate", QmpClient.args("uri", "tcp:127.0.0.1:" + port));
        awaitCompleted(src, () -> "the migration to analyze --listen (its stderr: " + live.err() + ")");
        assertThat(live.status().get(WAIT.toSeconds(), TimeUnit.SECONDS)).as(live.err().toString()).isZero();

        AnalyzeCommandTest.Run fromFile = AnalyzeCommandTest.run("analyze", file.toString(), "--dump", "state");
        assertThat(fromFile.status()).as(fromFile.err()).isZero();
        JsonMapper json = JsonMapper.builder().build();
        JsonNode a = json.readTree(live.out().toString());
        JsonNode b = json.readTree(fromFile.out());
        assertThat(a.size()).isGreaterThan(10);
        assertThat(a).isEqualTo(b);
    }

    /** A QEMU migration that ended failed without an error-desc (see analyzeListenSeesWhatTheFileHolds). */
    private static final class FailedWithoutReason extends Exception {
        FailedWithoutReason(String message) {
            super(message);
        }
    }

    /**
     * A running guest (the dirtyloop BIOS) migrates through {@code livemig relay} into a second
     * QEMU: both complete, the destination's RAM equals the source's, the relay counted what
     * passed, and its recording is a stream {@code analyze} reads. With the return path on, the
     * PONG and SHUT the destination sends travel back through the relay.
     */
    @ParameterizedTest(name = "return path {0}")
    @ValueSource(booleans = {false, true})
    void relayBetweenTwoQemus(boolean returnPath) throws Exception {
        // livemig-core's test resource (the MANIFEST describes it); tests run in the module directory
        Path bios = Path.of("../livemig-core/src/test/resources/qemu-7.2/dirtyloop-bios.bin").toAbsolutePath();
        assertThat(bios).exists();
        Qemu src = start("src", "-bios", bios.toString());
        Qemu dst = start("dst", "-bios", bios.toString(), "-S", "-incoming", "defer");
        if (returnPath) {
            src.qmp().execute("migrate-set-capabilities", capability("return-path"));
            dst.qmp().execute("migrate-set-capabilities", capability("return-path"));
        }
        Path record = dir.resolve("relayed.mig");
        String stats = migrateThroughRelay(src, dst, "--record", record.toString());
        assertThat(stats).contains("sections: {START=", "pages: zero ", "stream: EOF, vmdesc trailer");
        if (returnPath) {
            assertThat(stats).contains("commands: {OPEN_RETURN_PATH=1, PING=1}", "return path: {PONG=1, SHUT=1}");
        } else {
            assertThat(stats).contains("commands: {}", "return path: {}");
        }
        long forwarded = Long.parseLong(stats.replaceAll("(?s).*bytes: (\\d+) source -> destination.*", "$1"));
        assertThat(Files.size(record)).isEqualTo(forwarded);

        byte[] srcRam = pmemsave(src, "src.ram");
        byte[] dstRam = pmemsave(dst, "dst.ram");
        assertThat(srcRam).hasSize(RAM);
        // The guest ran: its two counters (at 0x8000 and 0x9002) are not zero.
        assertThat(srcRam[0x8000] | srcRam[0x8001]).as("counter at 0x8000").isNotZero();
        assertThat(Arrays.mismatch(srcRam, dstRam)).as("first differing byte of guest RAM").isEqualTo(-1);

        AnalyzeCommandTest.Run recorded = AnalyzeCommandTest.run("analyze", record.toString(), "--dump", "state");
        assertThat(recorded.status()).as(recorded.err()).isZero();
        assertThat(recorded.out()).contains("\"ram (");
    }

    /**
     * The same with multifd over 2 channels: the relay takes the channels after the main
     * connection, connects each to the destination after its main one, forwards them unchanged
     * and counts their packets; both QEMUs complete and the destination's RAM is the source's.
     */
    @Test
    void relayOfAMultifdMigrationBetweenTwoQemus() throws Exception {
        Path bios = Path.of("../livemig-core/src/test/resources/qemu-7.2/dirtyloop-bios.bin").toAbsolutePath();
        Qemu src = start("src", "-bios", bios.toString());
        Qemu dst = start("dst", "-bios", bios.toString(), "-S", "-incoming", "defer");
        for (Qemu q : List.of(src, dst)) {
            q.qmp().execute("migrate-set-capabilities", capability("multifd"));
            q.qmp().execute("migrate-set-parameters", QmpClient.args("multifd-channels", 2));
        }
        String stats = migrateThroughRelay(src, dst, "--multifd-channels", "2");
        assertThat(stats).contains("multifd: 2 channels", "  channel 0: ", "  channel 1: ")
                .contains("pages: zero ").doesNotContain("not decoded further");
        long pages = Long.parseLong(stats.replaceAll("(?s).*multifd: 2 channels, \\d+ packets, (\\d+) pages.*", "$1"));
        assertThat(pages).as(stats).isPositive();

        byte[] srcRam = pmemsave(src, "src.ram");
        byte[] dstRam = pmemsave(dst, "dst.ram");
        assertThat(srcRam[0x8000] | srcRam[0x8001]).as("counter at 0x8000").isNotZero();
        assertThat(Arrays.mismatch(srcRam, dstRam)).as("first differing byte of guest RAM").isEqualTo(-1);
    }

    /**
     * Over TLS on both sides, each with its own credentials: the source QEMU trusts CA A and
     * talks to the relay, which shows a CA-A server certificate and requires the source's CA-A
     * client certificate; the relay talks to the destination QEMU with a CA-B client certificate
     * and checks its CA-B server certificate. The stream is decoded and recorded in clear, the
     * return path travels back through both sessions, both QEMUs complete with the same RAM.
     */
    @Test
    void relayTerminatesTlsOnBothSidesBetweenTwoQemus() throws Exception {
        Path bios = Path.of("../livemig-core/src/test/resources/qemu-7.2/dirtyloop-bios.bin").toAbsolutePath();
        org.livemig.testing.TlsFixtures.Ca a = org.livemig.testing.TlsFixtures.ca("source-facing CA");
        org.livemig.testing.TlsFixtures.Ca b = org.livemig.testing.TlsFixtures.ca("destination-facing CA");
        Path srcCreds = org.livemig.testing.TlsFixtures.clientDir(dir.resolve("src-creds"), a, a, "CN=qemu source,O=livemig tests");
        Path relayServer = org.livemig.testing.TlsFixtures.serverDir(dir.resolve("relay-server"), a, "127.0.0.1", null);
        Path relayClient = org.livemig.testing.TlsFixtures.clientDir(dir.resolve("relay-client"), b, b, "CN=livemig relay,O=livemig tests");
        Path dstCreds = org.livemig.testing.TlsFixtures.serverDir(dir.resolve("dst-creds"), b, "127.0.0.1", null);
        Qemu src = start("src", "-bios", bios.toString());
        Qemu dst = start("dst", "-bios", bios.toString(), "-S", "-incoming", "defer");
        src.qmp().execute("object-add", QmpClient.args("qom-type", "tls-creds-x509", "id", "tls0", "endpoint", "client",
                "dir", srcCreds.toString()));
        dst.qmp().execute("object-add", QmpClient.args("qom-type", "tls-creds-x509", "id", "tls0", "endpoint", "server",
                "dir", dstCreds.toString(), "verify-peer", true));
        for (Qemu q : List.of(src, dst)) {
            q.qmp().execute("migrate-set-parameters", QmpClient.args("tls-creds", "tls0"));
            q.qmp().execute("migrate-set-capabilities", capability("return-path"));
        }
        Path record = dir.resolve("relayed.mig");
        String stats = migrateThroughRelay(src, dst, "--record", record.toString(),
                "--object", "tls-creds-x509,id=in,endpoint=server,verify-peer=on,dir=" + relayServer,
                "--object", "tls-creds-x509,id=out,endpoint=client,dir=" + relayClient,
                "--listen-tls-creds", "in", "--to-tls-creds", "out");
        assertThat(stats).contains("sections: {START=", "stream: EOF, vmdesc trailer",
                "commands: {OPEN_RETURN_PATH=1, PING=1}", "return path: {PONG=1, SHUT=1}");
        byte[] srcRam = pmemsave(src, "src.ram");
        byte[] dstRam = pmemsave(dst, "dst.ram");
        assertThat(srcRam[0x8000] | srcRam[0x8001]).as("counter at 0x8000").isNotZero();
        assertThat(Arrays.mismatch(srcRam, dstRam)).as("first differing byte of guest RAM").isEqualTo(-1);
        AnalyzeCommandTest.Run recorded = AnalyzeCommandTest.run("analyze", record.toString(), "--dump", "state");
        assertThat(recorded.status()).as(recorded.err()).isZero();
        assertThat(recorded.out()).contains("\"ram (");
    }

    // ------------------------------------------------------------------ helpers

    /** {@code dst} listens, {@code src} migrates through {@code livemig relay ARGS}; both complete; returns the relay's output. */
    private String migrateThroughRelay(Qemu src, Qemu dst, String... relayArgs) throws Exception {
        int dstPort = freePort();
        dst.qmp().execute("migrate-incoming", QmpClient.args("uri", "tcp:127.0.0.1:" + dstPort));
        int relayPort = freePort();
        List<String> args = new ArrayList<>(List.of("relay", "--listen", "tcp:127.0.0.1:" + relayPort,
                "--to", "tcp:127.0.0.1:" + dstPort, "--timeout", "60", "--idle-timeout", "60"));
        args.addAll(List.of(relayArgs));
        Cli relay = cli(args.toArray(String[]::new));
        awaitListening(relay);
        src.qmp().execute("migrate", QmpClient.args("uri", "tcp:127.0.0.1:" + relayPort));
        awaitCompleted(src);
        awaitCompleted(dst);
        assertThat(relay.status().get(WAIT.toSeconds(), TimeUnit.SECONDS)).as(relay.err().toString()).isZero();
        return relay.out().toString();
    }

    private Qemu start(String name, String... extra) throws Exception {
        Path sock = dir.resolve(name + ".qmp");
        Path log = dir.resolve(name + ".log");
        List<String> cmd = new ArrayList<>(List.of(binary, "-accel", "tcg", "-M", "pc", "-m", "32M", "-nodefaults",
                "-display", "none", "-qmp", "unix:" + sock + ",server=on,wait=off"));
        cmd.addAll(List.of(extra));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        processes.add(p);
        await().atMost(Duration.ofSeconds(30)).until(() -> Files.exists(sock) || !p.isAlive());
        assertThat(p.isAlive()).as(() -> name + " QEMU died: " + read(log)).isTrue();
        // The socket file exists once QEMU binds it, a moment before it listens: try again when refused.
        QmpClient c = await().atMost(Duration.ofSeconds(30)).pollInterval(Duration.ofMillis(50))
                .ignoreExceptionsInstanceOf(java.io.IOException.class)
                .until(() -> QmpClient.connect("unix:" + sock), q -> q != null);
        clients.add(c);
        c.negotiate();
        return new Qemu(p, c, log);
    }

    private void awaitCompleted(Qemu q) {
        await().atMost(WAIT).pollInterval(Duration.ofMillis(100)).until(() -> {
            JsonNode info = q.qmp().execute("query-migrate");
            String status = info.path("status").asString();
            assertThat(status).as(() -> "migration failed: " + info + "; QEMU's log: " + read(q.log()))
                    .isNotIn("failed", "cancelled");
            return status.equals("completed");
        });
    }

    /** As {@link #awaitCompleted(Qemu)}; a failure without an error-desc is thrown as {@link FailedWithoutReason}. */
    private void awaitCompleted(Qemu q, java.util.function.Supplier<String> what) throws FailedWithoutReason {
        java.util.concurrent.atomic.AtomicReference<JsonNode> silent = new java.util.concurrent.atomic.AtomicReference<>();
        await().atMost(WAIT).pollInterval(Duration.ofMillis(100)).until(() -> {
            JsonNode info = q.qmp().execute("query-migrate");
            String status = info.path("status").asString();
            if (status.equals("failed") && !info.has("error-desc")) {
                silent.set(info);
                return true;
            }
            assertThat(status).as(() -> what.get() + " failed: " + info + "; QEMU's log: " + read(q.log()))
                    .isNotIn("failed", "cancelled");
            return status.equals("completed");
        });
        if (silent.get() != null) {
            throw new FailedWithoutReason(what.get() + " failed without a reason: " + silent.get() + "; QEMU's log: "
                    + read(q.log()));
        }
    }

    private byte[] pmemsave(Qemu q, String name) throws Exception {
        Path f = dir.resolve(name);
        q.qmp().execute("pmemsave", QmpClient.args("val", 0, "size", RAM, "filename", f.toString()));
        return Files.readAllBytes(f);
    }

    private static ObjectNode capability(String name) {
        ArrayNode caps = QmpJson.NODES.arrayNode();
        caps.add(QmpJson.object().put("capability", name).put("state", true));
        return QmpClient.args("capabilities", caps);
    }

    private static Cli cli(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        CompletableFuture<Integer> status = new CompletableFuture<>();
        Thread.ofPlatform().name("cli-" + args[0]).daemon().start(() -> {
            try {
                CommandLine cl = new CommandLine(new Main());
                cl.setOut(new PrintWriter(out, true));
                cl.setErr(new PrintWriter(err, true));
                status.complete(cl.execute(args));
            } catch (Throwable t) {
                status.completeExceptionally(t);
            }
        });
        return new Cli(status, out, err);
    }

    private static void awaitListening(Cli c) {
        await().atMost(Duration.ofSeconds(30)).until(() -> c.err().toString().contains("listening on")
                || c.status().isDone());
        assertThat(c.status().isDone()).as(() -> "command ended early: " + c.err()).isFalse();
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    private static String read(Path p) {
        try {
            return Files.readString(p);
        } catch (IOException e) {
            return e.toString();
        }
    }

    private static String onPath(String name) {
        for (String d : System.getenv().getOrDefault("PATH", "").split(File.pathSeparator)) {
            Path p = Path.of(d, name);
            if (Files.isExecutable(p)) {
                return p.toString();
            }
        }
        return null;
    }
}
