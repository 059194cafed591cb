package org.livemig.memory;

/**
 * Real-time scheduling (Linux {@code SCHED_FIFO}) for the calling thread: for the few threads a
 * vCPU waiting on a postcopy page depends on, which otherwise can wait a whole scheduler tick
 * behind busy threads (see {@code migration.RequestThreads}). It lives beside {@link Libc}, the
 * project's one binding to the C library.
 *
 * <p>Needs CAP_SYS_NICE or an RLIMIT_RTPRIO at least the priority asked for; without either the
 * call fails and the thread keeps its normal scheduling. Such a thread preempts every normal one
 * the moment it is woken, so only threads that do little per wakeup should use it; the kernel's
 * real-time throttling still leaves normal threads 5% of each CPU.
 */
public final class ThreadScheduling {
    /** The highest SCHED_FIFO priority Linux accepts (the lowest is 1). */
    public static final int MAX_PRIORITY = 99;

    private ThreadScheduling() {}

    /**
     * Puts the calling thread in SCHED_FIFO at {@code priority} (1 to {@link #MAX_PRIORITY}).
     * Returns null when it did, else why not (the thread is then unchanged).
     */
    public static String useFifo(int priority) {
        if (priority < 1 || priority > MAX_PRIORITY) {
            throw new IllegalArgumentException("SCHED_FIFO priority must be 1 to " + MAX_PRIORITY + ", not " + priority);
        }
        String unavailable = Libc.unavailableReason();
        if (unavailable != null) {
            return unavailable;
        }
        if (Libc.schedSetscheduler(Libc.SCHED_FIFO, priority) != 0) {
            int errno = Libc.errno();
            return "sched_setscheduler(SCHED_FIFO, " + priority + "): " + Libc.strerror(errno)
                    + (errno == Libc.EPERM ? " (needs CAP_SYS_NICE or RLIMIT_RTPRIO)" : "");
        }
        return null;
    }

    /** Whether the calling thread runs in SCHED_FIFO. */
    public static boolean isFifo() {
        return Libc.unavailableReason() == null && Libc.schedGetscheduler() == Libc.SCHED_FIFO;
    }
}
