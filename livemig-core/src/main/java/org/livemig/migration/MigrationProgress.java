package org.livemig.migration;

import java.util.concurrent.TimeUnit;

/**
 * Waits on what a machine's migration reports through its events (status changes, passes), for
 * code that drives a migration in-process: the warm-up, benchmarks. Watch before the migration
 * starts, one watcher per migration.
 */
public final class MigrationProgress implements MigrationEvents {
    private final Object lock = new Object();
    private long passes;
    private boolean ended;

    private MigrationProgress() {}

    /** Starts watching the migrations of {@code m}. */
    public static MigrationProgress watch(Migration m) {
        MigrationProgress p = new MigrationProgress();
        m.addListener(p);
        return p;
    }

    @Override
    public void statusChanged(MigrationStatus status) {
        if (status.isFinal()) {
            synchronized (lock) {
                ended = true;
                lock.notifyAll();
            }
        }
    }

    @Override
    public void pass(long pass) {
        synchronized (lock) {
            // Sync 1 is at setup (QEMU's numbering); sync n + 1 ends pass n.
            passes = Math.max(passes, pass - 1);
            lock.notifyAll();
        }
    }

    /** Waits up to {@code millis} for pass {@code n} to end; false when the migration ended first or time ran out. */
    public boolean awaitPass(long n, long millis) throws InterruptedException {
        synchronized (lock) {
            awaitLocked(() -> passes >= n || ended, millis);
            return passes >= n;
        }
    }

    /** Waits up to {@code millis} for the migration to reach a final status; true when it has. */
    public boolean awaitEnd(long millis) throws InterruptedException {
        synchronized (lock) {
            awaitLocked(() -> ended, millis);
            return ended;
        }
    }

    private void awaitLocked(java.util.function.BooleanSupplier done, long millis) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(millis);
        while (!done.getAsBoolean()) {
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                return;
            }
            TimeUnit.NANOSECONDS.timedWait(lock, left);
        }
    }
}
