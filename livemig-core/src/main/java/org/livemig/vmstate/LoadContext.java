package org.livemig.vmstate;

import java.io.IOException;
import java.util.function.BooleanSupplier;

/**
 * What an incoming migration offers its handlers ({@link SaveVmHandlers#loadSetup}): the
 * switchover approval, the pool of load threads, and the BQL for the steps that need it.
 */
public interface LoadContext {
    /** One unit of work on a load thread; it returns when done and fails by throwing. */
    @FunctionalInterface
    interface LoadTask {
        /** Runs without the BQL; {@code shouldQuit} turns true when the migration is ending. */
        void run(BooleanSupplier shouldQuit) throws Exception;
    }

    /** Whether this side has the {@code switchover-ack} capability. */
    boolean switchoverAck();

    /**
     * This handler has loaded its initial data (QEMU's qemu_loadvm_approve_switchover): once
     * every handler that needed to approved, SWITCHOVER_ACK goes to the source. Any thread.
     */
    void approveSwitchover() throws IOException;

    /** Threads in the pool ({@code mig/dst/load_n}); 0 when this load has none (no multifd). */
    int loadThreads();

    /**
     * Runs {@code task} on a load thread (QEMU's qemu_loadvm_start_load_thread); {@code mig/dst/main}
     * waits for every task before it completes the load. A task that throws fails the migration
     * with its message.
     */
    void startLoadThread(String what, LoadTask task);

    /**
     * Keeps the load open while this handler's state still arrives in pieces: {@code mig/dst/main}
     * waits (as for a task) until the returned release runs or the migration ends. With
     * {@link #startLoadStep} for the pieces, instead of a task that waits for them.
     */
    Runnable holdLoad(String what);

    /**
     * Runs a short step of a held load (one piece of state to apply) on a load thread, or on
     * {@code mig/dst/main} when it already waits for the load threads; either way without the
     * BQL. A step that throws fails the migration with its message.
     */
    void startLoadStep(String what, LoadTask step);

    /** Takes the BQL for the load steps that need it, from a thread that does not hold it. */
    HookLock hookLock();

    /** Notes that {@code step} of the switchover's load happened now (the destination's timeline); any thread. */
    default void mark(String step) {
    }
}
