package org.livemig.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.livemig.monitor.QmpClient;

/**
 * Either process killed (SIGKILL) at every phase of a migration between two {@code livemig run}
 * processes driven over QMP: setup, active precopy, device state with the source's guest stopped,
 * completion (the destination has loaded the last byte, its acknowledgement not yet sent),
 * postcopy active, postcopy paused, and postcopy recovery. Each phase is reached through the
 * run processes' fault hooks ({@code --x-fault-outgoing}/{@code --x-fault-incoming} with the named
 * points of {@code transport.FaultPoints}, whose stall the child's log announces). The source
 * idles on random RAM, so that "its RAM is unchanged" is a check. The connection cut and
 * migrate_cancel at the same phases run in-process in livemig-core's {@code PhaseFaultTest}; the
 * whole table is in the README ("Faults at every phase").
 *
 * <p>What holds, as in QEMU: the source runs its guest again whenever the destination cannot
 * have started it, with its RAM unchanged; it keeps it paused when the destination may run it
 * (the whole stream went out; postcopy); a destination whose source died exits with status 1 under
 * exit-on-error, or reports failed and takes a new migration without it; a postcopy destination
 * that lost its source for good stays postcopy-paused with its guest and monitor alive; nothing
 * hangs (every process that stays answers QMP, every process asked to quit exits).
 */
class KillAtEveryPhaseTest {
    private static final Duration LONG = Duration.ofSeconds(90);

    @TempDir
    Path dir;

    private final List<QmpSide> sides = new ArrayList<>();
    private int names;

    @AfterEach
    void closeAll() throws Exception {
        for (QmpSide s : sides) {
            s.close();
        }
    }

    private static MachineOptions machine(String fill) {
        MachineOptions m = new MachineOptions();
        m.ram = "16M";
        m.vcpus = 1;
        m.workload = "idle";
        m.fill = fill;
        m.blobSize = "64K";
        m.seed = 3;
        return m;
    }

    /**
     * Starts a source and a destination (in parallel), each with its fault spec ("" for none),
     * the return path and events on both (the source then hears of a dead destination at once).
     */
    private QmpSide[] pair(String srcFaults, String dstFaults) throws Exception {
        return pair(srcFaults, dstFaults, false);
    }

    /** As above; a postcopy destination runs the guest (no -S). */
    private QmpSide[] pair(String srcFaults, String dstFaults, boolean autostart) throws Exception {
        CompletableFuture<QmpSide> src = CompletableFuture.supplyAsync(() -> start(false, srcFaults, false));
        CompletableFuture<QmpSide> dst = CompletableFuture.supplyAsync(() -> start(true, dstFaults, autostart));
        return new QmpSide[] {src.get(), dst.get()};
    }

    /** A new destination (with -S) for a source that survived. */
    private QmpSide destination(String faults) {
        return start(true, faults, false);
    }

    private QmpSide start(boolean incoming, String faults, boolean autostart) {
        String name;
        synchronized (sides) {
            name = (incoming ? "dst" : "src") + (++names);
        }
        List<String> extra = new ArrayList<>(List.of("--no-warm-up"));
        if (incoming && !autostart) {
            extra.add("-S");
        }
        if (!faults.isEmpty()) {
            extra.addAll(List.of(incoming ? "--x-fault-incoming" : "--x-fault-outgoing", faults));
        }
        try {
            QmpSide s = QmpSide.start(machine(incoming ? "zero" : "random"), incoming, dir, name, extra);
            synchronized (sides) {
                sides.add(s);
            }
            s.setCapabilities(Map.of("return-path", true, "events", true));
            return s;
        } catch (IOException | InterruptedException e) {
            throw new IllegalStateException(e);
        }
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }

    private static String status(QmpSide s) throws IOException {
        return s.queryMigrate().path("status").asString("none");
    }

    private static void awaitStatus(QmpSide s, String status) {
        await().atMost(LONG).until(() -> status(s).equals(status));
    }

    private static String ram(QmpSide s) throws IOException {
        return s.fingerprint(false).get("ram").toString();
    }

    /** Waits until the child's log says that a fault point held it (once more than before). */
    private void awaitPoint(QmpSide s, String point) {
        String line = "fault point " + point + ": injected stall";
        awaitLog(s, line, stallsSeen.merge(s, 1, Integer::sum));
    }

    /** How many stalls each side's log has announced so far. */
    private final Map<QmpSide, Integer> stallsSeen = new java.util.concurrent.ConcurrentHashMap<>();

    /** Waits until {@code text} is in the child's log {@code times} times. */
    private static void awaitLog(QmpSide s, String text, int times) {
        await().atMost(LONG).until(() -> Files.readString(s.log()).split(java.util.regex.Pattern.quote(text), -1).length > times);
    }

    private static void incoming(QmpSide dst, String uri, boolean exitOnError) throws IOException {
        dst.qmp().execute("migrate-incoming", QmpClient.args("uri", uri, "exit-on-error", exitOnError));
    }

    private static void kill(QmpSide s) throws InterruptedException {
        s.process().destroyForcibly();
        assertThat(s.process().waitFor(30, TimeUnit.SECONDS)).isTrue();
    }

    /** The destination exited with status 1 (exit-on-error), or reports failed and is ready again. */
    private void assertDestinationFailedAndReady(QmpSide dst, boolean exitOnError) throws Exception {
        if (exitOnError) {
            assertThat(dst.process().waitFor(60, TimeUnit.SECONDS)).as("exits under exit-on-error").isTrue();
            assertThat(dst.process().exitValue()).isEqualTo(1);
            return;
        }
        awaitStatus(dst, "failed");
        assertThat(dst.status()).isEqualTo("inmigrate");
        // It cleaned up: a new source's migration completes into it.
        QmpSide src = start(false, "", false);
        src.setParameters(QmpClient.args("max-bandwidth", 0));
        String uri = "tcp:127.0.0.1:" + freePort();
        await().atMost(LONG).ignoreExceptions().until(() -> {
            incoming(dst, uri, false);
            return true;
        });
        src.migrate(uri);
        awaitStatus(src, "completed");
        awaitStatus(dst, "completed");
        assertThat(dst.fingerprint().get("ram")).isEqualTo(src.fingerprint().get("ram"));
    }

    /** The source failed, runs its guest again, and its RAM is what it was. */
    private static void assertSourceResumedIntact(QmpSide src, String ramBefore) throws IOException {
        awaitStatus(src, "failed");
        assertThat(src.status()).isEqualTo("running");
        assertThat(ram(src)).isEqualTo(ramBefore);
    }

    // ------------------------------------------------------------------ precopy phases

    /** A precopy between a fresh pair, each side with its faults; returns the source's RAM before. */
    private String precopy(QmpSide src, QmpSide dst, long maxBandwidth, boolean exitOnError) throws Exception {
        String before = ram(src);
        src.setParameters(QmpClient.args("max-bandwidth", maxBandwidth));
        String uri = "tcp:127.0.0.1:" + freePort();
        incoming(dst, uri, exitOnError);
        src.migrate(uri);
        return before;
    }

    /**
     * One precopy phase, reached through {@code srcFaults} (a stall at a named point, or none:
     * then {@code reached} waits): the destination killed (the source resumes, intact), then the
     * same source with a new destination and the source killed (the destination exits under
     * exit-on-error, or fails and takes a new migration).
     */
    private void precopyPhase(String srcFaults, long bandwidth, java.util.function.Consumer<QmpSide> reached,
                              boolean exitOnError) throws Exception {
        QmpSide[] p = pair(srcFaults, "");
        String before = precopy(p[0], p[1], bandwidth, true);
        reached.accept(p[0]);
        kill(p[1]);
        assertSourceResumedIntact(p[0], before);
        // The same source (its stall fires again on the new connection) and a new destination.
        QmpSide dst = destination("");
        precopy(p[0], dst, bandwidth, exitOnError);
        reached.accept(p[0]);
        kill(p[0]);
        assertDestinationFailedAndReady(dst, exitOnError);
    }

    @Test
    void setup() throws Exception {
        // Held at the end of setup (header and setup sections sent, not yet active); after the
        // hold the source finds its return path dead and fails.
        precopyPhase("stall:point=setup,ms=5000", 0, s -> {
            awaitPoint(s, "setup");
            assertThat(statusQuietly(s)).isEqualTo("setup");
        }, true);
    }

    @Test
    void activePrecopy() throws Exception {
        precopyPhase("", 4L << 20, s -> await().atMost(LONG).until(() ->
                s.queryMigrate().path("ram").path("transferred").asLong() > (2L << 20)), false);
    }

    @Test
    void deviceStateWithTheSourceStopped() throws Exception {
        precopyPhase("stall:point=device,ms=5000", 0, s -> {
            awaitPoint(s, "device");
            assertThat(statusQuietly(s)).isEqualTo("device");
        }, true);
    }

    private static String statusQuietly(QmpSide s) {
        try {
            return status(s);
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    @Test
    void completionBeforeTheDestinationsAcknowledgement() throws Exception {
        // The destination has loaded every byte and holds its acknowledgement (SHUT) back.
        QmpSide[] p = pair("", "stall:point=loaded,ms=60000");
        String before = precopy(p[0], p[1], 0, true);
        awaitPoint(p[1], "loaded");
        assertThat(status(p[0])).isEqualTo("device");
        kill(p[1]);
        // The destination had everything and might have run the guest: the source keeps its own
        // paused rather than risk two running copies (QEMU 7.2 would resume it).
        awaitStatus(p[0], "failed");
        assertThat(p[0].status()).isEqualTo("paused");
        assertThat(ram(p[0])).isEqualTo(before);
        p[0].cont(); // the operator, knowing the destination is gone, runs it here
        assertThat(p[0].status()).isEqualTo("running");

        // The source killed instead: the destination, which has everything, completes (and,
        // without -S, would run the guest) although its acknowledgement cannot be sent.
        QmpSide q = destination("stall:point=loaded,ms=3000");
        String sent = precopy(p[0], q, 0, true);
        awaitPoint(q, "loaded");
        kill(p[0]);
        awaitStatus(q, "completed");
        assertThat(q.status()).isEqualTo("paused"); // -S
        assertThat(ram(q)).isEqualTo(sent);
        q.cont();
        assertThat(q.status()).isEqualTo("running");
    }

    // ------------------------------------------------------------------ postcopy phases

    /** A postcopy under way between a fresh pair: background pages at 256 KiB/s, so it lasts. */
    private QmpSide[] postcopy(String dstFaults) throws Exception {
        QmpSide[] p = pair("", dstFaults, true);
        for (QmpSide s : p) {
            s.setCapabilities(Map.of("postcopy-ram", true));
        }
        precopy(p[0], p[1], 4L << 20, false);
        p[0].setParameters(QmpClient.args("max-postcopy-bandwidth", 256L << 10));
        awaitStatus(p[0], "active");
        p[0].startPostcopy();
        awaitStatus(p[0], "postcopy-active");
        awaitStatus(p[1], "postcopy-active");
        return p;
    }

    /** The source lost its destination in postcopy: it waits paused (the guest was there), intact, answering. */
    private static void assertSourcePausedIntact(QmpSide src, String ramAtSwitch) throws Exception {
        awaitStatus(src, "postcopy-paused");
        assertThat(src.status()).isEqualTo("finish-migrate");
        assertThat(ram(src)).isEqualTo(ramAtSwitch);
        assertThat(src.qmp().request("migrate_cancel", null).path("error").path("desc").asString())
                .isEqualTo("Postcopy migration in progress, cannot cancel.");
        quits(src);
    }

    /** The destination lost its source for good: postcopy-paused, its guest alive, its monitor answering; quit ends it. */
    private static void assertDestinationPausedAnswering(QmpSide dst) throws Exception {
        awaitStatus(dst, "postcopy-paused");
        assertThat(dst.status()).isEqualTo("running");
        for (int i = 0; i < 20; i++) {
            assertThat(status(dst)).isEqualTo("postcopy-paused");
        }
        quits(dst);
    }

    /** quit answers (as QEMU's does) and the process then exits with status 0. */
    private static void quits(QmpSide s) throws Exception {
        String log = "";
        try {
            s.qmp().execute("quit");
        } catch (IOException e) {
            s.process().waitFor(10, TimeUnit.SECONDS);
            log = Files.readString(s.log());
            throw new AssertionError("quit was not answered: " + e.getMessage() + "; exit "
                    + (s.process().isAlive() ? "none" : s.process().exitValue()) + "; log:\n" + log, e);
        }
        assertThat(s.process().waitFor(30, TimeUnit.SECONDS)).as("quit ends it").isTrue();
        assertThat(s.process().exitValue()).as(log).isZero();
    }

    @Test
    void postcopyActive() throws Exception {
        QmpSide[] p = postcopy("");
        String ram = ram(p[0]);
        kill(p[1]);
        assertSourcePausedIntact(p[0], ram);
        QmpSide[] q = postcopy("");
        kill(q[0]);
        assertDestinationPausedAnswering(q[1]);
    }

    @Test
    void postcopyPaused() throws Exception {
        QmpSide[] p = postcopy("");
        String ram = ram(p[0]);
        p[0].pausePostcopy();
        awaitStatus(p[1], "postcopy-paused");
        kill(p[1]);
        assertSourcePausedIntact(p[0], ram);
        QmpSide[] q = postcopy("");
        q[0].pausePostcopy();
        awaitStatus(q[1], "postcopy-paused");
        kill(q[0]);
        assertDestinationPausedAnswering(q[1]);
    }

    /** Both paused, a recovery started and held on the destination just after it accepted the source. */
    private QmpSide[] recovering(String hold) throws Exception {
        QmpSide[] p = postcopy("stall:point=recover,ms=" + hold);
        p[0].pausePostcopy();
        awaitStatus(p[0], "postcopy-paused");
        awaitStatus(p[1], "postcopy-paused");
        String uri = "tcp:127.0.0.1:" + freePort();
        p[1].recover(uri);
        p[0].resume(uri);
        awaitPoint(p[1], "recover");
        awaitStatus(p[0], "postcopy-recover");
        return p;
    }

    @Test
    void recovery() throws Exception {
        QmpSide[] p = recovering("60000");
        String ram = ram(p[0]);
        kill(p[1]);
        assertSourcePausedIntact(p[0], ram); // its recovery failed: paused again
        QmpSide[] q = recovering("2000");
        kill(q[0]);
        // The held recovery connection goes on after the hold and finds its source gone: paused again.
        awaitLog(q[1], "postcopy paused (", 2);
        assertDestinationPausedAnswering(q[1]);
    }
}
