package org.livemig.machine;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.SplittableRandom;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.function.Consumer;
import java.util.function.IntConsumer;
import org.livemig.memory.GuestRam;
import org.livemig.memory.RamBlock;
import org.livemig.vmstate.SaveStateRegistry;

/**
 * One guest: RAM, devices, vCPUs, a main loop and the big lock. Several machines can live in one
 * JVM (a test's source and destination); nothing here is static.
 *
 * <p>Ownership: configuration and the RAM layout are read-only after construction; run state,
 * vCPU run control and device state are guarded by the BQL; guest RAM contents are shared
 * without a lock (dirty tracking orders them, see {@link org.livemig.memory.DirtyBitmap}).
 */
public final class Machine implements AutoCloseable {
    /**
     * Initial contents of guest RAM: zero, random (incompressible), text (text-like pages that
     * compress as text does), or mixed (text, half-zero, zero and random pages; see CompressibleFill).
     */
    public enum Fill { ZERO, RANDOM, TEXT, MIXED }

    /**
     * How to build a machine. {@code accelerators} are the iterative devices ({@code --device}),
     * each with a name of its own, none by default.
     */
    public record Config(String name, long ramSize, int vcpus, String workload, Fill fill,
                         int blobSize, long seed, boolean prefault, List<Accelerator.Spec> accelerators) {
        public Config {
            Objects.requireNonNull(name);
            if (vcpus < 1 || vcpus > 64) {
                throw new IllegalArgumentException("vcpus must be 1..64: " + vcpus);
            }
            if (blobSize < 0) {
                throw new IllegalArgumentException("blob size must not be negative");
            }
            Workload.parse(workload); // validates
            accelerators = List.copyOf(accelerators);
            java.util.Set<String> names = new java.util.HashSet<>();
            for (Accelerator.Spec a : accelerators) {
                if (!names.add(a.name())) {
                    throw new IllegalArgumentException("two devices named " + a.name());
                }
            }
        }

        /** A machine without iterative devices. */
        public Config(String name, long ramSize, int vcpus, String workload, Fill fill, int blobSize, long seed,
                      boolean prefault) {
            this(name, ramSize, vcpus, workload, fill, blobSize, seed, prefault, List.of());
        }

        public static Config defaults() {
            return new Config("livemig", 1L << 30, 2, "ab", Fill.ZERO, 64 * 1024, 1, true);
        }

        public Config withName(String n) { return new Config(n, ramSize, vcpus, workload, fill, blobSize, seed, prefault, accelerators); }
        public Config withRam(long bytes) { return new Config(name, bytes, vcpus, workload, fill, blobSize, seed, prefault, accelerators); }
        public Config withVcpus(int n) { return new Config(name, ramSize, n, workload, fill, blobSize, seed, prefault, accelerators); }
        public Config withWorkload(String w) { return new Config(name, ramSize, vcpus, w, fill, blobSize, seed, prefault, accelerators); }
        public Config withFill(Fill f) { return new Config(name, ramSize, vcpus, workload, f, blobSize, seed, prefault, accelerators); }
        public Config withBlobSize(int b) { return new Config(name, ramSize, vcpus, workload, fill, b, seed, prefault, accelerators); }
        public Config withSeed(long s) { return new Config(name, ramSize, vcpus, workload, fill, blobSize, s, prefault, accelerators); }
        public Config withAccelerators(List<Accelerator.Spec> a) { return new Config(name, ramSize, vcpus, workload, fill, blobSize, seed, prefault, a); }
    }

    public static final String MAIN_BLOCK = "pc.ram";
    private static final long STOP_TIMEOUT_NANOS = TimeUnit.SECONDS.toNanos(30);

    private final Config config;
    private final Workload workload;
    private final Bql bql = new Bql();
    private final MainLoop mainLoop;
    private final GuestRam ram = new GuestRam();
    private final RamBlock mainBlock;
    private final List<Vcpu> vcpus = new ArrayList<>();
    private final SaveStateRegistry registry = new SaveStateRegistry();
    private final Devices devices;
    /** Guarded by the BQL. */
    private RunState runStateBeforeMigrationStop = RunState.RUNNING;
    private final Condition pauseCond = bql.newCondition();
    private final Condition workDone = bql.newCondition();
    private final List<MachineListener> listeners = new CopyOnWriteArrayList<>();
    private final List<Runnable> closeNotifiers = new CopyOnWriteArrayList<>();
    /** Written with the BQL held, read anywhere. */
    private volatile RunState runState = RunState.PRELAUNCH;
    private volatile IntConsumer exitHandler = System::exit;
    private volatile SerialOutput serialOutput = SerialOutput.NONE;
    /** Serialises the vCPUs' writes to the serial port, so that its output keeps their order. */
    private final Object serialLock = new Object();
    private boolean started;

    public Machine(Config config) {
        this.config = config;
        this.workload = Workload.parse(config.workload());
        this.mainLoop = new MainLoop(bql, config.name());
        this.mainBlock = ram.addBlock(MAIN_BLOCK, config.ramSize(), config.prefault());
        if (config.fill() == Fill.RANDOM) {
            ram.markWritten();
            fillRandom(mainBlock.memory(), config.seed());
        } else if (config.fill() == Fill.TEXT || config.fill() == Fill.MIXED) {
            ram.markWritten();
            CompressibleFill.fill(mainBlock.memory(), config.fill(), config.seed());
        }
        workload.initialise(mainBlock);
        for (int i = 0; i < config.vcpus(); i++) {
            vcpus.add(new Vcpu(this, i));
        }
        this.devices = new Devices(this);
        mainLoop.start();
    }

    private static void fillRandom(MemorySegment seg, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        long n = seg.byteSize() / 8;
        for (long i = 0; i < n; i++) {
            seg.setAtIndex(ValueLayout.JAVA_LONG, i, r.nextLong());
        }
    }

    /**
     * Called with the BQL held. Starts the vCPU threads with the machine in {@code initial} state:
     * RUNNING runs the guest, INMIGRATE or PAUSED keeps it stopped.
     */
    public void boot(RunState initial) {
        bql.assertHeld();
        if (started) {
            throw new IllegalStateException("machine already booted");
        }
        started = true;
        setRunState(initial == RunState.RUNNING ? RunState.PAUSED : initial);
        for (Vcpu v : vcpus) {
            v.start();
        }
        if (initial == RunState.RUNNING) {
            vmStart();
        }
    }

    public Config config() { return config; }
    public String name() { return config.name(); }
    public Bql bql() { return bql; }
    public MainLoop mainLoop() { return mainLoop; }
    public GuestRam ram() { return ram; }
    public RamBlock mainBlock() { return mainBlock; }
    public Workload workload() { return workload; }
    public int vcpuCount() { return vcpus.size(); }
    public List<Vcpu> vcpus() { return List.copyOf(vcpus); }
    public SaveStateRegistry registry() { return registry; }
    public Devices devices() { return devices; }
    Condition pauseCond() { return pauseCond; }
    Condition workDone() { return workDone; }

    /** The current run state; any thread. */
    public RunState runState() {
        return runState;
    }

    public void addListener(MachineListener l) {
        listeners.add(l);
    }

    public void removeListener(MachineListener l) {
        listeners.remove(l);
    }

    /** Called with the BQL held. Changes the run state and tells listeners. */
    public void setRunState(RunState s) {
        bql.assertHeld();
        RunState old = runState;
        if (old == s) {
            return;
        }
        runState = s;
        for (Vcpu v : vcpus) {
            v.kick();
        }
        for (MachineListener l : listeners) {
            l.runStateChanged(old, s);
        }
    }

    /**
     * Called with the BQL held. Stops the guest: every vCPU parks at a safe point before this
     * returns, then the state becomes {@code reason}; the lock is released while it waits for the vCPUs.
     */
    public void vmStop(RunState reason) {
        bql.assertHeld();
        if (reason.isRunning()) {
            throw new IllegalArgumentException("vmStop to " + reason);
        }
        for (Vcpu v : vcpus) {
            v.requestStop(true);
        }
        if (started) {
            waitAllPaused();
        }
        devices.timer().stopClock();
        devices.pauseAccelerators();
        if (reason == RunState.FINISH_MIGRATE) {
            runStateBeforeMigrationStop = runState; // what the globalstate section carries
        }
        setRunState(reason);
    }

    /** The run state before the last stop for a migration's switchover (QEMU's global_state_store). */
    RunState runStateBeforeMigrationStop() {
        return runStateBeforeMigrationStop;
    }

    /** Called with the BQL held. Resumes the guest. */
    public void vmStart() {
        bql.assertHeld();
        devices.timer().startClock();
        devices.resumeAccelerators();
        setRunState(RunState.RUNNING);
        for (Vcpu v : vcpus) {
            v.requestStop(false);
        }
    }

    private void waitAllPaused() {
        long deadline = System.nanoTime() + STOP_TIMEOUT_NANOS;
        while (true) {
            boolean all = true;
            for (Vcpu v : vcpus) {
                if (!v.onThisThread() && !v.isPaused()) {
                    all = false;
                    break;
                }
            }
            if (all) {
                return;
            }
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                throw new IllegalStateException("vCPUs did not reach a safe point within 30 s");
            }
            try {
                pauseCond.awaitNanos(Math.min(left, TimeUnit.MILLISECONDS.toNanos(100)));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted while stopping vCPUs", e);
            }
        }
    }

    /**
     * Called with the BQL held. Runs {@code task} on the vCPU's own thread and waits for it (QEMU's
     * run_on_cpu); the task runs with it held too.
     */
    public void runOnCpu(Vcpu vcpu, Runnable task) {
        bql.assertHeld();
        if (vcpu.onThisThread() || !vcpu.thread().isAlive()) {
            task.run();
            return;
        }
        Vcpu.Work w = new Vcpu.Work(task);
        vcpu.queueWork(w);
        awaitWork(vcpu, w, System.nanoTime() + STOP_TIMEOUT_NANOS);
        throwIfFailed(vcpu, w);
    }

    /** Waits (releasing the BQL) until {@code vcpu} has run {@code w}, or fails at {@code deadline}. BQL held. */
    private void awaitWork(Vcpu vcpu, Vcpu.Work w, long deadline) {
        while (!w.done) {
            long left = deadline - System.nanoTime();
            if (left <= 0 || !vcpu.thread().isAlive()) {
                throw new IllegalStateException("run_on_cpu on " + vcpu.thread().getName() + " did not complete");
            }
            try {
                workDone.awaitNanos(Math.min(left, TimeUnit.MILLISECONDS.toNanos(100)));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted in run_on_cpu", e);
            }
        }
    }

    private static void throwIfFailed(Vcpu vcpu, Vcpu.Work w) {
        if (w.failure != null) {
            throw new IllegalStateException("run_on_cpu task failed on " + vcpu.thread().getName(), w.failure);
        }
    }

    /**
     * Called with the BQL held. Runs {@code task} for every vCPU on its own thread and waits once
     * for all of them (QEMU's run_on_cpu per vCPU, but queued on all first so the round trips
     * overlap). A vCPU paused at its safe point runs no guest code until it has taken the BQL
     * again, so its task runs here instead: no round trip at the switchover, when all are stopped.
     */
    public void runOnAllCpus(Consumer<Vcpu> task) {
        bql.assertHeld();
        Vcpu[] targets = new Vcpu[vcpus.size()];
        Vcpu.Work[] works = new Vcpu.Work[vcpus.size()];
        int n = 0;
        for (Vcpu v : vcpus) {
            if (v.onThisThread() || !v.thread().isAlive() || v.isPaused()) {
                task.accept(v);
            } else {
                targets[n] = v;
                works[n] = new Vcpu.Work(() -> task.accept(v));
                v.queueWork(works[n]);
                n++;
            }
        }
        long deadline = System.nanoTime() + STOP_TIMEOUT_NANOS;
        for (int i = 0; i < n; i++) {
            awaitWork(targets[i], works[i], deadline);
        }
        for (int i = 0; i < n; i++) {
            throwIfFailed(targets[i], works[i]);
        }
    }

    /** Copies every vCPU's live registers into its saved state (cpu_synchronize_all_states). Called with the BQL held. */
    public void cpuSynchronizeAllStates() {
        runOnAllCpus(v -> v.state.copyFrom(v.live));
    }

    /** Before an incoming load: the vCPUs drop their live registers (cpu_synchronize_all_pre_loadvm). Called with the BQL held. */
    public void cpuSynchronizeAllPreLoadvm() {
        runOnAllCpus(v -> v.live.copyFrom(new CpuState()));
    }

    /** After a load: the vCPUs take the loaded registers (cpu_synchronize_all_post_init). Called with the BQL held. */
    public void cpuSynchronizeAllPostInit() {
        runOnAllCpus(v -> v.live.copyFrom(v.state));
    }

    /** Sets auto-converge throttling on every vCPU (0 turns it off); any thread. */
    public void setThrottlePercent(int percent) {
        for (Vcpu v : vcpus) {
            v.setThrottlePercent(percent);
        }
    }

    public int throttlePercent() {
        return vcpus.isEmpty() ? 0 : vcpus.getFirst().throttlePercent();
    }

    /** Where the guest's serial output goes from now on (any thread). */
    public void setSerialOutput(SerialOutput out) {
        serialOutput = out == null ? SerialOutput.NONE : out;
    }

    /** Where the guest's serial output goes. */
    public SerialOutput serialOutput() {
        return serialOutput;
    }

    /** The guest writes {@code b} to its serial port; on a vCPU thread, without the BQL. */
    void serialWrite(byte b) {
        synchronized (serialLock) {
            serialOutput.write(b);
        }
    }

    /** Who ends the process on a fatal error (exit-on-error); tests replace it. */
    public void setExitHandler(IntConsumer handler) {
        this.exitHandler = Objects.requireNonNull(handler);
    }

    /** Ends the process with {@code status}. Called on the main loop, as QEMU exits from its main thread. */
    public void exit(int status) {
        exitHandler.accept(status);
    }

    /** Asks the machine's owner to shut down (QMP quit). Any thread. */
    public void requestShutdown() {
        for (MachineListener l : listeners) {
            l.shutdownRequested();
        }
    }

    /**
     * Runs {@code notifier} first thing in {@link #close()}, before the vCPUs stop and the RAM is
     * released, as QEMU's cleanup shuts migration down first: whatever works on this machine from
     * threads of its own ends there. Called with the BQL held when the machine is closed from its
     * main loop, without it otherwise.
     */
    public void addCloseNotifier(Runnable notifier) {
        closeNotifiers.add(notifier);
    }

    @Override
    public void close() {
        for (Runnable r : closeNotifiers) {
            r.run();
        }
        if (!mainLoop.inMainThread()) {
            bql.lock();
        }
        try {
            for (Vcpu v : vcpus) {
                v.requestQuit();
            }
        } finally {
            if (!mainLoop.inMainThread()) {
                bql.unlock();
            }
        }
        for (Vcpu v : vcpus) {
            try {
                v.thread().join(5_000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        devices.close();
        mainLoop.stop();
        ram.close();
    }
}
