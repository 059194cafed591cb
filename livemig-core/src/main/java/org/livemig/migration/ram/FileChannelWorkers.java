package org.livemig.migration.ram;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * mapped-ram's channels: a thread and a file descriptor each, doing IO jobs at fixed places of
 * the file (the saver's page runs, the loader's reads). The owning thread ({@code mig/src/main}
 * or {@code mig/dst/main}) hands jobs over through each channel's bounded queue and waits for
 * them all at a section's end. The first failure is kept; after it jobs are dropped, and the
 * owner's next call throws it. Every wait is a 100 ms slice that ends on failure or shutdown.
 *
 * @param <J> a job
 */
final class FileChannelWorkers<J> implements AutoCloseable {
    private static final long SLICE_MILLIS = 100;
    private static final Object STOP = new Object();

    /** A job's IO on its channel's file descriptor. */
    interface Io<J> {
        void run(FileChannel file, J job) throws IOException;
    }

    /** Opens channel {@code i}'s file descriptor. */
    interface Opener {
        FileChannel open(int i) throws IOException;
    }

    private final class Worker {
        final FileChannel file;
        final ArrayBlockingQueue<Object> queue;
        final Thread thread;
        long submitted; // the owner's
        /** Time in this channel's IO jobs (the channel's thread writes, the owner reads after awaitAll). */
        volatile long busyNanos;
        final AtomicLong completed = new AtomicLong();
        final ReentrantLock lock = new ReentrantLock();
        final Condition done = lock.newCondition();

        Worker(String name, FileChannel file, int queueSize) {
            this.file = file;
            this.queue = new ArrayBlockingQueue<>(queueSize);
            this.thread = Thread.ofPlatform().name(name).daemon(true).unstarted(this::run);
        }

        /** Called without the BQL; blocks on IO: the channel's thread. */
        @SuppressWarnings("unchecked")
        private void run() {
            while (true) {
                Object job;
                try {
                    job = queue.poll(SLICE_MILLIS, TimeUnit.MILLISECONDS);
                } catch (InterruptedException e) {
                    return;
                }
                if (job == STOP) {
                    return;
                }
                if (job == null) {
                    if (closed) {
                        return;
                    }
                    continue;
                }
                if (failure.get() == null) {
                    long t0 = System.nanoTime();
                    try {
                        io.run(file, (J) job);
                        busyNanos += System.nanoTime() - t0;
                    } catch (IOException e) {
                        fail(e);
                    } catch (RuntimeException e) {
                        fail(new IOException(what + " " + Thread.currentThread().getName() + ": " + e, e));
                    }
                }
                completed.incrementAndGet();
                lock.lock();
                try {
                    done.signalAll();
                } finally {
                    lock.unlock();
                }
            }
        }
    }

    private final String what;
    private final Io<J> io;
    private final java.util.List<Worker> workers = new java.util.ArrayList<>();
    private final AtomicReference<IOException> failure = new AtomicReference<>();
    private volatile boolean closed;
    /** The owner's time waiting in {@link #submit} for a full queue. */
    private long submitWaitNanos;

    private FileChannelWorkers(String what, Io<J> io) {
        this.what = what;
        this.io = io;
    }

    /**
     * Opens {@code channels} file descriptors with {@code opener} and starts their threads
     * ({@code threadPrefix} and the channel's number).
     *
     * @param what the owner, for errors ("mapped-ram saver")
     */
    static <J> FileChannelWorkers<J> start(String what, String threadPrefix, int channels, int queueSize, Opener opener,
                                           Io<J> io) throws IOException {
        FileChannelWorkers<J> w = new FileChannelWorkers<>(what, io);
        try {
            for (int i = 0; i < channels; i++) {
                w.workers.add(w.new Worker(threadPrefix + i, opener.open(i), queueSize));
            }
        } catch (IOException e) {
            w.close();
            throw e;
        }
        w.startThreads();
        return w;
    }

    private void startThreads() {
        for (Worker x : workers) {
            x.thread.start();
        }
    }

    int size() {
        return workers.size();
    }

    /** The owner: hands {@code job} to channel {@code channel}, waiting while its queue is full. */
    void submit(int channel, J job) throws IOException {
        Worker w = workers.get(channel);
        try {
            if (!w.queue.offer(job)) {
                long t0 = System.nanoTime();
                while (!w.queue.offer(job, SLICE_MILLIS, TimeUnit.MILLISECONDS)) {
                    check();
                }
                submitWaitNanos += System.nanoTime() - t0;
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted while handing " + what + " work to a channel", e);
        }
        w.submitted++;
    }

    /** The owner: waits until every job handed over is done; throws the first failure. */
    void awaitAll() throws IOException {
        for (Worker w : workers) {
            w.lock.lock();
            try {
                while (w.completed.get() < w.submitted) {
                    check();
                    w.done.await(SLICE_MILLIS, TimeUnit.MILLISECONDS);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IOException("interrupted while waiting for " + what + " channels", e);
            } finally {
                w.lock.unlock();
            }
        }
        check();
    }

    /** The owner: its time waiting for full queues so far. */
    long submitWaitNanos() {
        return submitWaitNanos;
    }

    /** The owner, after {@link #awaitAll}: each channel's time in its IO jobs so far. */
    long[] busyNanos() {
        long[] b = new long[workers.size()];
        for (int i = 0; i < b.length; i++) {
            b[i] = workers.get(i).busyNanos;
        }
        return b;
    }

    /** The first failure, or null. Any thread. */
    IOException failure() {
        return failure.get();
    }

    /** Keeps {@code e} as the failure unless there is one already. Any thread. */
    void fail(IOException e) {
        failure.compareAndSet(null, e);
    }

    private void check() throws IOException {
        IOException f = failure.get();
        if (f != null) {
            throw new IOException(f.getMessage(), f);
        }
        if (closed) {
            throw new IOException(what + " closed");
        }
    }

    /** Stops the channels: nothing queued runs after the job under way. Any thread. */
    void shutdown() {
        closed = true;
        fail(new IOException(what + " shut down"));
    }

    /** Stops the threads, joins them (bounded) and closes their file descriptors. Any thread. */
    @Override
    public void close() {
        closed = true;
        for (Worker w : workers) {
            w.queue.clear();
            w.queue.offer(STOP);
        }
        for (Worker w : workers) {
            try {
                w.thread.join(10_000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            try {
                w.file.close();
            } catch (IOException ignored) {
                // the IO is over
            }
        }
    }
}
