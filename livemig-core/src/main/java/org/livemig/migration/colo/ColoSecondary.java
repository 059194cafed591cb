package org.livemig.migration.colo;

import java.io.IOException;
import java.lang.System.Logger.Level;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.function.LongConsumer;
import org.livemig.machine.Machine;
import org.livemig.machine.RunState;
import org.livemig.machine.SerialOutput;
import org.livemig.migration.LoadVm;
import org.livemig.migration.MigrationStatus;
import org.livemig.migration.RamLoader;
import org.livemig.stream.ColoMessage;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.StreamFormatException;
import org.livemig.trace.Trace;
import org.livemig.transport.MigrationConnection;

/**
 * The secondary's COLO, as the seed leaves it: {@code mig/dst/main} finishes the initial load and
 * calls {@link #incomingWait} (QEMU's colo_incoming_wait), which starts {@code mig/dst/colo} and
 * waits for it without the BQL; the failover ends it. {@code mig/dst/colo} runs the guest from the
 * initial state, sends READY, and answers each checkpoint: REPLY; the RAM goes into the
 * {@link ColoCache} while the guest still runs; the device state is read whole and decoded (no
 * lock); RECEIVED; then, with the BQL held and the guest stopped, the cache is flushed into RAM,
 * the devices applied and the CPUs synchronised, the guest runs again; LOADED. A checkpoint that
 * is cut or corrupt fails before anything of it reaches the guest, which keeps the state of its
 * last complete checkpoint (and what it has run since).
 *
 * <p>Its guest's output goes to the primary for comparison ({@link OutputMirror}), not out.
 */
public final class ColoSecondary implements ColoSide {
    private static final System.Logger LOG = System.getLogger(ColoSecondary.class.getName());
    public static final String THREAD_NAME = "mig/dst/colo";

    /** What the COLO secondary needs of its incoming migration. */
    public interface Host extends ColoSide.Host {
    }

    private final Host host;
    private final Machine machine;
    private final ColoState state;
    private final LoadVm load;
    private final RamLoader loader;
    private final MigrationFile in;
    private final MigrationFile out;
    private final MigrationConnection compareChannel;
    private final ColoStats stats = new ColoStats();
    private volatile boolean abandoned;
    private volatile LongConsumer checkpointHook;
    private volatile Thread coloThread;

    /**
     * @param in             the main stream, from the primary, after the initial migration
     * @param out            the same connection's other direction, to the primary
     * @param compareChannel where the guest's output goes to be compared, or null
     */
    public ColoSecondary(Host host, ColoState state, LoadVm load, RamLoader loader, MigrationFile in,
            MigrationFile out, MigrationConnection compareChannel) {
        this.host = host;
        this.machine = host.machine();
        this.state = state;
        this.load = load;
        this.loader = loader;
        this.in = in;
        this.out = out;
        this.compareChannel = compareChannel;
    }

    @Override
    public ColoStats stats() {
        return stats;
    }

    /**
     * Test hook: called with each checkpoint's number on {@code mig/dst/colo} with the BQL held,
     * the guest stopped, RAM flushed and devices applied: the state the primary sent.
     */
    public void setCheckpointHook(LongConsumer hook) {
        this.checkpointHook = hook;
    }

    /**
     * Called without the BQL on {@code mig/dst/main} (QEMU's colo_incoming_wait): starts
     * {@code mig/dst/colo} and waits for it to end, which a failover brings about. No coroutine and
     * no lock juggling: this thread holds nothing while it waits.
     */
    public void incomingWait() throws InterruptedException {
        machine.bql().assertNotHeld();
        Thread t = Thread.ofPlatform().name(THREAD_NAME).daemon(true).unstarted(this::run);
        coloThread = t;
        t.start();
        t.join();
    }

    private void run() {
        state.enter(ColoState.Mode.SECONDARY);
        host.status().transition(MigrationStatus.ACTIVE, MigrationStatus.COLO);
        SerialOutput original = machine.serialOutput();
        OutputMirror mirror = null;
        ColoCache cache = null;
        try {
            cache = new ColoCache(machine.ram());
            cache.fillFromRam();
            loader.useMultifd(null); // the initial migration's channels are done; checkpoints use the main stream
            if (compareChannel != null) {
                mirror = new OutputMirror(compareChannel);
                machine.setSerialOutput(mirror);
            }
            // As QEMU's secondary: it runs whatever -S said.
            machine.bql().withHeld(false, machine::vmStart);
            ColoMessage.CHECKPOINT_READY.write(out);
            while (host.status().get() == MigrationStatus.COLO) {
                ColoMessage.expect(in, ColoMessage.CHECKPOINT_REQUEST);
                if (state.failover() != ColoState.Failover.NONE) {
                    break;
                }
                checkpoint(cache, mirror);
            }
        } catch (IOException | RuntimeException e) {
            if (state.failover() == ColoState.Failover.NONE) {
                LOG.log(Level.WARNING, "COLO secondary: " + ColoPrimary.describe(e));
            }
        } finally {
            loader.redirectTo(null);
            boolean request = state.failover() != ColoState.Failover.NONE;
            state.exited(ColoState.Mode.SECONDARY, request);
            awaitFailover();
            if (mirror != null) {
                mirror.close();
            }
            machine.setSerialOutput(original);
            if (cache != null) {
                cache.close();
            }
            state.leave();
            LOG.log(Level.INFO, "COLO secondary ended after " + stats.checkpoints() + " checkpoints"
                    + (request ? " (failover)" : ""));
        }
    }

    /** One checkpoint (QEMU's colo_incoming_process_checkpoint), after its REQUEST. */
    private void checkpoint(ColoCache cache, OutputMirror mirror) throws IOException {
        long start = in.position();
        ColoMessage.CHECKPOINT_REPLY.write(out);
        ColoMessage.expect(in, ColoMessage.VMSTATE_SEND);
        // The RAM the primary's guest dirtied: into the cache, no lock (the guest runs on its own RAM).
        long ramStart = in.position();
        loader.redirectTo(cache);
        LoadVm.Result r = load.loadvmStateMain(in, false);
        loader.redirectTo(null);
        if (r != LoadVm.Result.EOF) {
            throw new StreamFormatException("COLO checkpoint's RAM did not end with EOF", in.position());
        }
        long ramBytes = in.position() - ramStart;
        long size = ColoMessage.readSize(in);
        byte[] devices = in.getBytes((int) size);
        List<LoadVm.StagedSection> staged = load.stageDevices(MigrationFile.ofBytes(devices));
        ColoMessage.VMSTATE_RECEIVED.write(out);
        long k = stats.checkpoints() + 1;
        long[] pause = new long[1];
        boolean applied = machine.bql().callWithHeld(false, () -> {
            if (state.failover() != ColoState.Failover.NONE) {
                return false; // the failover came first: the guest keeps its last checkpoint
            }
            long t0 = System.nanoTime();
            machine.vmStop(RunState.COLO);
            cache.flush();
            load.applyStaged(staged);
            LongConsumer hook = checkpointHook;
            if (hook != null) {
                hook.accept(k); // before the CPU sync, which lets the main loop run (devices may change)
            }
            machine.cpuSynchronizeAllPostInit();
            if (mirror != null) {
                mirror.checkpointApplied(k);
            }
            machine.vmStart();
            pause[0] = System.nanoTime() - t0;
            return true;
        });
        if (!applied) {
            throw new IOException("failover requested");
        }
        ColoMessage.VMSTATE_LOADED.write(out);
        stats.checkpoint(in.position() - start, ramBytes, size, pause[0]);
        Trace.coloCheckpoint("secondary", k, in.position() - start, ramBytes, size, pause[0]);
    }

    /**
     * Called with the BQL held, on the main loop (x-colo-lost-heartbeat's bottom half): the
     * secondary goes on alone with the state it has. Status colo to completed, the connections
     * shut so that {@code mig/dst/colo} stops at once, the failover completed;
     * {@code mig/dst/main} then finishes the incoming migration and runs the guest.
     */
    @Override
    public void failover() {
        ColoSide.takeOver(host, state, coloThread);
    }

    /** After the loop: waits for the failover to complete (or the migration to be abandoned). */
    private void awaitFailover() {
        while (state.failover() != ColoState.Failover.COMPLETED && !abandoned) {
            LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(20));
        }
    }

    @Override
    public void abandon() {
        abandoned = true;
        host.shutdownChannels();
        Thread t = coloThread;
        if (t != null) {
            LockSupport.unpark(t);
        }
    }
}
