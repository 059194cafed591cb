package org.livemig.monitor;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.logging.Handler;
import java.util.logging.LogRecord;
import java.util.logging.Logger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.livemig.machine.Machine;
import org.livemig.machine.RunState;
import org.livemig.transport.FaultInjectingConnection;
import org.livemig.transport.FaultSpec;

/**
 * The connection cut and {@code migrate_cancel} at every phase of a migration, between two
 * machines behind their own QMP servers in this JVM, driven over QMP; the same phases with either
 * process killed are livemig-cli's {@code KillAtEveryPhaseTest}, and the README's "Faults at every
 * phase" has the whole table. Phases are reached through the named fault points of
 * {@code transport.FaultPoints} ({@code Migration.setFaultInjection}).
 *
 * <p>What holds: the source runs its guest again, with its RAM unchanged, whenever the
 * destination cannot have started it; once the last byte has gone out the source keeps its guest
 * paused (the destination, which has it all, completes); in postcopy a cut pauses both sides and
 * a recovery completes, and migrate_cancel is refused as newer QEMU refuses it; nothing hangs.
 */
class PhaseFaultTest {
    private static final long RAM = 16L << 20;

    @TempDir
    Path dir;

    private final List<AutoCloseable> open = new ArrayList<>();
    private final List<String> faultLog = new CopyOnWriteArrayList<>();
    private final Logger faultLogger = Logger.getLogger(FaultInjectingConnection.class.getName());
    private final Handler capture = new Handler() {
        @Override
        public void publish(LogRecord r) {
            faultLog.add(r.getMessage());
        }

        @Override
        public void flush() {}

        @Override
        public void close() {}
    };
    private int names;

    @BeforeEach
    void captureFaultPoints() {
        faultLogger.addHandler(capture);
    }

    @AfterEach
    void closeAll() throws Exception {
        faultLogger.removeHandler(capture);
        for (int i = open.size() - 1; i >= 0; i--) {
            open.get(i).close();
        }
    }

    /** A source idling on random RAM and a destination with -S, return path and events on both, with faults. */
    private LivemigVm[] pair(FaultSpec srcFaults, FaultSpec dstFaults) throws Exception {
        int n = ++names;
        LivemigVm src = LivemigVm.start(dir, LivemigVm.config("src" + n, RAM, "idle").withFill(Machine.Fill.RANDOM),
                RunState.RUNNING);
        open.add(src);
        LivemigVm dst = LivemigVm.start(dir, LivemigVm.config("dst" + n, RAM, "idle"), RunState.INMIGRATE);
        open.add(dst);
        dst.migration.setAutostart(false);
        src.migration.setFaultInjection(srcFaults, FaultSpec.NONE);
        dst.migration.setFaultInjection(FaultSpec.NONE, dstFaults);
        for (QmpVm v : List.of(src, dst)) {
            v.caps("return-path", "events");
        }
        return new LivemigVm[] {src, dst};
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }

    private static String migrate(LivemigVm src, LivemigVm dst, long bandwidth) throws IOException {
        src.params("max-bandwidth", bandwidth);
        String uri = "tcp:127.0.0.1:" + freePort();
        dst.cmd("migrate-incoming", "uri", uri, "exit-on-error", false);
        src.cmd("migrate", "uri", uri);
        return uri;
    }

    private void awaitHeldAt(String point) {
        await().atMost(QmpVm.LONG).until(() -> faultLog.contains("fault point " + point + ": injected stall of 30000 ms")
                || faultLog.contains("fault point " + point + ": injected stall of 3000 ms"));
    }

    /** The source failed (or was cancelled), runs its guest again, its RAM as before; the destination failed. */
    private static void sourceResumed(LivemigVm src, LivemigVm dst, String status, String ramBefore) throws IOException {
        src.awaitStatus(status, "completed");
        assertThat(src.runState()).isEqualTo("running");
        assertThat(src.ramHash()).isEqualTo(ramBefore);
        dst.awaitStatus("failed", "completed");
        assertThat(dst.runState()).isEqualTo("inmigrate");
    }

    @Test
    void setup() throws Exception {
        LivemigVm[] p = pair(FaultSpec.builder().cutAt("setup").build(), FaultSpec.NONE);
        String before = p[0].ramHash();
        migrate(p[0], p[1], 0);
        sourceResumed(p[0], p[1], "failed", before);
        assertThat(p[0].cmd("query-migrate").path("error-desc").asString()).contains("injected cut at point setup");

        LivemigVm[] q = pair(FaultSpec.builder().stallAt("setup", java.time.Duration.ofSeconds(30)).build(), FaultSpec.NONE);
        String before2 = q[0].ramHash();
        migrate(q[0], q[1], 0);
        awaitHeldAt("setup");
        assertThat(q[0].migrationStatus()).isEqualTo("setup");
        q[0].cmd("migrate_cancel"); // its shutdown ends the stall at once
        sourceResumed(q[0], q[1], "cancelled", before2);
    }

    @Test
    void activePrecopy() throws Exception {
        LivemigVm[] p = pair(FaultSpec.builder().cut(FaultSpec.Direction.OUT, 2L << 20).build(), FaultSpec.NONE);
        String before = p[0].ramHash();
        migrate(p[0], p[1], 4L << 20);
        sourceResumed(p[0], p[1], "failed", before);

        LivemigVm[] q = pair(FaultSpec.NONE, FaultSpec.NONE);
        String before2 = q[0].ramHash();
        migrate(q[0], q[1], 4L << 20);
        await().atMost(QmpVm.LONG).until(() -> q[0].cmd("query-migrate").path("ram").path("transferred").asLong() > (1L << 20));
        q[0].cmd("migrate_cancel");
        sourceResumed(q[0], q[1], "cancelled", before2);
    }

    @Test
    void deviceStateWithTheSourceStopped() throws Exception {
        LivemigVm[] p = pair(FaultSpec.builder().cutAt("device").build(), FaultSpec.NONE);
        String before = p[0].ramHash();
        migrate(p[0], p[1], 0);
        sourceResumed(p[0], p[1], "failed", before);

        LivemigVm[] q = pair(FaultSpec.builder().stallAt("device", java.time.Duration.ofSeconds(30)).build(), FaultSpec.NONE);
        String before2 = q[0].ramHash();
        migrate(q[0], q[1], 0);
        awaitHeldAt("device");
        assertThat(q[0].migrationStatus()).isEqualTo("device");
        assertThat(q[0].runState()).isEqualTo("finish-migrate");
        q[0].cmd("migrate_cancel");
        sourceResumed(q[0], q[1], "cancelled", before2);
    }

    /**
     * After the last byte: cut on the source's side, cut on the destination's side before its
     * acknowledgement, and migrate_cancel while the destination holds it. Each time the
     * destination, which has everything, completes, and the source keeps its guest paused.
     */
    @Test
    void completion() throws Exception {
        for (FaultSpec[] faults : List.of(
                new FaultSpec[] {FaultSpec.builder().cutAt("complete").build(), FaultSpec.NONE},
                new FaultSpec[] {FaultSpec.NONE, FaultSpec.builder().cutAt("loaded").build()},
                new FaultSpec[] {FaultSpec.NONE, FaultSpec.builder().stallAt("loaded", java.time.Duration.ofSeconds(3)).build()})) {
            LivemigVm[] p = pair(faults[0], faults[1]);
            String before = p[0].ramHash();
            migrate(p[0], p[1], 0);
            boolean cancel = faults[1].toString().startsWith("stall");
            if (cancel) {
                awaitHeldAt("loaded");
                p[0].cmd("migrate_cancel");
            }
            p[0].awaitStatus(cancel ? "cancelled" : "failed", "completed");
            assertThat(p[0].runState()).as(faults[0] + " / " + faults[1]).isEqualTo("paused");
            assertThat(p[0].ramHash()).isEqualTo(before);
            p[1].awaitStatus("completed", "failed");
            assertThat(p[1].ramHash()).isEqualTo(before);
            assertThat(p[1].runState()).isEqualTo("paused"); // -S
        }
    }

    /** A postcopy under way: background pages at 256 KiB/s. */
    private LivemigVm[] postcopy(FaultSpec dstFaults) throws Exception {
        LivemigVm[] p = pair(FaultSpec.NONE, dstFaults);
        p[1].migration.setAutostart(true);
        for (QmpVm v : p) {
            v.caps("postcopy-ram");
        }
        migrate(p[0], p[1], 4L << 20);
        p[0].params("max-postcopy-bandwidth", 256L << 10);
        p[0].awaitStatus("active", "failed", "completed");
        p[0].cmd("migrate-start-postcopy");
        p[0].awaitStatus("postcopy-active", "failed", "completed");
        p[1].awaitStatus("postcopy-active", "failed", "completed");
        return p;
    }

    private static void cancelRefused(QmpVm src) throws IOException {
        assertThat(src.request("migrate_cancel").get("error").get("desc").asString())
                .isEqualTo("Postcopy migration in progress, cannot cancel.");
    }

    /** Recovers a paused postcopy on a new port and waits for both sides to complete. */
    private static void recoverAndComplete(LivemigVm[] p) throws IOException {
        String uri = "tcp:127.0.0.1:" + freePort();
        p[1].oob("migrate-recover", QmpClient.args("uri", uri));
        resume(p[0], uri);
        p[0].params("max-postcopy-bandwidth", 0);
        p[0].awaitStatus("completed", "failed");
        p[1].awaitStatus("completed", "failed");
        assertThat(p[1].runState()).isEqualTo("running");
    }

    /** migrate with resume=true. */
    private static void resume(QmpVm src, String uri) throws IOException {
        var a = QmpClient.args("uri", uri);
        a.put("resume", true);
        src.qmp.execute("migrate", a);
    }

    @Test
    void postcopyActiveAndPaused() throws Exception {
        LivemigVm[] p = postcopy(FaultSpec.NONE);
        cancelRefused(p[0]);
        assertThat(p[0].migrationStatus()).isEqualTo("postcopy-active");
        // The connection cut (a yank: what the operator does to a dead link): both sides pause.
        p[0].yankMigration();
        p[0].awaitStatus("postcopy-paused", "failed", "completed");
        p[1].awaitStatus("postcopy-paused", "failed", "completed");
        assertThat(p[0].runState()).isEqualTo("finish-migrate");
        assertThat(p[1].runState()).isEqualTo("running");
        cancelRefused(p[0]);
        // Paused, the source cannot be cut again (its channel is gone); a recovery completes it.
        recoverAndComplete(p);
    }

    @Test
    void recovery() throws Exception {
        LivemigVm[] p = postcopy(FaultSpec.builder().cutAt("recover").build());
        p[0].oob("migrate-pause", null);
        p[0].awaitStatus("postcopy-paused", "failed", "completed");
        p[1].awaitStatus("postcopy-paused", "failed", "completed");
        String uri = "tcp:127.0.0.1:" + freePort();
        p[1].oob("migrate-recover", QmpClient.args("uri", uri));
        resume(p[0], uri);
        // The destination cut the recovery connection as it took it: the source's recovery
        // fails and it pauses again; the destination never left postcopy-paused.
        await().atMost(QmpVm.LONG).until(() -> faultLog.contains("fault point recover: injected cut"));
        await().atMost(QmpVm.LONG).until(() -> p[0].migrationEvents().stream().filter("postcopy-paused"::equals).count() >= 2
                && p[0].migrationStatus().equals("postcopy-paused"));
        assertThat(p[1].migrationStatus()).isEqualTo("postcopy-paused");
        cancelRefused(p[0]);
        p[1].migration.setFaultInjection(FaultSpec.NONE, FaultSpec.NONE);
        recoverAndComplete(p);
    }
}
