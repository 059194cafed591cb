package org.livemig.monitor;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.livemig.machine.Machine;
import org.livemig.machine.RunState;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * The monitor under load: 16 QMP clients, each on its own connection, poll query-migrate on the
 * source as fast as they can while it migrates. Every command is answered (each client's requests
 * all come back, none after 10 s), no client starves (the least served got at least a quarter of
 * the most served's replies), and the migration completes and verifies. {@code livemig bench
 * qmp-load} measures what the load costs the migration's throughput.
 */
class MonitorUnderLoadTest {
    private static final int CLIENTS = 16;

    @TempDir
    Path dir;

    private final List<AutoCloseable> open = new ArrayList<>();

    @AfterEach
    void closeAll() throws Exception {
        for (int i = open.size() - 1; i >= 0; i--) {
            open.get(i).close();
        }
    }

    @Test
    void sixteenClientsPollingQueryMigrateAreAllAnsweredAndNoneStarves() throws Exception {
        poll(0);
    }

    /**
     * With the monitor paced as {@code livemig run}'s is while it migrates out (here 200 commands
     * a second), the clients take turns: all answered, none starved, and together no faster than
     * the pace.
     */
    @Test
    void aPacedMonitorServesTheClientsInTurnsAtItsPace() throws Exception {
        long[] total = poll(200);
        double seconds = total[1] / 1e9;
        assertThat(total[0]).as("replies in %.2f s", seconds).isLessThanOrEqualTo((long) (200 * seconds * 1.2) + CLIENTS);
    }

    /** Polls during a migration; returns the replies while it ran and how long it ran (ns). */
    private long[] poll(int pace) throws Exception {
        LivemigVm src = LivemigVm.start(dir, LivemigVm.config("src", 64L << 20, "idle").withFill(Machine.Fill.RANDOM),
                RunState.RUNNING, pace);
        open.add(src);
        LivemigVm dst = LivemigVm.start(dir, LivemigVm.config("dst", 64L << 20, "idle"), RunState.INMIGRATE);
        open.add(dst);
        dst.migration.setAutostart(false);
        // 64 MiB at 32 MiB/s: two seconds under load.
        src.params("max-bandwidth", 32L << 20);
        List<QmpClient> clients = new ArrayList<>();
        for (int i = 0; i < CLIENTS; i++) {
            QmpClient c = QmpClient.connect("unix:" + dir.resolve("src.qmp")).timeout(Duration.ofSeconds(10));
            c.negotiate();
            clients.add(c);
            open.add(c);
        }
        AtomicBoolean stop = new AtomicBoolean();
        CountDownLatch started = new CountDownLatch(CLIENTS);
        long[] sent = new long[CLIENTS];
        java.util.concurrent.atomic.AtomicLongArray answered = new java.util.concurrent.atomic.AtomicLongArray(CLIENTS);
        AtomicLong statusesSeen = new AtomicLong();
        AtomicLong replies = new AtomicLong();
        List<CompletableFuture<Void>> pollers = new ArrayList<>();
        for (int i = 0; i < CLIENTS; i++) {
            int n = i;
            pollers.add(CompletableFuture.runAsync(() -> {
                started.countDown();
                try {
                    while (!stop.get()) {
                        sent[n]++;
                        JsonNode q = clients.get(n).execute("query-migrate"); // throws after 10 s unanswered
                        answered.incrementAndGet(n);
                        replies.incrementAndGet();
                        if (q.has("status")) {
                            statusesSeen.incrementAndGet();
                        }
                    }
                } catch (Exception e) {
                    throw new IllegalStateException("client " + n + " after " + answered.get(n) + " replies: " + e, e);
                }
            }, r -> Thread.ofPlatform().name("qmp-load-" + n).start(r)));
        }
        assertThat(started.await(30, TimeUnit.SECONDS)).isTrue();
        dst.cmd("migrate-incoming", "uri", "unix:" + dir.resolve("m.sock"), "exit-on-error", false);
        // The replies while the migration runs, counted up to the moment it ends (the pace stops there).
        long[] atEnd = new long[2];
        // Each client's replies while the migration ran: the pace holds only then (before and
        // after it, a client may be served many times in a row on a busy host).
        long[] perClientAtStart = new long[CLIENTS];
        long[] perClientAtEnd = new long[CLIENTS];
        CountDownLatch ended = new CountDownLatch(1);
        src.migration.addListener(new org.livemig.migration.MigrationEvents() {
            @Override
            public void statusChanged(org.livemig.migration.MigrationStatus status) {
                if (status.isFinal() && ended.getCount() > 0) {
                    atEnd[0] = replies.get();
                    atEnd[1] = System.nanoTime();
                    for (int i = 0; i < CLIENTS; i++) {
                        perClientAtEnd[i] = answered.get(i);
                    }
                    ended.countDown();
                }
            }
        });
        long t0 = System.nanoTime();
        long before = replies.get();
        for (int i = 0; i < CLIENTS; i++) {
            perClientAtStart[i] = answered.get(i);
        }
        src.cmd("migrate", "uri", "unix:" + dir.resolve("m.sock"));
        src.awaitStatus("completed", "failed", "cancelled");
        assertThat(ended.await(10, TimeUnit.SECONDS)).isTrue();
        long during = atEnd[0] - before;
        long migrating = atEnd[1] - t0;
        stop.set(true);
        for (CompletableFuture<Void> p : pollers) {
            p.get(30, TimeUnit.SECONDS);
        }
        dst.awaitStatus("completed", "failed");
        long min = Long.MAX_VALUE;
        long max = 0;
        for (int i = 0; i < CLIENTS; i++) {
            assertThat(answered.get(i)).as("client %d: every request answered", i).isEqualTo(sent[i]);
            long served = pace > 0 ? perClientAtEnd[i] - perClientAtStart[i] : answered.get(i);
            min = Math.min(min, served);
            max = Math.max(max, served);
        }
        assertThat(min).as("least served client (most %d)", max).isGreaterThanOrEqualTo(Math.max(1, max / 4));
        assertThat(statusesSeen.get()).isPositive();
        ObjectNode fs = src.fingerprint();
        ObjectNode fd = dst.fingerprint();
        assertThat(fd.get("ram")).isEqualTo(fs.get("ram"));
        return new long[] {during, migrating};
    }
}
