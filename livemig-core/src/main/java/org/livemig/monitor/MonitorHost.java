package org.livemig.monitor;

/**
 * Where the monitor runs ordinary commands: the machine's main loop, with the BQL held. The
 * monitor holds no machine state itself; whoever builds the server supplies this.
 */
public interface MonitorHost {
    /**
     * Runs {@code bh} on the main loop thread with the BQL held, later. Called from qmp-io.
     *
     * @throws java.util.concurrent.RejectedExecutionException when the main loop has ended
     */
    void schedule(Runnable bh);

    /** True when the calling thread holds the BQL (out-of-band commands assert it does not). */
    boolean bqlHeldByCurrentThread();
}
