package org.livemig.bench;

import java.io.PrintStream;
import java.util.Arrays;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.livemig.machine.Machine;
import org.livemig.machine.MachineListener;
import org.livemig.machine.RunState;
import org.livemig.migration.Capability;
import org.livemig.migration.Migration;
import org.livemig.migration.MigrationStatus;
import org.livemig.migration.Outgoing;
import org.livemig.migration.WarmUp;
import org.livemig.migration.colo.ColoPrimary;
import org.livemig.migration.colo.ColoSide;
import org.livemig.migration.colo.ColoStats;

/**
 * {@code livemig bench colo}: a COLO pair in this JVM (RAM pre-faulted before timing), an
 * {@code ab:25000} guest: the primary's pause per checkpoint (guest stopped to guest running
 * again, p50/p99/max) and the checkpoint's size, at two checkpoint delays; beside it, in the same
 * run, the downtime of a plain precopy switchover of the same guest (the baseline: what a
 * checkpoint is, once). Then a failover each way: from {@code x-colo-lost-heartbeat} to the
 * survivor's vCPUs running again.
 */
public final class ColoBench {
    private final long ramBytes;
    private final PrintStream out;
    private final long[] delays;
    private final int checkpoints;

    public ColoBench(long ramBytes, long[] delaysMillis, int checkpoints, PrintStream out) {
        this.ramBytes = ramBytes;
        this.out = out;
        this.delays = delaysMillis.clone();
        this.checkpoints = checkpoints;
    }

    public void run() throws Exception {
        out.printf("livemig bench colo: %d MiB, ab:25000 guest, 2 vCPUs each side, both machines in this JVM,"
                + " RAM pre-faulted before timing; %d checkpoints per delay%n", ramBytes >> 20, checkpoints);
        WarmUp w = WarmUp.start(WarmUp.DEFAULT_ROUNDS);
        w.await(120_000);
        out.printf("load average at start: %s%n", loadAverage());
        long baseline = precopyDowntime();
        out.printf("baseline: plain precopy of the same guest, downtime %d ms%n", baseline);
        out.printf("%-10s %12s %10s %10s %10s %14s %14s%n", "delay", "checkpoints", "p50 ms", "p99 ms", "max ms",
                "size p50 KiB", "vs baseline");
        for (long delay : delays) {
            try (Pair p = Pair.start(ramBytes, delay)) {
                p.awaitCheckpoints(checkpoints + 1);
                ColoStats st = p.primary().stats();
                long[] pauses = st.pauseNanos();
                // The first checkpoint carries what the guest dirtied while the secondary filled its cache: not steady state.
                long[] steady = Arrays.copyOfRange(pauses, 1, pauses.length);
                Arrays.sort(steady);
                out.printf("%-10s %12d %10.1f %10.1f %10.1f %14d %14.2f%n", delay + " ms", steady.length,
                        quantile(steady, 0.5) / 1e6, quantile(steady, 0.99) / 1e6, steady[steady.length - 1] / 1e6,
                        p.sizeP50() >> 10, quantile(steady, 0.99) / 1e6 / Math.max(1, baseline));
            }
        }
        for (String survivor : new String[] {"secondary", "primary"}) {
            try (Pair p = Pair.start(ramBytes, 100)) {
                p.awaitCheckpoints(3);
                double ms = p.failover(survivor.equals("primary"));
                out.printf("failover to the %s: vCPUs running %.2f ms after x-colo-lost-heartbeat%n", survivor, ms);
            }
        }
    }

    private long precopyDowntime() throws Exception {
        try (Pair p = Pair.plain(ramBytes)) {
            Outgoing o = p.src.mainLoop().call(() -> p.srcMig.migrate(p.uri()), 10_000);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
            while (!o.status().isFinal() && System.nanoTime() < deadline) {
                Thread.sleep(10);
            }
            if (o.status() != MigrationStatus.COMPLETED) {
                throw new IllegalStateException("baseline precopy ended " + o.status().qemuName() + ": " + o.error());
            }
            return o.downtimeMillis();
        }
    }

    private static long quantile(long[] sorted, double q) {
        int rank = Math.max(0, Math.min(sorted.length - 1, (int) Math.ceil(q * sorted.length) - 1));
        return sorted[rank];
    }

    private static String loadAverage() {
        try {
            return java.nio.file.Files.readString(java.nio.file.Path.of("/proc/loadavg")).trim();
        } catch (java.io.IOException e) {
            return "unknown";
        }
    }

    /** A primary and a secondary in this JVM. */
    private static final class Pair implements AutoCloseable {
        final Machine src;
        final Machine dst;
        final Migration srcMig;
        final Migration dstMig;
        private String uri;
        private Outgoing outgoing;
        private final java.util.List<Long> sizes = new java.util.concurrent.CopyOnWriteArrayList<>();

        private Pair(long ram, boolean colo, long delay) throws Exception {
            Machine.Config cfg = Machine.Config.defaults().withRam(ram).withVcpus(2).withWorkload("ab:25000")
                    .withBlobSize(4096);
            src = new Machine(cfg.withName("primary"));
            dst = new Machine(cfg.withName("secondary").withFill(Machine.Fill.ZERO).withSeed(cfg.seed() + 1));
            src.mainLoop().runAndWait(() -> src.boot(RunState.RUNNING));
            dst.mainLoop().runAndWait(() -> dst.boot(RunState.INMIGRATE));
            srcMig = new Migration(src);
            dstMig = new Migration(dst);
            for (Migration m : new Migration[] {srcMig, dstMig}) {
                m.machine().mainLoop().call(() -> {
                    if (colo) {
                        m.setCapability(Capability.X_COLO, true);
                    }
                    m.setParameters(p -> {
                        p.maxBandwidth = 0;
                        p.xCheckpointDelay = delay;
                    });
                    return null;
                }, 10_000);
            }
            uri = dst.mainLoop().call(() -> dstMig.migrateIncoming("tcp:127.0.0.1:0", false), 10_000)
                    .boundAddress().uri();
        }

        static Pair plain(long ram) throws Exception {
            Pair p = new Pair(ram, false, 0);
            p.dstMig.setAutostart(false);
            Thread.sleep(500); // the guest dirties memory as in the COLO cases
            return p;
        }

        static Pair start(long ram, long delay) throws Exception {
            Pair p = new Pair(ram, true, delay);
            Thread.sleep(500);
            p.outgoing = p.src.mainLoop().call(() -> p.srcMig.migrate(p.uri), 10_000);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
            while ((p.outgoing.colo() == null || p.dstMig.incoming().colo() == null) && !p.outgoing.status().isFinal()) {
                if (System.nanoTime() > deadline) {
                    throw new IllegalStateException("COLO did not start: " + p.outgoing.status().qemuName());
                }
                Thread.sleep(5);
            }
            if (p.outgoing.status() != MigrationStatus.COLO) {
                throw new IllegalStateException("COLO did not start: " + p.outgoing.status().qemuName() + ": "
                        + p.outgoing.error());
            }
            return p;
        }

        String uri() {
            return uri;
        }

        ColoPrimary primary() {
            return outgoing.colo();
        }

        void awaitCheckpoints(long n) throws InterruptedException {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(300);
            long seen = 0;
            while (primary().stats().checkpoints() < n) {
                long k = primary().stats().checkpoints();
                if (k != seen) {
                    seen = k;
                    sizes.add(primary().stats().lastBytes());
                }
                if (System.nanoTime() > deadline) {
                    throw new IllegalStateException("only " + k + " checkpoints of " + n);
                }
                Thread.sleep(1);
            }
        }

        long sizeP50() {
            long[] s = sizes.stream().skip(1).mapToLong(Long::longValue).sorted().toArray();
            return s.length == 0 ? primary().stats().lastBytes() : s[s.length / 2];
        }

        /** Fails over to one side; returns ms from x-colo-lost-heartbeat to its vCPUs running. */
        double failover(boolean toPrimary) throws Exception {
            Machine m = toPrimary ? src : dst;
            Migration mig = toPrimary ? srcMig : dstMig;
            ColoSide side = mig.colo();
            if (side == null) {
                throw new IllegalStateException("no COLO on the " + (toPrimary ? "primary" : "secondary"));
            }
            // As QEMU's tests: the peer is gone (its migration yanked), then the heartbeat is declared lost.
            if (toPrimary) {
                outgoing.yank();
            } else {
                dstMig.incoming().shutdown();
            }
            Thread.sleep(50);
            CountDownLatch stopped = new CountDownLatch(1);
            CountDownLatch running = new CountDownLatch(1);
            long[] at = new long[1];
            m.addListener(new MachineListener() {
                @Override
                public void runStateChanged(RunState from, RunState to) {
                    if (!to.isRunning()) {
                        stopped.countDown();
                    } else if (stopped.getCount() == 0 && running.getCount() == 1) {
                        at[0] = System.nanoTime();
                        running.countDown();
                    }
                }
            });
            long t0 = System.nanoTime();
            m.mainLoop().call(() -> {
                if (!m.runState().isRunning()) {
                    stopped.countDown(); // stopped already (inside a checkpoint): only its start is awaited
                }
                mig.coloLostHeartbeat();
                return null;
            }, 10_000);
            if (!running.await(30, TimeUnit.SECONDS)) {
                throw new IllegalStateException("the survivor did not run again within 30 s");
            }
            return (at[0] - t0) / 1e6;
        }

        @Override
        public void close() throws Exception {
            src.close();
            dst.close();
        }
    }
}
