package org.livemig.migration;

/**
 * When each step of one side's switchover happened and on which thread, for the log line that
 * breaks the downtime down (the destination's part of it is not visible from the source). Times
 * are {@link System#nanoTime}, one clock for both processes of a host, so the two sides' lines
 * can be put side by side. Any thread (synchronized); at most {@value #MAX} steps are kept.
 */
public final class SwitchoverTimeline {
    private static final int MAX = 64;
    private final long[] at = new long[MAX];
    private final String[] what = new String[MAX];
    private int n;

    /** Records {@code step} now, on the calling thread. */
    public synchronized void mark(String step) {
        if (n < MAX) {
            at[n] = System.nanoTime();
            what[n] = step + "@" + Thread.currentThread().getName();
            n++;
        }
    }

    /** Forgets every step (a new load). */
    public synchronized void clear() {
        n = 0;
    }

    /** The steps, each as milliseconds after the first (whose clock leads); empty when none. */
    public synchronized String format() {
        StringBuilder b = new StringBuilder();
        long origin = -1;
        for (int i = 0; i < n; i++) {
            if (origin < 0) {
                origin = at[i];
                b.append("clock ").append(origin).append(':');
            }
            b.append(String.format(" %s +%.2f", what[i], (at[i] - origin) / 1e6));
        }
        return b.toString();
    }
}
