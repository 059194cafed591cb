package org.livemig.machine;

/** Observer of machine life-cycle events (the monitor turns them into STOP, RESUME, SHUTDOWN). */
public interface MachineListener {
    /** Called with the BQL held, on the thread that changed the state. */
    default void runStateChanged(RunState from, RunState to) {}

    /** Called when a shutdown was requested (QMP quit); any thread. */
    default void shutdownRequested() {}
}
