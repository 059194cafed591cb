package org.livemig.migration;

import java.lang.System.Logger.Level;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Consumer;
import org.livemig.vmstate.LoadContext;

/**
 * The destination's pool of load threads (QEMU's {@code mis->load_threads}): threads
 * {@code mig/dst/load_n} run the tasks devices start with {@link LoadContext#startLoadThread},
 * typically assembling and loading state that arrives on the multifd channels, in parallel with
 * {@code mig/dst/main} and with each other. Tasks run without the BQL and take it only to apply
 * what needs it. {@code mig/dst/main} waits for them ({@link #await}) with the BQL released,
 * as the seed's qemu_loadvm_thread_pool_wait does.
 *
 * <p>A device may also {@link #hold} the load open while its state is still arriving and hand the
 * pool short {@link #submitStep steps} as pieces come in: {@code mig/dst/main}, once it waits,
 * runs such steps itself instead of waking a load thread and then waiting to be woken by it
 * (two hand-offs fewer at the end of a small final state), without the BQL as the threads do.
 *
 * <p>A task that throws fails the load: its message is kept (the first one), {@code onFailure}
 * is told at once (the migration then ends its channels), and every other task is asked to quit.
 * Threads start with the first task, or all at once with {@link #start}, and end when the pool
 * is {@link #close closed}.
 */
public final class LoadThreads implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(LoadThreads.class.getName());
    public static final String THREAD_PREFIX = "mig/dst/load_";
    private static final long JOIN_MILLIS = 10_000;

    private record Job(String what, LoadContext.LoadTask task, boolean step) {}

    private final int size;
    private final Consumer<String> onFailure;
    private final ReentrantLock lock = new ReentrantLock();
    /** Signalled when a task ends, a hold is released or a step is queued while mig/dst/main waits idle. */
    private final Condition changed = lock.newCondition();
    /** Signalled (one thread) when a job is queued. */
    private final Condition work = lock.newCondition();
    // Guarded by lock.
    private final List<Job> queue = new ArrayList<>();
    private final List<Thread> threads = new ArrayList<>();
    private int running;
    private int holds;
    /** A thread waits in {@link #await} with nothing in hand: a step queued now goes to it. */
    private boolean helperIdle;
    private boolean closed;
    private volatile boolean quit;
    private volatile String failure;

    /**
     * @param size      threads in the pool (at least 1)
     * @param onFailure told a task's failure message once, on the failing thread
     */
    public LoadThreads(int size, Consumer<String> onFailure) {
        if (size < 1) {
            throw new IllegalArgumentException("a load-thread pool needs at least one thread, not " + size);
        }
        this.size = size;
        this.onFailure = onFailure;
    }

    public int size() {
        return size;
    }

    /**
     * Starts every thread of the pool now, idle until a task comes: called as the incoming
     * migration starts, so that no thread is created inside the switchover's downtime. Any thread.
     */
    public void start() {
        lock.lock();
        try {
            while (!closed && threads.size() < size) {
                threads.add(Thread.ofPlatform().name(THREAD_PREFIX + threads.size()).daemon(true).start(this::work));
            }
        } finally {
            lock.unlock();
        }
    }

    /** Queues {@code task}; a thread takes it at once if one is free. Any thread. */
    public void submit(String what, LoadContext.LoadTask task) {
        enqueue(new Job(what, task, false));
    }

    /**
     * Queues a short step of a held load ({@link #hold}): a load thread runs it, or the thread
     * waiting in {@link #await} when it waits with nothing in hand. Any thread.
     */
    public void submitStep(String what, LoadContext.LoadTask step) {
        enqueue(new Job(what, step, true));
    }

    private void enqueue(Job job) {
        lock.lock();
        try {
            if (closed) {
                throw new IllegalStateException("load threads closed; cannot run " + job.what());
            }
            queue.add(job);
            running++;
            if (threads.size() < size && threads.size() < running) {
                int n = threads.size();
                threads.add(Thread.ofPlatform().name(THREAD_PREFIX + n).daemon(true).start(this::work));
            }
            if (job.step() && helperIdle) {
                helperIdle = false; // it takes this one; a load thread the next
                changed.signalAll();
            } else {
                work.signal();
            }
        } finally {
            lock.unlock();
        }
    }

    /**
     * Keeps the load open ({@link #await} waits, {@link #busy} is true) until the returned
     * release runs (once; later runs do nothing), or the pool is told to quit. Any thread.
     */
    public Runnable hold() {
        lock.lock();
        try {
            holds++;
        } finally {
            lock.unlock();
        }
        AtomicBoolean released = new AtomicBoolean();
        return () -> {
            if (released.compareAndSet(false, true)) {
                lock.lock();
                try {
                    holds--;
                    changed.signalAll();
                } finally {
                    lock.unlock();
                }
            }
        };
    }

    /** {@code mig/dst/load_n}: runs queued tasks until the pool closes. */
    private void work() {
        while (true) {
            Job job;
            lock.lock();
            try {
                while (queue.isEmpty() && !closed) {
                    work.awaitUninterruptibly();
                }
                if (queue.isEmpty()) {
                    return;
                }
                job = queue.removeFirst();
                if (!queue.isEmpty()) {
                    work.signal(); // more queued: the next thread goes on with it
                }
            } finally {
                lock.unlock();
            }
            run(job);
        }
    }

    /** Runs {@code job} on this thread (without the BQL) and counts it ended. */
    private void run(Job job) {
        try {
            job.task().run(() -> quit);
        } catch (Exception | Error e) {
            fail(job.what(), e);
        } finally {
            lock.lock();
            try {
                running--;
                changed.signalAll();
            } finally {
                lock.unlock();
            }
        }
    }

    /** The first queued step, removed; null when none. Called with the lock held. */
    private Job takeStep() {
        for (int i = 0; i < queue.size(); i++) {
            if (queue.get(i).step()) {
                return queue.remove(i);
            }
        }
        return null;
    }

    private void fail(String what, Throwable e) {
        String why = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
        boolean first;
        synchronized (this) {
            first = failure == null && !quit;
            if (first) {
                failure = why;
            }
        }
        quit = true;
        if (first) {
            LOG.log(Level.WARNING, "load thread " + Thread.currentThread().getName() + " (" + what + ") failed: " + why);
            LOG.log(Level.DEBUG, "load thread failure", e);
            onFailure.accept(why);
        }
    }

    /**
     * Called without the BQL; blocks until every submitted task has ended and every hold is
     * released (a task has failed and the others have ended, or the pool was told to quit, ends
     * the holds' wait). Meanwhile it runs queued steps itself rather than wait for a load thread
     * to take them. Returns the first failure's message, or null when all succeeded.
     */
    public String await() throws InterruptedException {
        lock.lock();
        try {
            while (running > 0 || (holds > 0 && !quit && failure == null)) {
                Job step = quit ? null : takeStep();
                if (step != null) {
                    lock.unlock();
                    try {
                        run(step);
                    } finally {
                        lock.lock();
                    }
                    continue;
                }
                helperIdle = true;
                try {
                    changed.await(100, TimeUnit.MILLISECONDS);
                } finally {
                    helperIdle = false;
                }
            }
        } finally {
            lock.unlock();
        }
        String f = failure;
        if (f == null && quit) {
            return "load threads were stopped";
        }
        return f;
    }

    /** True while some task has not ended. */
    public boolean busy() {
        lock.lock();
        try {
            return running > 0 || holds > 0;
        } finally {
            lock.unlock();
        }
    }

    /** The first task's failure, or null. */
    public String failure() {
        return failure;
    }

    /** Asks every task to quit (its shouldQuit turns true): the migration is ending. Any thread. */
    public void shutdown() {
        quit = true;
    }

    /** Shuts down, ends the threads once their tasks returned (bounded) and refuses new tasks. */
    @Override
    public void close() {
        shutdown();
        List<Thread> ts;
        lock.lock();
        try {
            closed = true;
            running -= queue.size(); // never started
            queue.clear();
            holds = 0;
            changed.signalAll();
            work.signalAll();
            ts = List.copyOf(threads);
        } finally {
            lock.unlock();
        }
        for (Thread t : ts) {
            try {
                t.join(JOIN_MILLIS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            if (t.isAlive()) {
                LOG.log(Level.WARNING, t.getName() + " still running after " + JOIN_MILLIS + " ms");
            }
        }
    }
}
