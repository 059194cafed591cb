package org.livemig.migration.postcopy;

import java.lang.System.Logger.Level;
import java.util.concurrent.atomic.AtomicInteger;
import org.livemig.memory.ThreadScheduling;

/**
 * Opt-in real-time scheduling for the threads a vCPU waiting on a postcopy page depends on:
 * {@code mig/src/rp_thr}, {@code mig/dst/fault} and {@code mig/dst/preempt}
 * ({@link org.livemig.migration.Migration#setPostcopyRequestPriority}). One per migration, shared by its side's
 * request threads, each of which calls {@link #raise} as it starts.
 *
 * <p>Why: on a machine with fewer cores than busy threads (the background stream keeps one busy
 * on each side, plus vCPUs and the JIT), a woken request thread can wait a whole scheduler tick
 * (4 ms at HZ 250) before it runs, at each hop; a SCHED_FIFO thread runs as soon as it is woken.
 * These threads sleep between requests and do little per wakeup. Off by default, as in QEMU,
 * whose users set it from outside (chrt, libvirt's scheduler settings) when they want it.
 */
public final class RequestThreads {
    private static final System.Logger LOG = System.getLogger(RequestThreads.class.getName());

    /** SCHED_FIFO priority, 0 for normal scheduling. */
    private final int priority;
    /** Threads that {@link #raise} put in SCHED_FIFO. */
    private final AtomicInteger realTime = new AtomicInteger();

    public RequestThreads(int priority) {
        this.priority = priority;
    }

    /**
     * Called by a request thread as it starts: SCHED_FIFO at the priority (0 leaves it alone).
     * A refusal (no CAP_SYS_NICE or RLIMIT_RTPRIO) is logged and the thread goes on as it was.
     */
    public void raise() {
        if (priority == 0) {
            return;
        }
        String why = ThreadScheduling.useFifo(priority);
        if (why != null) {
            LOG.log(Level.WARNING, Thread.currentThread().getName() + " keeps normal scheduling: " + why);
            return;
        }
        realTime.incrementAndGet();
    }

    /** How many threads run real-time through {@link #raise} (tests). */
    public int realTimeThreads() {
        return realTime.get();
    }
}
