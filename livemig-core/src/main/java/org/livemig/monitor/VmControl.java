package org.livemig.monitor;

/**
 * What the run-state commands (query-status, stop, cont, quit, query-name) need from a machine.
 * The monitor never holds a machine in static state: whoever builds the server passes one of
 * these to {@link RunStateCommands#register}.
 */
public interface VmControl {
    /** The machine's name ({@code -name}), or null when it has none. */
    String name();

    /** The run state by QEMU's name: "running", "paused", "inmigrate", "postmigrate", ... */
    String runState();

    /** True when the guest's vCPUs run (QEMU's runstate_is_running). */
    boolean isRunning();

    /** Called with the BQL held. Stops the vCPUs; the run state becomes "paused". */
    void vmStop();

    /** Called with the BQL held. Starts the vCPUs; the run state becomes "running". */
    void vmStart();

    /** Asks the main loop to shut the machine down (it finishes the current command first). */
    void requestShutdown();

    /** Subscribes to run-state changes and shutdown requests. */
    void addListener(Listener listener);

    /** Run-state notifications, called on the thread that changed the state (BQL held). */
    interface Listener {
        default void runStateChanged(String from, boolean wasRunning, String to, boolean isRunning) {
        }

        default void shutdownRequested() {
        }
    }
}
