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
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.livemig.monitor.QmpClient;
import org.livemig.monitor.QmpJson;

import picocli.CommandLine;
import tools.jackson.databind.node.ArrayNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * {@code livemig relay --fault} between two real QEMU 7.2 processes (issue 18, part 4). The
 * source's 64 MiB of RAM is a private mapping of a file of seeded random bytes, so that every
 * page is sent in full and checked; its guest (the dirtyloop BIOS) keeps writing two counters in
 * low memory. Skipped when {@code qemu-system-x86_64} is not on PATH.
 *
 * <p>What QEMU 7.2 does, as observed here: a postcopy migration whose main connection the relay
 * cuts goes to {@code postcopy-paused} on both sides ("Detected IO failure for postcopy.
 * Migration paused."); {@code migrate-recover} and {@code migrate resume=true} through a new
 * relay complete it. A precopy cut fails the source ({@code failed}, its guest running again) and
 * the destination process exits with status 1, having printed which section it was loading (a
 * QEMU 7.2 destination exits on a failed incoming migration, so its monitor cannot be asked).
 */
class LiveQemuChaosRelayTest {
    private static final Duration WAIT = Duration.ofSeconds(40);
    private static final int RAM = 64 << 20;
    /** The dirtyloop guest's two counters; the rest of RAM is the file's. */
    private static final int[] COUNTERS = {0x8000, 0x8001, 0x9002, 0x9003};

    @TempDir
    Path dir;

    private String binary;
    private Path randomRam;
    private byte[] randomBytes;
    private final List<Process> processes = new ArrayList<>();
    private final List<QmpClient> clients = new ArrayList<>();

    record Qemu(Process process, QmpClient qmp, Path log) {}

    record Relay(CompletableFuture<Integer> status, StringWriter out, StringWriter err) {}

    @BeforeEach
    void setUp() throws IOException {
        binary = onPath("qemu-system-x86_64");
        Assumptions.assumeTrue(binary != null, "qemu-system-x86_64 is not installed");
        long seed = System.nanoTime();
        randomBytes = new byte[RAM];
        new Random(seed).nextBytes(randomBytes);
        randomRam = Files.write(dir.resolve("ram-seed-" + seed + ".bin"), randomBytes);
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

    /**
     * The main stream cut 4 MiB into postcopy, or, with postcopy-preempt, the preempt channel cut
     * at its first byte (the first page a vCPU asked for): QEMU pauses both sides either way, and
     * recovers through a new relay (QEMU 7.2 opens a new preempt channel for it).
     */
    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
        "cut:at=package,after=4M | false | cut at byte \\d+ of the main stream, 4194304 bytes after the postcopy package",
        "cut:channel=preempt     | true  | cut at byte 0 of the preempt channel"})
    void aPostcopyCutPausesBothQemusAndRecoveryThroughANewRelayCompletesWithTheSourcesRam(String fault, boolean preempt,
                                                                                         String said) throws Exception {
        Qemu src = source();
        Qemu dst = destination();
        for (Qemu q : List.of(src, dst)) {
            q.qmp().execute("migrate-set-capabilities", capability("postcopy-ram"));
            if (preempt) {
                q.qmp().execute("migrate-set-capabilities", capability("postcopy-preempt"));
            }
        }
        String[] extra = preempt ? new String[] {"--postcopy-preempt"} : new String[0];
        // postcopy at 16 MiB/s: about 4 s for the RAM, so the cut 4 MiB after the package lands in it
        src.qmp().execute("migrate-set-parameters", QmpClient.args("max-bandwidth", 8 << 20, "max-postcopy-bandwidth", 16 << 20));
        int dstPort = freePort();
        dst.qmp().execute("migrate-incoming", QmpClient.args("uri", "tcp:127.0.0.1:" + dstPort));
        int relayPort = freePort();
        Relay cut = relay(relayPort, dstPort, concat(extra, "--fault", fault));
        src.qmp().execute("migrate", QmpClient.args("uri", "tcp:127.0.0.1:" + relayPort));
        src.qmp().execute("migrate-start-postcopy");
        await().atMost(WAIT).pollInterval(Duration.ofMillis(100))
                .until(() -> status(src).equals("postcopy-paused") && status(dst).equals("postcopy-paused"));
        assertThat(cut.status().get(30, TimeUnit.SECONDS)).isEqualTo(1);
        assertThat(cut.err().toString()).containsPattern("cut by --fault " + fault + ": " + said);
        assertThat(read(src.log())).contains("Detected IO failure for postcopy. Migration paused.");
        assertThat(read(dst.log())).contains("Detected IO failure for postcopy. Migration paused.");
        assertThat(src.qmp().execute("query-migrate").path("ram").path("remaining").asLong())
                .as("RAM still to send when the cut came").isPositive();

        int recoverPort = freePort();
        int relayPort2 = freePort();
        Relay clean = relay(relayPort2, recoverPort, extra);
        dst.qmp().execute("migrate-recover", QmpClient.args("uri", "tcp:127.0.0.1:" + recoverPort));
        src.qmp().execute("migrate", QmpClient.args("uri", "tcp:127.0.0.1:" + relayPort2, "resume", true));
        await().atMost(WAIT).pollInterval(Duration.ofMillis(100)).until(() -> {
            String s = status(src);
            assertThat(s).as(() -> "source: " + read(src.log())).isNotIn("failed", "cancelled");
            return s.equals("completed") && status(dst).equals("completed");
        });
        // the resumed stream has no header (it starts with RECV_BITMAP): forwarded whole, undecoded
        assertThat(clean.status().get(30, TimeUnit.SECONDS)).as(clean.err()::toString).isEqualTo(6);
        if (preempt) {
            assertThat(clean.out().toString()).as("the recovery's new preempt channel was relayed").contains("preempt: ");
        }

        src.qmp().execute("stop");
        dst.qmp().execute("stop");
        byte[] srcRam = pmemsave(src, "src.ram");
        byte[] dstRam = pmemsave(dst, "dst.ram");
        // the destination's guest ran on after the switch: its counters moved on; nothing else differs
        for (int at : COUNTERS) {
            srcRam[at] = dstRam[at] = 0;
        }
        assertThat(Arrays.mismatch(srcRam, dstRam)).as("first differing byte of guest RAM").isEqualTo(-1);
        assertThat(Arrays.equals(dstRam, 1 << 20, RAM, randomBytes, 1 << 20, RAM))
                .as("the destination's RAM above 1 MiB is the source's file").isTrue();
    }

    /**
     * A cut 1 MiB into the RAM section's first part: QEMU's source fails writing ("failed to save
     * SaveStateEntry with id(name): 2(ram): -5") and runs on; the destination exits naming the section.
     */
    @Test
    void aPrecopyCutInTheRamSectionFailsBothQemusAsQemuSays() throws Exception {
        Qemu src = source();
        Qemu dst = destination();
        int dstPort = freePort();
        dst.qmp().execute("migrate-incoming", QmpClient.args("uri", "tcp:127.0.0.1:" + dstPort));
        int relayPort = freePort();
        Relay cut = relay(relayPort, dstPort, "--fault", "cut:at=section:ram,after=1M");
        src.qmp().execute("migrate", QmpClient.args("uri", "tcp:127.0.0.1:" + relayPort));
        tools.jackson.databind.JsonNode m = awaitFailed(src);
        assertThat(m.path("error-desc").asString()).as(m::toString).startsWith("Unable to write to socket: ");
        assertThat(read(src.log())).contains("failed to save SaveStateEntry with id(name): 2(ram): -5");
        assertDestinationExitedLoading(dst, "error while loading state section id 2(ram)");
        assertThat(cut.status().get(30, TimeUnit.SECONDS)).isEqualTo(1);
        // the header, the configuration section, then ram's START header ends at byte 43 of a pc stream
        assertThat(cut.err().toString()).contains("cut at byte 1048619 of the main stream, 1048576 bytes after the "
                + "header of section ram (which ended at byte 43)");
        assertSourceRunsOnIntact(src);
    }

    /**
     * A cut just after the header of a device section, sent after the source stopped its guest:
     * with the return path the source learns of it ({@code failed}, no error-desc in 7.2) and
     * starts its guest again; the destination exits naming the device.
     */
    @Test
    void aPrecopyCutAtADeviceSectionFailsBothQemusAndTheSourceResumesItsGuest() throws Exception {
        Qemu src = source();
        Qemu dst = destination();
        for (Qemu q : List.of(src, dst)) {
            q.qmp().execute("migrate-set-capabilities", capability("return-path"));
        }
        int dstPort = freePort();
        dst.qmp().execute("migrate-incoming", QmpClient.args("uri", "tcp:127.0.0.1:" + dstPort));
        int relayPort = freePort();
        Relay cut = relay(relayPort, dstPort, "--fault", "cut:at=section:0000:00:01.3/piix4_pm");
        src.qmp().execute("migrate", QmpClient.args("uri", "tcp:127.0.0.1:" + relayPort));
        awaitFailed(src);
        assertDestinationExitedLoading(dst, "error while loading state for instance 0x0 of device '0000:00:01.3/piix4_pm'");
        assertThat(cut.status().get(30, TimeUnit.SECONDS)).isEqualTo(1);
        assertThat(cut.err().toString()).containsPattern("cut at byte \\d+ of the main stream, just after the header of "
                + "section 0000:00:01.3/piix4_pm");
        assertSourceRunsOnIntact(src);
    }

    /**
     * A stall, a rate cap and a delay each way slow a QEMU precopy down without breaking it: it
     * takes at least the stall plus the capped part at the cap, completes, and the destination's
     * RAM is the source's.
     */
    @Test
    void aStallARateCapAndADelaySlowAQemuMigrationButItCompletesWhole() throws Exception {
        Qemu src = source();
        Qemu dst = destination();
        for (Qemu q : List.of(src, dst)) {
            q.qmp().execute("migrate-set-capabilities", capability("return-path"));
        }
        src.qmp().execute("migrate-set-parameters", QmpClient.args("max-bandwidth", 1L << 30));
        int dstPort = freePort();
        dst.qmp().execute("migrate-incoming", QmpClient.args("uri", "tcp:127.0.0.1:" + dstPort));
        int relayPort = freePort();
        Relay slow = relay(relayPort, dstPort, "--fault", "stall:at=section:ram,after=1M,for=1500ms",
                "--fault", "rate:at=section:ram,after=8M,bps=64M", "--fault", "delay:ms=10");
        long t0 = System.nanoTime();
        src.qmp().execute("migrate", QmpClient.args("uri", "tcp:127.0.0.1:" + relayPort));
        await().atMost(WAIT).pollInterval(Duration.ofMillis(100)).until(() -> {
            String s = status(src);
            assertThat(s).as(() -> "source: " + read(src.log())).isNotIn("failed", "cancelled");
            return s.equals("completed");
        });
        long tookMs = (System.nanoTime() - t0) / 1_000_000;
        assertThat(slow.status().get(30, TimeUnit.SECONDS)).as(slow.err()::toString).isZero();
        // 1.5 s of stall, and at least the 56 MiB after the cap's trigger at 64 MiB/s (0.875 s)
        assertThat(tookMs).isGreaterThanOrEqualTo(1500 + 875);
        // with the return path, OPEN_RETURN_PATH and PING come first: ram's header ends at byte 57
        assertThat(slow.err().toString()).contains("stalled 1500 ms at byte 1048633 of the main stream",
                "capped at 67108864 bytes/s from byte 8388665 of the main stream",
                "every byte of the main stream delayed by 10 ms", "every byte of the return path delayed by 10 ms");
        await().atMost(WAIT).until(() -> status(dst).equals("completed"));
        src.qmp().execute("stop");
        dst.qmp().execute("stop");
        byte[] srcRam = pmemsave(src, "src.ram");
        byte[] dstRam = pmemsave(dst, "dst.ram");
        for (int at : COUNTERS) {
            srcRam[at] = dstRam[at] = 0;
        }
        assertThat(Arrays.mismatch(srcRam, dstRam)).as("first differing byte of guest RAM").isEqualTo(-1);
    }

    // ------------------------------------------------------------------ helpers

    private Qemu source() throws Exception {
        return start("src", "-object", "memory-backend-file,id=mem0,size=64M,share=off,mem-path=" + randomRam);
    }

    private Qemu destination() throws Exception {
        return start("dst", "-object", "memory-backend-ram,id=mem0,size=64M", "-incoming", "defer");
    }

    private tools.jackson.databind.JsonNode awaitFailed(Qemu q) {
        return await().atMost(WAIT).pollInterval(Duration.ofMillis(100))
                .until(() -> q.qmp().execute("query-migrate"), m -> {
                    assertThat(m.path("status").asString()).as(m::toString).isNotIn("completed", "cancelled");
                    return m.path("status").asString().equals("failed");
                });
    }

    private static void assertDestinationExitedLoading(Qemu dst, String error) throws Exception {
        assertThat(dst.process().waitFor(30, TimeUnit.SECONDS)).as("the destination QEMU exits").isTrue();
        assertThat(dst.process().exitValue()).isEqualTo(1);
        assertThat(read(dst.log())).contains(error, "load of migration failed: Input/output error");
    }

    private void assertSourceRunsOnIntact(Qemu src) throws Exception {
        await().atMost(WAIT).until(() -> src.qmp().execute("query-status").path("status").asString().equals("running"));
        byte[] ram = pmemsave(src, "src-after.ram");
        assertThat(Arrays.equals(ram, 1 << 20, RAM, randomBytes, 1 << 20, RAM))
                .as("the source's RAM above 1 MiB is still its file's").isTrue();
        // and it runs: its counter moves
        int before = counter(ram);
        await().atMost(WAIT).until(() -> counter(pmemsave(src, "src-later.ram")) != before);
    }

    private static int counter(byte[] ram) {
        return (ram[0x8000] & 0xFF) | (ram[0x8001] & 0xFF) << 8;
    }

    private static String status(Qemu q) throws IOException {
        return q.qmp().execute("query-migrate").path("status").asString();
    }

    private static String[] concat(String[] a, String... b) {
        List<String> l = new ArrayList<>(List.of(a));
        l.addAll(List.of(b));
        return l.toArray(String[]::new);
    }

    private Relay relay(int port, int dstPort, String... options) {
        List<String> args = new ArrayList<>(List.of("relay", "--listen", "tcp:127.0.0.1:" + port,
                "--to", "tcp:127.0.0.1:" + dstPort, "--timeout", "30", "--idle-timeout", "30"));
        args.addAll(List.of(options));
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        CompletableFuture<Integer> status = new CompletableFuture<>();
        Thread.ofPlatform().name("cli-relay").daemon().start(() -> {
            try {
                CommandLine cl = new CommandLine(new Main());
                cl.setOut(new PrintWriter(out, true));
                cl.setErr(new PrintWriter(err, true));
                status.complete(cl.execute(args.toArray(String[]::new)));
            } catch (Throwable t) {
                status.completeExceptionally(t);
            }
        });
        await().atMost(Duration.ofSeconds(30)).until(() -> err.toString().contains("listening on") || status.isDone());
        assertThat(status).as(err::toString).isNotDone();
        return new Relay(status, out, err);
    }

    private Qemu start(String name, String... extra) throws Exception {
        Path bios = Path.of("../livemig-core/src/test/resources/qemu-7.2/dirtyloop-bios.bin").toAbsolutePath();
        Path sock = dir.resolve(name + ".qmp");
        Path log = dir.resolve(name + ".log");
        List<String> cmd = new ArrayList<>(List.of(binary, "-accel", "tcg", "-M", "pc,memory-backend=mem0", "-m", "64M",
                "-nodefaults", "-display", "none", "-bios", bios.toString(),
                "-qmp", "unix:" + sock + ",server=on,wait=off"));
        cmd.addAll(List.of(extra));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        processes.add(p);
        await().atMost(Duration.ofSeconds(30)).until(() -> Files.exists(sock) || !p.isAlive());
        assertThat(p.isAlive()).as(() -> name + " QEMU died: " + read(log)).isTrue();
        QmpClient c = await().atMost(Duration.ofSeconds(30)).pollInterval(Duration.ofMillis(50))
                .ignoreExceptionsInstanceOf(IOException.class)
                .until(() -> QmpClient.connect("unix:" + sock), q -> q != null);
        clients.add(c);
        c.negotiate();
        return new Qemu(p, c, log);
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
