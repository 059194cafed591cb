package org.livemig.migration;

import java.io.IOException;
import java.lang.System.Logger.Level;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.livemig.machine.Machine;
import org.livemig.machine.RunState;
import org.livemig.memory.RamBlock;
import org.livemig.memory.postcopy.PlacementWarmUp;

/**
 * Gets the migration paths compiled before the first real migration needs them.
 *
 * <p>A JVM runs new code in its interpreter and compiles what turns out hot; a machine process's
 * first migration would move its first few hundred MiB at a fraction of the speed, and pay the
 * compilers' CPU on the side (both cores of the machine this was measured on). QEMU, compiled
 * ahead of time, has no such cost, and Java 25's AOT cache keeps profiles, not code. So a
 * process that expects to migrate runs a few small migrations between two scratch machines of
 * its own, over the loopback transports, in the background at startup: source and destination
 * paths, pages and zero pages, dirty passes and a switchover, and a postcopy with demand paging;
 * then both postcopy backends' placement paths ({@link PlacementWarmUp}).
 *
 * <p>It gives way to real work: the process that owns it names the machines whose migrations
 * come first ({@link #giveWayTo}); as soon as one of them reaches setup (outgoing started, or
 * incoming connection accepted), the scratch migration under way is cancelled and no further
 * one starts. Its machines are small (16 MiB each, one vCPU), so it adds little to the process's
 * peak memory. It keeps no global state: a process may run several, or none.
 */
public final class WarmUp {
    private static final System.Logger LOG = System.getLogger(WarmUp.class.getName());
    /** The thread it runs on (low priority, daemon). */
    public static final String THREAD_NAME = "livemig-warm-up";
    /** Scratch migrations in a default warm-up: each kind at least once, in both transports. */
    public static final int DEFAULT_ROUNDS = 7;
    private static final long SCRATCH_RAM = 16L << 20;
    private static final long STEP_TIMEOUT_MILLIS = 30_000;

    private final Kind[] rounds;
    /** The random and multifd rounds carry an accelerator too (the real machine has some). */
    private final boolean accelerators;
    private final Thread thread;
    private final CountDownLatch done = new CountDownLatch(1);
    private volatile boolean yielded;
    private volatile Migration scratchSource;
    /** What each scratch migration sent, in order (written by the warm-up thread only). */
    private final java.util.List<Round> sent = new java.util.concurrent.CopyOnWriteArrayList<>();
    private volatile String failure;
    /** The postcopy placement warm-up's results, once it has run (after the scratch migrations). */
    private volatile java.util.List<PlacementWarmUp.Result> placements = java.util.List.of();

    private WarmUp(Kind[] rounds, boolean accelerators) {
        this.rounds = rounds;
        this.accelerators = accelerators;
        this.thread = Thread.ofPlatform().name(THREAD_NAME).daemon(true).unstarted(this::run);
        thread.setPriority(Thread.MIN_PRIORITY);
    }

    /** Starts a warm-up of {@code rounds} scratch migrations in the background. */
    public static WarmUp start(int rounds) {
        return start(rounds, false);
    }

    /**
     * As {@link #start(int)}; with {@code accelerators} (the real machine has {@code --device}s)
     * the random and multifd rounds carry a small accelerator with switchover-ack, so that its
     * paths (chunks in passes, the final state on the main stream and in device-state packets,
     * the load threads) are compiled before a real switchover needs them.
     */
    public static WarmUp start(int rounds, boolean accelerators) {
        Kind[] kinds = new Kind[rounds];
        for (int i = 0; i < rounds; i++) {
            kinds[i] = ORDER[i % ORDER.length];
        }
        WarmUp w = new WarmUp(kinds, accelerators);
        w.thread.start();
        return w;
    }

    /** Starts a warm-up of these scratch migrations, in this order (tests). */
    static WarmUp start(Kind... rounds) {
        WarmUp w = new WarmUp(rounds.clone(), false);
        w.thread.start();
        return w;
    }

    /**
     * Makes this warm-up give way to the migrations of {@code real}: from now on, when one of
     * them reaches setup, the warm-up stops as soon as it can. Returns this warm-up.
     */
    public WarmUp giveWayTo(Migration real) {
        real.addListener(new MigrationEvents() {
            @Override
            public void statusChanged(MigrationStatus status) {
                if (status == MigrationStatus.SETUP) {
                    giveWay();
                }
            }
        });
        return this;
    }

    /** A real migration begins: the scratch migration under way is cancelled, and no other starts. Any thread. */
    public void giveWay() {
        if (!yielded) {
            yielded = true;
            Migration m = scratchSource;
            if (m != null) {
                m.cancel();
            }
        }
    }

    /** Waits up to {@code millis} for the warm-up to end; true when it has. */
    public boolean await(long millis) throws InterruptedException {
        return done.await(millis, TimeUnit.MILLISECONDS);
    }

    /** The scratch source migration under way, or null (tests). */
    Migration scratchSource() {
        return scratchSource;
    }

    /** Scratch migrations that completed. */
    public int completed() {
        return sent.size();
    }

    /** What each scratch migration that completed sent, in order. */
    public java.util.List<Round> rounds() {
        return java.util.List.copyOf(sent);
    }

    /** What the postcopy placement warm-up did per backend; empty when it did not run. */
    public java.util.List<PlacementWarmUp.Result> placements() {
        return placements;
    }

    /** Whether a real migration made it stop early. */
    public boolean yielded() {
        return yielded;
    }

    /** Why a scratch migration failed, or null. */
    public String failure() {
        return failure;
    }

    private void run() {
        long start = System.nanoTime();
        Path dir = null;
        try {
            JitDirectives.install(); // before anything compiles the page loops
            dir = Files.createTempDirectory("livemig-warm-up");
            PlacementWarmUp.loadBackendClasses();
            for (int i = 0; i < rounds.length && !yielded; i++) {
                // Random pages with a dirtying guest (normal pages, passes, syncs), zero RAM (the
                // zero runs), postcopy with demand paging and the preempt channel, and random
                // pages over multifd channels; TCP and Unix sockets in turn.
                Kind kind = rounds[i];
                String uri = i % 2 == 0 ? "tcp:127.0.0.1:0" : "unix:" + dir.resolve("m" + i + ".sock");
                migrateOnce(kind, uri);
            }
            if (!yielded) {
                placements = PlacementWarmUp.run(PlacementWarmUp.DEFAULT_PLACEMENTS, () -> yielded);
            }
            LOG.log(Level.DEBUG, () -> String.format("warm-up: %d of %d scratch migrations in %d ms%s", sent.size(), rounds.length,
                    (System.nanoTime() - start) / 1_000_000, yielded ? " (gave way to a real migration)" : ""));
        } catch (IOException | RuntimeException e) {
            failure = e.toString();
            LOG.log(Level.DEBUG, "warm-up stopped: " + e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } finally {
            if (dir != null) {
                try (var s = Files.list(dir)) {
                    for (Path p : s.toList()) {
                        Files.deleteIfExists(p);
                    }
                    Files.deleteIfExists(dir);
                } catch (IOException e) {
                    // a leftover socket file in the temp directory is harmless
                }
            }
            done.countDown();
        }
    }

    /** What a scratch migration moves. */
    public enum Kind { RANDOM, ZERO, POSTCOPY, MULTIFD }

    /**
     * One completed scratch migration: its kind, the page records its source sent, and the bytes
     * of its accelerator's state ({@code deviceBytes}; 0 without one), whose final state went over
     * multifd ({@code deviceFinalOverMultifd}) or not.
     */
    public record Round(Kind kind, long normalPages, long zeroPages, long postcopyBytes, long deviceBytes,
                        boolean deviceFinalOverMultifd) {
    }

    /**
     * Every kind once first, so that each path's branches are in the methods' profiles before the
     * page-moving methods are compiled for the last time; then the common kinds again, ending
     * with random pages (a real migration's bulk). Multifd comes second: its branch in
     * RamLoader.loadRecord (the main channel's sync with the channels), first taken in a fifth
     * round, threw away the C2 code of the first rounds, and the rounds after it were too short
     * to compile it again, leaving that to the real migration.
     */
    private static final Kind[] ORDER = {Kind.RANDOM, Kind.MULTIFD, Kind.ZERO, Kind.POSTCOPY, Kind.RANDOM, Kind.ZERO,
        Kind.RANDOM};

    /** One scratch migration; one that completes is added to {@link #rounds()}. */
    private void migrateOnce(Kind kind, String uri) throws InterruptedException {
        Machine.Config base = Machine.Config.defaults().withRam(SCRATCH_RAM).withVcpus(1).withBlobSize(8192);
        String workload = switch (kind) {
            case RANDOM, MULTIFD -> "ab:25000";
            case ZERO -> "idle";
            case POSTCOPY -> "random-writes:64"; // faster than the 32 MiB/s precopy below: it never converges
        };
        boolean postcopy = kind == Kind.POSTCOPY;
        boolean device = accelerators && (kind == Kind.RANDOM || kind == Kind.MULTIFD);
        if (device) {
            base = base.withAccelerators(java.util.List.of(new org.livemig.machine.Accelerator.Spec("warm-up", 4L << 20, 64)));
        }
        // A postcopy destination runs the guest (and its faults) as soon as it has the devices.
        try (Machine src = new Machine(base.withName("warm-up-src").withWorkload(workload)
                     .withFill(kind == Kind.ZERO ? Machine.Fill.ZERO : Machine.Fill.RANDOM));
             Machine d = new Machine(base.withName("warm-up-dst").withWorkload(postcopy ? workload : "idle")
                     .withFill(Machine.Fill.ZERO))) {
            for (Machine m : new Machine[] {src, d}) {
                m.setExitHandler(status -> {
                    throw new IllegalStateException("a warm-up machine may not end the process");
                });
            }
            if (kind != Kind.ZERO) {
                zeroEveryFourthPage(src.mainBlock());
            }
            src.mainLoop().runAndWait(() -> src.boot(RunState.RUNNING));
            d.mainLoop().runAndWait(() -> d.boot(RunState.INMIGRATE));
            Migration sm = new Migration(src, true);
            Migration dm = new Migration(d, true);
            dm.setAutostart(postcopy);
            src.mainLoop().call(() -> {
                sm.setParameters(p -> p.maxBandwidth = postcopy ? 32L << 20 : 0);
                return null;
            }, STEP_TIMEOUT_MILLIS);
            if (postcopy) {
                enablePostcopy(src, sm);
                enablePostcopy(d, dm);
            }
            if (kind == Kind.MULTIFD) {
                enableMultifd(src, sm);
                enableMultifd(d, dm);
            }
            if (device) {
                for (Machine m : new Machine[] {src, d}) {
                    Migration mig = m == src ? sm : dm;
                    m.mainLoop().call(() -> {
                        mig.setCapability(Capability.RETURN_PATH, true);
                        mig.setCapability(Capability.SWITCHOVER_ACK, true);
                        return null;
                    }, STEP_TIMEOUT_MILLIS);
                }
            }
            String bound = d.mainLoop().call(() -> dm.migrateIncoming(uri, false), STEP_TIMEOUT_MILLIS)
                    .boundAddress().uri();
            MigrationProgress srcProgress = MigrationProgress.watch(sm);
            MigrationProgress dstProgress = MigrationProgress.watch(dm);
            scratchSource = sm;
            if (yielded) {
                return;
            }
            Outgoing o = src.mainLoop().call(() -> sm.migrate(bound), STEP_TIMEOUT_MILLIS);
            if (yielded) {
                sm.cancel();
            }
            if (postcopy && srcProgress.awaitPass(1, STEP_TIMEOUT_MILLIS) && !yielded) {
                src.mainLoop().call(() -> {
                    sm.startPostcopy();
                    return null;
                }, STEP_TIMEOUT_MILLIS);
            }
            srcProgress.awaitEnd(STEP_TIMEOUT_MILLIS);
            if (o.status() == MigrationStatus.FAILED) {
                failure = o.error();
            }
            // The source completes once it has sent everything; the destination once it has it all.
            boolean dstDone = dstProgress.awaitEnd(STEP_TIMEOUT_MILLIS);
            if (o.status() == MigrationStatus.COMPLETED && dstDone) {
                RamStats r = o.ramStats();
                AcceleratorHandlers acc = device ? AcceleratorHandlers.of(src, "warm-up") : null;
                sent.add(new Round(kind, r.normalPages.get(), r.zeroPages.get(), r.postcopyBytes.get(),
                        acc == null ? 0 : acc.transferredBytes(), acc != null && acc.finalStateOverMultifd()));
            }
        } catch (Exception e) {
            if (e instanceof InterruptedException ie) {
                throw ie;
            }
            failure = e.toString();
        } finally {
            // The machines are closed by now, which ended their migrations first (Machine.addCloseNotifier).
            scratchSource = null;
        }
    }

    /**
     * Real RAM holds zero pages among the others, and so does a random scratch machine's: each
     * round then takes both branches of the page paths (ZERO or PAGE record, on either side) while
     * they are profiled, and a compiled path that saw only one kind does not fall back to the
     * interpreter at the first page of the other kind (in a later round, or the real migration).
     * Written before the guest runs and before dirty tracking.
     */
    private static void zeroEveryFourthPage(RamBlock block) {
        for (long p = 0; p < block.pageCount(); p += 4) {
            block.page(p).fill((byte) 0);
        }
    }

    /** Postcopy with the preempt channel, on one side. */
    /** Two channels: the sender's hand-over and both channel loops run, as in any multifd migration. */
    private static void enableMultifd(Machine m, Migration mig) throws Exception {
        m.mainLoop().call(() -> {
            mig.setCapability(Capability.MULTIFD, true);
            mig.setParameters(p -> p.multifdChannels = 2);
            return null;
        }, STEP_TIMEOUT_MILLIS);
    }

    private static void enablePostcopy(Machine m, Migration mig) throws Exception {
        m.mainLoop().call(() -> {
            mig.setCapability(Capability.POSTCOPY_RAM, true);
            mig.setCapability(Capability.POSTCOPY_PREEMPT, true);
            return null;
        }, STEP_TIMEOUT_MILLIS);
    }
}
