package org.livemig.machine;

import java.lang.System.Logger.Level;
import java.util.ArrayDeque;
import java.util.PriorityQueue;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The machine's main loop on thread {@code main}: runs bottom halves (BHs) and timers with the
 * BQL held, and waits without it. Other threads talk to the machine by scheduling a BH here,
 * never by reaching into it.
 */
public final class MainLoop {
    private static final System.Logger LOG = System.getLogger(MainLoop.class.getName());
    public static final String THREAD_NAME = "main";

    /** A periodic or one-shot timer; cancel from any thread. */
    public final class Timer implements Comparable<Timer> {
        private final Runnable task;
        private final long periodNanos;
        private long deadline;
        private volatile boolean cancelled;

        private Timer(Runnable task, long delayNanos, long periodNanos) {
            this.task = task;
            this.periodNanos = periodNanos;
            this.deadline = System.nanoTime() + delayNanos;
        }

        public void cancel() {
            cancelled = true;
        }

        @Override
        public int compareTo(Timer o) {
            return Long.compare(deadline, o.deadline);
        }
    }

    private final Bql bql;
    private final Thread thread;
    // Guarded by queueLock: the hand-over point between other threads and main.
    private final ReentrantLock queueLock = new ReentrantLock();
    private final Condition wake = queueLock.newCondition();
    private ArrayDeque<Runnable> bhs = new ArrayDeque<>();
    private final PriorityQueue<Timer> timers = new PriorityQueue<>();
    private boolean stopping;

    public MainLoop(Bql bql, String machineName) {
        this.bql = bql;
        this.thread = Thread.ofPlatform().name(THREAD_NAME).daemon(true).unstarted(this::loop);
        this.thread.setUncaughtExceptionHandler((t, e) ->
                LOG.log(Level.ERROR, "main loop of " + machineName + " died", e));
    }

    public void start() {
        thread.start();
    }

    public Bql bql() {
        return bql;
    }

    public boolean inMainThread() {
        return Thread.currentThread() == thread;
    }

    public Thread thread() {
        return thread;
    }

    /**
     * Schedules a bottom half: it runs soon on {@code main} with the BQL held. Any thread.
     *
     * @throws java.util.concurrent.RejectedExecutionException once the loop is stopping, so that
     *         no caller waits for work that will never run
     */
    public void schedule(Runnable bh) {
        queueLock.lock();
        try {
            if (stopping) {
                throw new java.util.concurrent.RejectedExecutionException("main loop has stopped");
            }
            bhs.add(bh);
            wake.signal();
        } finally {
            queueLock.unlock();
        }
    }

    /** Adds a timer firing every {@code periodMillis} (≥ 1) on {@code main} with the BQL held. */
    public Timer addPeriodicTimer(long periodMillis, Runnable task) {
        long p = TimeUnit.MILLISECONDS.toNanos(Math.max(1, periodMillis));
        return addTimer(new Timer(task, p, p));
    }

    /** Adds a one-shot timer. */
    public Timer addOneShotTimer(long delayMillis, Runnable task) {
        return addTimer(new Timer(task, TimeUnit.MILLISECONDS.toNanos(delayMillis), 0));
    }

    private Timer addTimer(Timer t) {
        queueLock.lock();
        try {
            timers.add(t);
            wake.signal();
        } finally {
            queueLock.unlock();
        }
        return t;
    }

    /**
     * Called without the BQL (or on {@code main}, where the task runs at once): runs {@code task} on
     * the main loop with the BQL held and waits for its result, at most {@code timeoutMillis}.
     */
    public <T> T call(Callable<T> task, long timeoutMillis) throws Exception {
        if (inMainThread()) {
            return task.call();
        }
        bql.assertNotHeld();
        CompletableFuture<T> f = new CompletableFuture<>();
        schedule(() -> {
            try {
                f.complete(task.call());
            } catch (Throwable e) {
                f.completeExceptionally(e);
            }
        });
        try {
            return f.get(timeoutMillis, TimeUnit.MILLISECONDS);
        } catch (ExecutionException e) {
            if (e.getCause() instanceof Exception ex) {
                throw ex;
            }
            throw e;
        } catch (TimeoutException e) {
            throw new TimeoutException("main loop did not run the task within " + timeoutMillis + " ms");
        }
    }

    /** {@link #call} for tasks without a result, with a checked-exception-free signature for tests. */
    public void runAndWait(Runnable task) {
        try {
            call(() -> {
                task.run();
                return null;
            }, 30_000);
        } catch (RuntimeException e) {
            throw e;
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    /** Stops the loop after the BHs already queued; waits for the thread (bounded). */
    public void stop() {
        queueLock.lock();
        try {
            stopping = true;
            wake.signal();
        } finally {
            queueLock.unlock();
        }
        if (!inMainThread()) {
            try {
                thread.join(10_000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    private void loop() {
        ArrayDeque<Runnable> ready = new ArrayDeque<>();
        ArrayDeque<Timer> due = new ArrayDeque<>();
        while (true) {
            queueLock.lock();
            try {
                while (bhs.isEmpty() && !stopping && !timerDue()) {
                    Timer next = timers.peek();
                    if (next == null) {
                        wake.awaitUninterruptibly();
                    } else {
                        try {
                            wake.awaitNanos(next.deadline - System.nanoTime());
                        } catch (InterruptedException e) {
                            Thread.currentThread().interrupt();
                        }
                    }
                }
                // Swapped, not copied: ready is empty here, and addAll would allocate per round.
                ArrayDeque<Runnable> taken = bhs;
                bhs = ready;
                ready = taken;
                long now = System.nanoTime();
                while (!timers.isEmpty() && timers.peek().deadline <= now) {
                    due.add(timers.poll());
                }
                if (stopping && ready.isEmpty()) {
                    return;
                }
            } finally {
                queueLock.unlock();
            }
            bql.lock();
            try {
                for (Runnable r; (r = ready.poll()) != null; ) {
                    runSafely(r);
                }
                for (Timer t; (t = due.poll()) != null; ) {
                    if (t.cancelled) {
                        continue;
                    }
                    runSafely(t.task);
                    if (t.periodNanos > 0 && !t.cancelled) {
                        t.deadline = Math.max(t.deadline + t.periodNanos, System.nanoTime());
                        queueLock.lock();
                        try {
                            timers.add(t);
                        } finally {
                            queueLock.unlock();
                        }
                    }
                }
            } finally {
                bql.unlock();
            }
        }
    }

    private boolean timerDue() {
        Timer t = timers.peek();
        return t != null && t.deadline <= System.nanoTime();
    }

    private static void runSafely(Runnable r) {
        try {
            r.run();
        } catch (Throwable t) {
            LOG.log(Level.ERROR, "bottom half failed", t);
        }
    }
}
