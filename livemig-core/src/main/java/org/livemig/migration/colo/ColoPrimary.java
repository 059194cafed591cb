package org.livemig.migration.colo;

import java.io.IOException;
import java.lang.System.Logger.Level;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.function.LongConsumer;
import org.livemig.machine.Machine;
import org.livemig.machine.RunState;
import org.livemig.machine.SerialOutput;
import org.livemig.migration.MigrationStatus;
import org.livemig.migration.RamSaver;
import org.livemig.migration.SaveVm;
import org.livemig.stream.ColoMessage;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.QemuStream;
import org.livemig.trace.Trace;
import org.livemig.transport.MigrationConnection;

/**
 * The primary's COLO (QEMU's colo_process_checkpoint), run by {@code mig/src/main} once the
 * initial migration has ended in status {@code colo}: waits for the secondary's READY, runs the
 * guest, and every {@code x-checkpoint-delay} ms (or at once when the outputs differ) takes a
 * checkpoint: REQUEST, REPLY, the guest stopped, VMSTATE_SEND with the RAM it dirtied since the
 * last checkpoint (an END section of the "ram" handler and EOF), VMSTATE_SIZE and the device
 * state, RECEIVED, LOADED, the guest runs again. Its output is compared with the secondary's
 * ({@link OutputCompare}).
 *
 * <p>It ends with a failover ({@code x-colo-lost-heartbeat}: status completed, the primary goes on
 * alone) or an error (COLO_EXIT with reason error; as QEMU, it then waits for the failover, the
 * guest as it was and the monitor answering). Threads: {@code mig/src/main} runs the loop and
 * takes the BQL only to stop and start the guest and read its devices; the failover runs on the
 * main loop; {@code colo-compare} reads the secondary's output.
 */
public final class ColoPrimary implements ColoSide {
    private static final System.Logger LOG = System.getLogger(ColoPrimary.class.getName());

    /** What the COLO primary needs of its outgoing migration. */
    public interface Host extends ColoSide.Host {
        /** The current x-checkpoint-delay, in ms (migrate-set-parameters applies at once). */
        long checkpointDelayMillis();
    }

    private final Host host;
    private final Machine machine;
    private final ColoState state;
    private final MigrationFile out;
    private final MigrationFile in;
    private final RamSaver saver;
    private final MigrationConnection compareChannel;
    private final ColoStats stats = new ColoStats();
    private volatile Thread loopThread;
    private volatile boolean checkpointAsked;
    private volatile boolean abandoned;
    private volatile OutputCompare compare;
    private volatile LongConsumer checkpointHook;
    /** Test hook: a checkpoint that goes wrong on purpose, and how. */
    private volatile long faultCheckpoint = -1;
    private volatile TestFault fault;

    /** How {@link #injectFault} spoils a checkpoint. */
    public enum TestFault {
        /** The connection is shut after the checkpoint's RAM, before its device state. */
        CUT_AFTER_RAM,
        /** The device state's first byte is flipped (its first section's type). */
        CORRUPT_DEVICE_STATE
    }

    /**
     * @param out            the main stream, to the secondary
     * @param in             the same connection's other direction, from the secondary
     * @param compareChannel the secondary's output, or null (no comparison)
     */
    public ColoPrimary(Host host, ColoState state, MigrationFile out, MigrationFile in, RamSaver saver,
            MigrationConnection compareChannel) {
        this.host = host;
        this.machine = host.machine();
        this.state = state;
        this.out = out;
        this.in = in;
        this.saver = saver;
        this.compareChannel = compareChannel;
        // Before the migration's status says colo (the caller moves it there next): a client that
        // sees colo then sees this mode too, as QEMU's, which derives one from the other.
        state.enter(ColoState.Mode.PRIMARY);
    }

    /** The migration never reached colo (cancelled first): this side was never a primary. */
    public void notStarted() {
        state.enter(ColoState.Mode.NONE);
    }

    public ColoStats stats() {
        return stats;
    }

    /**
     * Test hook: called with each checkpoint's number on {@code mig/src/main} with the BQL held,
     * the guest stopped, just after the device state this checkpoint carries was read.
     */
    public void setCheckpointHook(LongConsumer hook) {
        this.checkpointHook = hook;
    }

    /** Test hook: checkpoint {@code k} goes wrong as {@code f} says. */
    public void injectFault(long k, TestFault f) {
        this.fault = f;
        this.faultCheckpoint = k;
    }

    /** Bytes the output comparison released, and still holds: {released, held, divergences}. */
    public long[] outputCounts() {
        OutputCompare c = compare;
        return c == null ? new long[3] : new long[] {c.released(), c.held(), c.divergences()};
    }

    /**
     * Called without the BQL on {@code mig/src/main}; blocks on IO and until the failover. The
     * status is {@code colo}; returns once COLO has ended (status completed after a failover, or
     * whatever ended the migration).
     */
    public void run() {
        machine.bql().assertNotHeld();
        loopThread = Thread.currentThread();
        SerialOutput original = machine.serialOutput();
        boolean request = false;
        try {
            ColoMessage.expect(in, ColoMessage.CHECKPOINT_READY);
            OutputCompare c = new OutputCompare(original, this::askCheckpoint);
            if (compareChannel != null) {
                c.start(compareChannel);
                compare = c;
                machine.setSerialOutput(c);
            }
            machine.bql().withHeld(false, machine::vmStart);
            saver.useMultifd(null); // the channels ended with the initial migration
            long last = System.nanoTime();
            while (host.status().get() == MigrationStatus.COLO && state.failover() == ColoState.Failover.NONE) {
                if (!awaitNextCheckpoint(last)) {
                    break;
                }
                last = System.nanoTime();
                checkpoint();
            }
        } catch (IOException | RuntimeException e) {
            if (state.failover() == ColoState.Failover.NONE) {
                LOG.log(Level.WARNING, "COLO primary: " + describe(e));
            }
        } finally {
            request = state.failover() != ColoState.Failover.NONE;
            state.exited(ColoState.Mode.PRIMARY, request);
            awaitFailover();
            OutputCompare c = compare;
            if (c != null) {
                c.close();
            }
            machine.setSerialOutput(original);
            state.leave();
            LOG.log(Level.INFO, "COLO primary ended after " + stats.checkpoints() + " checkpoints"
                    + (request ? " (failover)" : ""));
        }
    }

    /**
     * Parks until the delay since {@code lastNanos} has passed, a checkpoint is asked for, or COLO
     * ends (a failover, or the migration abandoned as the machine closes: with a long delay the
     * loop must not outlive the machine whose RAM it would copy).
     */
    private boolean awaitNextCheckpoint(long lastNanos) {
        while (true) {
            if (abandoned || host.status().get() != MigrationStatus.COLO
                    || state.failover() != ColoState.Failover.NONE) {
                return false;
            }
            if (checkpointAsked) {
                checkpointAsked = false;
                return true;
            }
            long left = lastNanos + TimeUnit.MILLISECONDS.toNanos(host.checkpointDelayMillis()) - System.nanoTime();
            if (left <= 0) {
                return true;
            }
            LockSupport.parkNanos(Math.min(left, TimeUnit.MILLISECONDS.toNanos(100)));
        }
    }

    /** The outputs differed: a checkpoint now. Any thread. */
    private void askCheckpoint() {
        checkpointAsked = true;
        Thread t = loopThread;
        if (t != null) {
            LockSupport.unpark(t);
        }
    }

    /** One checkpoint transaction (QEMU's colo_do_checkpoint_transaction). */
    private void checkpoint() throws IOException {
        long start = out.position();
        ColoMessage.CHECKPOINT_REQUEST.write(out);
        ColoMessage.expect(in, ColoMessage.CHECKPOINT_REPLY);
        long stopped = machine.bql().callWithHeld(false, () -> {
            if (state.failover() != ColoState.Failover.NONE) {
                return -1L;
            }
            machine.vmStop(RunState.COLO);
            return System.nanoTime();
        });
        if (stopped < 0) {
            throw new IOException("failover requested");
        }
        out.putBe32(ColoMessage.VMSTATE_SEND.ordinal());
        // Device state first (QEMU too), into memory under the lock; then the RAM the guest
        // dirtied, straight onto the stream without it: the guest is stopped.
        long k = stats.checkpoints() + 1;
        byte[] devices = machine.bql().callWithHeld(false, () -> {
            machine.cpuSynchronizeAllStates();
            MigrationFile buf = MigrationFile.toMemory();
            buf.putBytes(SaveVm.encodeDevices(machine, null));
            buf.putByte(QemuStream.SECTION_EOF);
            LongConsumer hook = checkpointHook;
            if (hook != null) {
                hook.accept(k); // the state this checkpoint carries: RAM as it is, devices as just read
            }
            return buf.toByteArray();
        });
        long ramStart = out.position();
        SaveVm.saveCompleteIterative(machine, out);
        out.putByte(QemuStream.SECTION_EOF);
        long ramBytes = out.position() - ramStart;
        if (faultCheckpoint == k) {
            if (fault == TestFault.CUT_AFTER_RAM) {
                out.flush();
                host.shutdownChannels();
            } else {
                devices[0] ^= (byte) 0xFF; // the first section's type: found before anything is applied
            }
        }
        ColoMessage.writeSize(out, devices.length);
        out.putBytes(devices);
        out.flush();
        ColoMessage.expect(in, ColoMessage.VMSTATE_RECEIVED);
        ColoMessage.expect(in, ColoMessage.VMSTATE_LOADED);
        OutputCompare c = compare;
        if (c != null) {
            c.checkpointDone(k);
        }
        long resumed = machine.bql().callWithHeld(false, () -> {
            if (machine.runState() == RunState.COLO) {
                machine.vmStart();
            }
            return System.nanoTime();
        });
        stats.checkpoint(out.position() - start, ramBytes, devices.length, resumed - stopped);
        Trace.coloCheckpoint("primary", k, out.position() - start, ramBytes, devices.length, resumed - stopped);
    }

    /**
     * Called with the BQL held, on the main loop (x-colo-lost-heartbeat's bottom half): the
     * primary goes on alone. Status colo to completed, the connections shut so that the loop's
     * blocked IO ends, the failover completed.
     */
    @Override
    public void failover() {
        ColoSide.takeOver(host, state, loopThread);
    }

    /** After the loop: waits for the failover to complete (or the migration to be abandoned). */
    private void awaitFailover() {
        while (state.failover() != ColoState.Failover.COMPLETED && !abandoned
                && host.status().get() == MigrationStatus.COLO) {
            LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(100));
        }
    }

    /** True when the migration was ended from outside (the machine closing), not by a failover. */
    public boolean abandoned() {
        return abandoned;
    }

    /** The migration is being ended (cancel, the machine closing): the loop stops waiting. Any thread. */
    @Override
    public void abandon() {
        abandoned = true;
        host.shutdownChannels();
        Thread t = loopThread;
        if (t != null) {
            LockSupport.unpark(t);
        }
    }

    static String describe(Throwable e) {
        String m = e.getMessage();
        return m == null ? e.getClass().getSimpleName() : m;
    }
}
