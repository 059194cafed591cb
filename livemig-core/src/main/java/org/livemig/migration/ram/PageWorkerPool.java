package org.livemig.migration.ram;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * A fixed pool of page workers, as QEMU 7.2's compress and decompress threads are: one thread per
 * worker, one page job at a time, handed over by the owning thread (the migration or loading
 * thread) through the worker's {@code busy} flag under {@link #lock}. A worker's job fields are
 * its thread's while busy and the owner's otherwise. The first failure is kept and thrown to the
 * owner at its next call; every wait is a 100 ms slice that ends on failure or shutdown.
 *
 * @param <W> the worker, with its codec state and job fields
 */
abstract class PageWorkerPool<W extends PageWorkerPool.Worker> implements AutoCloseable {
    private static final long JOIN_MILLIS = 10_000;

    /** One thread's slot: its id and, under the pool's lock, whether it has a job. */
    static class Worker {
        final int id;
        Thread thread;
        boolean busy; // guarded by the pool's lock

        Worker(int id) {
            this.id = id;
        }
    }

    private final String what;
    final List<W> workers;
    private final ReentrantLock lock = new ReentrantLock();
    /** Signalled when a worker gets a job, when one finishes, on failure and on shutdown. */
    private final Condition changed = lock.newCondition();
    private volatile boolean stopping;
    /** The first failure; set under lock, read without it to fail fast. */
    private volatile IOException failure;

    /** @param what "compress" or "decompress": the parameter's name and the words of errors */
    PageWorkerPool(String what, List<W> workers) {
        this.what = what;
        this.workers = List.copyOf(workers);
    }

    /** {@code n} workers made by {@code make}, once {@code n} is checked as QEMU's *-threads. */
    static <W extends Worker> List<W> workers(String what, int n, java.util.function.IntFunction<W> make) {
        if (n < 1 || n > 255) {
            throw new IllegalArgumentException(what + "-threads must be 1..255, not " + n);
        }
        List<W> list = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            list.add(make.apply(i));
        }
        return list;
    }

    /** Starts the threads; the subclass calls it last in its constructor, its fields set. */
    final void start(String threadPrefix) {
        for (W w : workers) {
            w.thread = Thread.ofPlatform().name(threadPrefix + w.id).daemon(true).start(() -> run(w));
        }
    }

    /** On the worker's thread: does its job. An IOException fails the pool, the worker goes on. */
    abstract void work(W w) throws IOException;

    /** On the worker's thread as it ends: frees its codec. */
    abstract void release(W w);

    /** The error the owner sees for the pool's failure {@code f}. */
    IOException rethrown(IOException f) {
        return new IOException(f.getMessage(), f);
    }

    /** The owner: an idle worker, waiting for one when {@code wait}; null when none is idle and not waiting. */
    final W idle(boolean wait) throws IOException {
        lock.lock();
        try {
            while (true) {
                check();
                for (W w : workers) {
                    if (!w.busy) {
                        return w;
                    }
                }
                if (!wait) {
                    return null;
                }
                awaitChange();
            }
        } finally {
            lock.unlock();
        }
    }

    /** The owner: gives {@code w} the job its fields now describe. */
    final void handOver(W w) {
        lock.lock();
        try {
            w.busy = true;
            changed.signalAll();
        } finally {
            lock.unlock();
        }
    }

    /** The owner: waits until {@code w} has finished its job. */
    final void awaitDone(W w) throws IOException {
        lock.lock();
        try {
            while (w.busy) {
                awaitChange();
            }
        } finally {
            lock.unlock();
        }
    }

    /** The owner: waits until every worker has finished, then throws the pool's failure, if any. */
    final void awaitAll() throws IOException {
        for (W w : workers) {
            awaitDone(w);
        }
        check();
    }

    /** Lock held: a bounded wait that ends early on a change, a failure or shutdown. */
    private void awaitChange() throws IOException {
        check();
        try {
            changed.await(100, TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted waiting for a " + what + " thread", e);
        }
        check();
    }

    private void check() throws IOException {
        IOException f = failure;
        if (f != null) {
            throw rethrown(f);
        }
        if (stopping) {
            throw new IOException(what + " threads were shut down");
        }
    }

    private void fail(IOException e) {
        lock.lock();
        try {
            if (failure == null) {
                failure = e;
            }
            changed.signalAll();
        } finally {
            lock.unlock();
        }
    }

    /** A worker's thread: one job at a time until shut down. */
    private void run(W w) {
        try {
            while (true) {
                lock.lock();
                try {
                    while (!w.busy && !stopping) {
                        changed.await(100, TimeUnit.MILLISECONDS);
                    }
                    if (!w.busy) {
                        return;
                    }
                } finally {
                    lock.unlock();
                }
                try {
                    work(w);
                } catch (IOException e) {
                    fail(e);
                }
                lock.lock();
                try {
                    w.busy = false;
                    changed.signalAll();
                } finally {
                    lock.unlock();
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (RuntimeException e) {
            // The owner sees it at its next call rather than waiting for this worker.
            fail(new IOException(what + " thread " + w.id + " failed: " + e, e));
        } finally {
            release(w);
        }
    }

    /** Unblocks every wait (cancel, yank, a failed migration); any thread. */
    final void shutdown() {
        stopping = true;
        lock.lock();
        try {
            changed.signalAll();
        } finally {
            lock.unlock();
        }
    }

    /** Shuts down and joins the threads (bounded); jobs not yet collected are dropped. Any thread. */
    @Override
    public final void close() {
        shutdown();
        List<Thread> alive = new ArrayList<>();
        for (W w : workers) {
            try {
                w.thread.join(JOIN_MILLIS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            if (w.thread.isAlive()) {
                alive.add(w.thread);
            }
        }
        if (!alive.isEmpty()) {
            System.getLogger(getClass().getName()).log(System.Logger.Level.WARNING,
                    what + " threads still running after " + JOIN_MILLIS + " ms: " + alive);
        }
    }
}
