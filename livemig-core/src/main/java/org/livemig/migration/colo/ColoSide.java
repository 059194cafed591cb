package org.livemig.migration.colo;

import java.util.concurrent.locks.LockSupport;
import org.livemig.machine.Machine;
import org.livemig.machine.RunState;
import org.livemig.migration.MigrationStatus;
import org.livemig.migration.StatusMachine;

/** One side of a running COLO, as its migration and the monitor reach it. */
public interface ColoSide {
    /** What a side needs of its migration. */
    interface Host {
        Machine machine();

        StatusMachine status();

        /** Shuts the migration's connections down so that blocked IO fails at once. Any thread. */
        void shutdownChannels();
    }

    /**
     * Called with the BQL held, on the main loop: {@code x-colo-lost-heartbeat}'s bottom half;
     * this side goes on alone.
     */
    void failover();

    /** The migration is being ended for good (the machine closing): stop waiting. Any thread. */
    void abandon();

    /** Figures of the checkpoints so far. */
    ColoStats stats();

    /**
     * Called with the BQL held: a side's failover, the same on both. Status colo to completed,
     * the connections shut so that the side's blocked IO ends, the failover completed, and
     * {@code loop} (the side's checkpoint thread, if any) woken.
     */
    static void takeOver(Host host, ColoState state, Thread loop) {
        Machine machine = host.machine();
        machine.bql().assertHeld();
        if (!state.failoverTransition(ColoState.Failover.REQUIRE, ColoState.Failover.ACTIVE)) {
            return;
        }
        // As QEMU's colo_do_failover, the guest stops while the side changes role (STOP, then
        // RESUME tell a management stack it happened); unlike QEMU's, which runs it again only
        // once its COLO thread has ended, it runs again here: nothing of the checkpoint under
        // way can reach it any more (the connections are shut, and a checkpoint applies only
        // with no failover requested, under this lock).
        if (machine.runState().isRunning()) {
            machine.vmStop(RunState.COLO);
        }
        host.status().transition(MigrationStatus.COLO, MigrationStatus.COMPLETED);
        host.shutdownChannels();
        state.failoverTransition(ColoState.Failover.ACTIVE, ColoState.Failover.COMPLETED);
        // QEMU derives the COLO mode from the migration status, which is no longer colo: from
        // here query-colo-status reports mode none with this side as the last mode.
        state.leave();
        if (machine.runState() == RunState.COLO) {
            machine.vmStart();
        }
        if (loop != null) {
            LockSupport.unpark(loop);
        }
    }
}
