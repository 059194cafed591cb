package org.livemig.machine;

import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The big lock of one machine (QEMU's BQL). The main loop holds it while it runs bottom halves,
 * timers and monitor commands; run-state changes, device post-load and CPU synchronisation need
 * it; guest RAM access and migration IO must not hold it.
 *
 * <p>{@link #withHeld} and {@link #withoutHeld} are the seed's WITH_BQL_HELD / WITHOUT_BQL_HELD:
 * the caller states whether it holds the lock, the helper checks that claim and takes or drops
 * the lock around the task.
 */
public final class Bql {
    /** A task that may throw a checked exception of type E. */
    @FunctionalInterface
    public interface Task<E extends Exception> {
        void run() throws E;
    }

    /** A task with a result that may throw a checked exception of type E. */
    @FunctionalInterface
    public interface Call<T, E extends Exception> {
        T call() throws E;
    }

    private final ReentrantLock lock = new ReentrantLock();

    public void lock() {
        lock.lock();
    }

    /** Takes the lock, waiting at most {@code millis}; false when it could not. */
    public boolean tryLock(long millis) throws InterruptedException {
        return lock.tryLock(millis, TimeUnit.MILLISECONDS);
    }

    public void unlock() {
        lock.unlock();
    }

    public boolean isHeldByCurrentThread() {
        return lock.isHeldByCurrentThread();
    }

    /** A condition whose await releases the BQL (QEMU's qemu_cond_wait on the BQL). */
    public Condition newCondition() {
        return lock.newCondition();
    }

    /** Asserts the calling thread holds the lock; for methods documented "Called with the BQL held." */
    public void assertHeld() {
        if (!lock.isHeldByCurrentThread()) {
            throw new AssertionError("BQL not held by " + Thread.currentThread().getName());
        }
    }

    /** Asserts the calling thread does not hold the lock; for code that may block on IO. */
    public void assertNotHeld() {
        if (lock.isHeldByCurrentThread()) {
            throw new AssertionError("BQL held by " + Thread.currentThread().getName()
                    + " where it must not be (blocking IO)");
        }
    }

    /** Runs {@code task} with the lock held; {@code bqlHeld} says whether the caller holds it already. */
    public <E extends Exception> void withHeld(boolean bqlHeld, Task<E> task) throws E {
        if (bqlHeld) {
            assertHeld();
            task.run();
            return;
        }
        assertNotHeld();
        lock.lock();
        try {
            task.run();
        } finally {
            lock.unlock();
        }
    }

    /** As {@link #withHeld(boolean, Task)}, returning a result. */
    public <T, E extends Exception> T callWithHeld(boolean bqlHeld, Call<T, E> task) throws E {
        if (bqlHeld) {
            assertHeld();
            return task.call();
        }
        assertNotHeld();
        lock.lock();
        try {
            return task.call();
        } finally {
            lock.unlock();
        }
    }

    /** Runs {@code task} with the lock released; {@code bqlHeld} says whether the caller holds it. */
    public <E extends Exception> void withoutHeld(boolean bqlHeld, Task<E> task) throws E {
        if (!bqlHeld) {
            assertNotHeld();
            task.run();
            return;
        }
        assertHeld();
        if (lock.getHoldCount() != 1) {
            throw new AssertionError("BQL taken recursively; cannot drop it for blocking work");
        }
        lock.unlock();
        try {
            task.run();
        } finally {
            lock.lock();
        }
    }
}
