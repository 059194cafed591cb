package org.livemig.monitor;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.ReentrantLock;

/**
 * A stand-in machine for monitor tests: a real {@code main} thread that runs bottom halves with a
 * real lock held (the BQL), and a run state with listeners.
 */
final class TestMachine implements MonitorHost, VmControl, AutoCloseable {
    final ReentrantLock bql = new ReentrantLock();
    private final ExecutorService main = Executors.newSingleThreadExecutor(r -> new Thread(r, "main"));
    private final List<Listener> listeners = new CopyOnWriteArrayList<>();
    final AtomicInteger shutdownRequests = new AtomicInteger();
    private volatile String state;
    private volatile String name;

    TestMachine(String initialState) {
        this.state = initialState;
    }

    TestMachine named(String vmName) {
        this.name = vmName;
        return this;
    }

    @Override
    public void schedule(Runnable bh) {
        main.execute(() -> {
            bql.lock();
            try {
                bh.run();
            } finally {
                bql.unlock();
            }
        });
    }

    @Override
    public boolean bqlHeldByCurrentThread() {
        return bql.isHeldByCurrentThread();
    }

    /** Occupies the main loop (BQL held) until the returned latch is counted down. */
    CountDownLatch blockMainLoop(CountDownLatch started) {
        CountDownLatch release = new CountDownLatch(1);
        schedule(() -> {
            started.countDown();
            try {
                release.await(30, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        return release;
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public String runState() {
        return state;
    }

    @Override
    public boolean isRunning() {
        return state.equals("running");
    }

    /** Changes the run state as the machine would (BQL held), notifying listeners. */
    void setState(String to) {
        assert bql.isHeldByCurrentThread() : "run state changed without the BQL";
        String from = state;
        boolean wasRunning = isRunning();
        state = to;
        for (Listener l : listeners) {
            l.runStateChanged(from, wasRunning, to, isRunning());
        }
    }

    /** Runs {@code r} on the main loop with the BQL held and waits for it. */
    void runOnMain(Runnable r) throws InterruptedException {
        CountDownLatch done = new CountDownLatch(1);
        schedule(() -> {
            try {
                r.run();
            } finally {
                done.countDown();
            }
        });
        if (!done.await(10, TimeUnit.SECONDS)) {
            throw new AssertionError("main loop did not run the task within 10 s");
        }
    }

    @Override
    public void vmStop() {
        setState("paused");
    }

    @Override
    public void vmStart() {
        setState("running");
    }

    @Override
    public void requestShutdown() {
        shutdownRequests.incrementAndGet();
        for (Listener l : listeners) {
            l.shutdownRequested();
        }
    }

    @Override
    public void addListener(Listener listener) {
        listeners.add(listener);
    }

    @Override
    public void close() throws InterruptedException {
        main.shutdownNow();
        main.awaitTermination(10, TimeUnit.SECONDS);
    }
}
