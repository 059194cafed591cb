package org.livemig.machine;

import java.util.ArrayDeque;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.LockSupport;

/**
 * One virtual CPU: thread {@code CPU n/livemig} running the machine's {@link Workload} without
 * the BQL, and stopping at safe points between slices. Run control and queued work are guarded by
 * the BQL; the vCPU looks at them when {@link #kick}ed, so a running vCPU takes no lock.
 */
public final class Vcpu {
    /** Auto-converge time slice, as QEMU's CPU_THROTTLE_TIMESLICE. */
    private static final long THROTTLE_TIMESLICE_NANOS = TimeUnit.MILLISECONDS.toNanos(10);

    private final Machine machine;
    private final int index;
    private final Thread thread;
    private final Condition haltCond;
    /** Live registers: owned by this vCPU's thread while it runs. */
    final CpuState live = new CpuState();
    /** Synchronised registers, saved and loaded as device state: guarded by the BQL. */
    final CpuState state = new CpuState();

    /** Set by other threads to make the vCPU check its run control under the BQL. */
    private volatile boolean kicked = true;
    // Guarded by the BQL.
    private boolean stopRequested;
    private boolean paused;
    private boolean quit;
    private final ArrayDeque<Work> work = new ArrayDeque<>();

    private volatile int throttlePercent;

    /** A queued runOnCpu item; done is guarded by the BQL. */
    static final class Work {
        final Runnable task;
        boolean done;
        Throwable failure;

        Work(Runnable task) {
            this.task = task;
        }
    }

    Vcpu(Machine machine, int index) {
        this.machine = machine;
        this.index = index;
        this.haltCond = machine.bql().newCondition();
        this.thread = Thread.ofPlatform().name("CPU " + index + "/livemig").daemon(true).unstarted(this::run);
    }

    public int index() {
        return index;
    }

    public Thread thread() {
        return thread;
    }

    /** Called with the BQL held. The synchronised register state. */
    public CpuState state() {
        machine.bql().assertHeld();
        return state;
    }

    void start() {
        thread.start();
    }

    /** Asks the vCPU to look at its run control soon. Called with the BQL held. */
    void kick() {
        kicked = true;
        haltCond.signalAll();
        LockSupport.unpark(thread);
    }

    /** Called with the BQL held. */
    void requestStop(boolean stop) {
        stopRequested = stop;
        kick();
    }

    /** Called with the BQL held. */
    boolean isPaused() {
        return paused;
    }

    /** Called with the BQL held. */
    void requestQuit() {
        quit = true;
        kick();
    }

    /** Called with the BQL held. */
    void queueWork(Work w) {
        work.add(w);
        kick();
    }

    /** Called with the BQL held. Work queued on this vCPU and not yet taken. */
    int pendingWork() {
        machine.bql().assertHeld();
        return work.size();
    }

    boolean onThisThread() {
        return Thread.currentThread() == thread;
    }

    /** Sets the auto-converge throttle (0..99 %): the share of each time slice spent sleeping. */
    public void setThrottlePercent(int percent) {
        throttlePercent = Math.max(0, Math.min(99, percent));
    }

    public int throttlePercent() {
        return throttlePercent;
    }

    private void run() {
        Workload workload = machine.workload();
        VcpuContext ctx = new VcpuContext(index, machine.vcpuCount(), machine.ram(), machine.mainBlock(),
                live, new SplittableRandom(machine.config().seed() * 31 + index), machine::serialWrite);
        long sliceStart = System.nanoTime();
        while (true) {
            if (kicked) {
                if (!safePoint()) {
                    return;
                }
                sliceStart = System.nanoTime();
                ctx.pacingStartNanos = 0;
                ctx.pacingDone = 0;
            }
            workload.step(ctx);
            int pct = throttlePercent;
            if (pct > 0) {
                long now = System.nanoTime();
                if (now - sliceStart >= THROTTLE_TIMESLICE_NANOS) {
                    long sleep = THROTTLE_TIMESLICE_NANOS * pct / (100 - pct);
                    long until = now + sleep;
                    while (!kicked && System.nanoTime() < until) {
                        LockSupport.parkNanos(until - System.nanoTime());
                    }
                    live.throttleNanos += System.nanoTime() - now;
                    sliceStart = System.nanoTime();
                    // a throttled guest must not catch up on its paced rate afterwards
                    ctx.pacingStartNanos = 0;
                    ctx.pacingDone = 0;
                }
            }
        }
    }

    /** Runs queued work and waits while the vCPU must not run. Returns false to quit. */
    private boolean safePoint() {
        machine.bql().lock();
        try {
            while (true) {
                kicked = false;
                Work w;
                while ((w = work.poll()) != null) {
                    try {
                        w.task.run();
                    } catch (Throwable t) {
                        w.failure = t;
                    }
                    w.done = true;
                    machine.workDone().signalAll();
                }
                if (quit) {
                    paused = true;
                    machine.pauseCond().signalAll();
                    return false;
                }
                if (!stopRequested && machine.runState().isRunning()) {
                    paused = false;
                    return true;
                }
                if (!paused) {
                    paused = true;
                    machine.pauseCond().signalAll();
                }
                if (!kicked) {
                    haltCond.awaitUninterruptibly();
                }
            }
        } finally {
            machine.bql().unlock();
        }
    }
}
