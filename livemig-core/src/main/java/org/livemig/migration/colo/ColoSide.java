package org.livemig.migration.colo;

/** One side of a running COLO, as its migration and the monitor reach it. */
public interface ColoSide {
    /**
     * Called with the BQL held, on the main loop: {@code x-colo-lost-heartbeat}'s bottom half;
     * this side goes on alone.
     */
    void failover();

    /** The migration is being ended for good (the machine closing): stop waiting. Any thread. */
    void abandon();

    /** Figures of the checkpoints so far. */
    ColoStats stats();
}
