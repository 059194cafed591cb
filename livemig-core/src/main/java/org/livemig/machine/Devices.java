package org.livemig.machine;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.livemig.vmstate.VMStateDescription;
import org.livemig.vmstate.VmStateException;

/**
 * The built-in devices of a livemig machine, each described declaratively with VMState and
 * registered with the machine's {@link org.livemig.vmstate.SaveStateRegistry} in a fixed order
 * (so section ids match on both sides): {@code timer}, one {@code cpu} per vCPU, {@code serial},
 * {@code blob}, {@code globalstate}. Device state is guarded by the BQL. The {@link Accelerator}s
 * ({@code --device}) are here too; their state is their own, and the migration side registers
 * their sections.
 */
public final class Devices {
    // ------------------------------------------------------------ timer

    /** The guest clock: offsets kept across stop/start and migration (QEMU's "timer" state). */
    public static final class Timer {
        long cpuTicksOffset;
        long cpuClockOffset;
        private long runningSince = -1;

        /** Guest clock in ns: frozen while the guest is stopped. Called with the BQL held. */
        public long guestClock() {
            return runningSince < 0 ? cpuClockOffset : cpuClockOffset + (System.nanoTime() - runningSince);
        }

        void startClock() {
            if (runningSince < 0) {
                runningSince = System.nanoTime();
            }
        }

        void stopClock() {
            if (runningSince >= 0) {
                cpuClockOffset = guestClock();
                cpuTicksOffset += cpuClockOffset / 1000;
                runningSince = -1;
            }
        }
    }

    public static final VMStateDescription<Timer> TIMER_VMSD = VMStateDescription.<Timer>builder("timer")
            .version(2).minimumVersion(1)
            .int64("cpu_ticks_offset", t -> t.cpuTicksOffset, (t, v) -> t.cpuTicksOffset = v)
            .unused(8)
            // Read through guestClock() so that saving (or fingerprinting) never disturbs a running clock.
            .int64("cpu_clock_offset", Timer::guestClock, (t, v) -> t.cpuClockOffset = v).since(2)
            .build();

    // ------------------------------------------------------------ cpu

    private static final VMStateDescription<CpuState> CPU_THROTTLE_VMSD = VMStateDescription.<CpuState>builder("cpu/throttle")
            .version(1)
            .uint64("throttle_ns", c -> c.throttleNanos, (c, v) -> c.throttleNanos = v)
            .needed(c -> c.throttleNanos != 0)
            .build();

    public static final VMStateDescription<CpuState> CPU_VMSD = VMStateDescription.<CpuState>builder("cpu")
            .version(2).minimumVersion(1)
            .uint64Array("regs", 16, c -> c.regs)
            .uint64("rip", c -> c.rip, (c, v) -> c.rip = v)
            .uint64("rflags", c -> c.rflags, (c, v) -> c.rflags = v)
            .bool("halted", c -> c.halted, (c, v) -> c.halted = v)
            .uint64("instructions", c -> c.instructions, (c, v) -> c.instructions = v).since(2)
            .subsection(CPU_THROTTLE_VMSD)
            .preLoad(c -> c.throttleNanos = 0) // likewise: an absent throttle subsection means none
            .postLoad((c, version) -> {
                if ((c.rflags & 0x2) == 0) {
                    throw new VmStateException("cpu: rflags bit 1 must be set, got 0x" + Long.toHexString(c.rflags));
                }
            })
            .build();

    // ------------------------------------------------------------ serial

    /** A 16550-like UART: registers, a 16-byte receive FIFO, and a timeout subsection. */
    public static final class Serial {
        public static final int FIFO_SIZE = 16;
        int divider = 12;
        int lcr = 0x03;
        int lsr = 0x60;
        int ier;
        int scr;
        final byte[] fifo = new byte[FIFO_SIZE];
        int fifoHead;
        int fifoCount;
        long timeoutDeadline; // guest ns, 0 when not armed
        long bytesReceived;

        /** The guest "receives" a byte (from a main-loop timer). Called with the BQL held. */
        void receive(byte b, long now) {
            if (fifoCount == FIFO_SIZE) {
                fifoHead = (fifoHead + 1) % FIFO_SIZE;
                fifoCount--;
            }
            fifo[(fifoHead + fifoCount) % FIFO_SIZE] = b;
            fifoCount++;
            lsr |= 0x01;
            bytesReceived++;
            timeoutDeadline = (bytesReceived % 4 == 0) ? 0 : now + 4_000_000;
        }
    }

    private static final VMStateDescription<Serial> SERIAL_TIMEOUT_VMSD = VMStateDescription.<Serial>builder("serial/fifo_timeout")
            .version(1)
            .int64("timeout_deadline", s -> s.timeoutDeadline, (s, v) -> s.timeoutDeadline = v)
            .needed(s -> s.timeoutDeadline != 0)
            .build();

    public static final VMStateDescription<Serial> SERIAL_VMSD = VMStateDescription.<Serial>builder("serial")
            .version(3).minimumVersion(2)
            .uint16("divider", s -> s.divider, (s, v) -> s.divider = (int) v)
            .uint8("lcr", s -> s.lcr, (s, v) -> s.lcr = (int) v)
            .uint8("lsr", s -> s.lsr, (s, v) -> s.lsr = (int) v)
            .uint8("ier", s -> s.ier, (s, v) -> s.ier = (int) v)
            .uint8("scr", s -> s.scr, (s, v) -> s.scr = (int) v)
            .uint8Array("fifo", Serial.FIFO_SIZE, s -> s.fifo)
            .uint8("fifo_head", s -> s.fifoHead, (s, v) -> s.fifoHead = (int) v)
            .uint8("fifo_count", s -> s.fifoCount, (s, v) -> s.fifoCount = (int) v)
            .uint64("bytes_received", s -> s.bytesReceived, (s, v) -> s.bytesReceived = v).since(3)
            .subsection(SERIAL_TIMEOUT_VMSD)
            // An absent fifo_timeout subsection means no timeout: a device that has run (a COLO
            // secondary's, loaded over at each checkpoint) must not keep its own.
            .preLoad(s -> s.timeoutDeadline = 0)
            .postLoad((s, version) -> {
                if (s.fifoHead >= Serial.FIFO_SIZE || s.fifoCount > Serial.FIFO_SIZE) {
                    throw new VmStateException("serial: FIFO head " + s.fifoHead + " / count " + s.fifoCount
                            + " out of range (size " + Serial.FIFO_SIZE + ")");
                }
            })
            .build();

    // ------------------------------------------------------------ blob

    /** Large opaque device state, standing in for a VFIO device's migration data. */
    public static final class Blob {
        byte[] data;
        long generation;

        Blob(int size, long seed) {
            data = new byte[size];
            new SplittableRandom(seed).nextBytes(data);
        }

        /** The device changes a little of its state. Called with the BQL held. */
        void touch() {
            generation++;
            if (data.length > 0) {
                int at = (int) ((generation * 2654435761L) % data.length);
                data[Math.floorMod(at, data.length)] ^= (byte) generation;
            }
        }
    }

    public static final VMStateDescription<Blob> BLOB_VMSD = VMStateDescription.<Blob>builder("blob")
            .version(1)
            .uint64("generation", b -> b.generation, (b, v) -> b.generation = v)
            .uint32("size", b -> b.data.length, (b, v) -> { })
            .varUint8Array("data", "size", b -> b.data, (b, d) -> b.data = d)
            .build();

    // ------------------------------------------------------------ globalstate

    /**
     * The run state a migration carries (QEMU's "globalstate" section, with its name and layout):
     * the source's state just before it stopped the guest for the switchover, so that, as with
     * QEMU, a destination runs the guest after a migration only if the source ran it (a stopped
     * source's guest arrives stopped, and {@code cont} starts it). Not guest state: a machine's
     * fingerprint leaves it out. Guarded by the BQL.
     */
    public static final class GlobalState {
        static final int RUNSTATE_BYTES = 100;
        private final Machine machine;
        final byte[] runstate = new byte[RUNSTATE_BYTES];
        long size;
        private RunState received;

        GlobalState(Machine machine) {
            this.machine = machine;
        }

        /** The state to carry: before the stop for a migration, else the current one (QEMU's global_state_store). */
        void prepare() {
            RunState s = machine.runState() == RunState.FINISH_MIGRATE ? machine.runStateBeforeMigrationStop() : machine.runState();
            byte[] name = s.qemuName().getBytes(java.nio.charset.StandardCharsets.US_ASCII);
            java.util.Arrays.fill(runstate, (byte) 0);
            System.arraycopy(name, 0, runstate, 0, name.length);
            size = name.length + 1;
        }

        void loaded() throws VmStateException {
            if (size > RUNSTATE_BYTES || size == 0 || runstate[(int) size - 1] != 0) {
                throw new VmStateException("globalstate: size " + size + " is not that of a run state name of at most "
                        + (RUNSTATE_BYTES - 1) + " bytes and its NUL");
            }
            String name = new String(runstate, 0, (int) size - 1, java.nio.charset.StandardCharsets.US_ASCII);
            try {
                received = RunState.fromQemuName(name);
            } catch (IllegalArgumentException e) {
                throw new VmStateException("globalstate: invalid run state '" + name + "'");
            }
        }

        /** Called with the BQL held. The run state the last loaded section carried, or null when none came since {@link #forget}. */
        public RunState received() {
            machine.bql().assertHeld();
            return received;
        }

        /** Called with the BQL held: a new incoming migration starts; what an earlier one carried no longer counts. */
        public void forget() {
            machine.bql().assertHeld();
            received = null;
        }
    }

    /** The idstr of QEMU's globalstate section: the run state, not guest state. */
    public static final String GLOBALSTATE_IDSTR = "globalstate";

    public static final VMStateDescription<GlobalState> GLOBALSTATE_VMSD = VMStateDescription.<GlobalState>builder(GLOBALSTATE_IDSTR)
            .version(1)
            .uint32("size", g -> g.size, (g, v) -> g.size = v)
            .buffer("runstate", GlobalState.RUNSTATE_BYTES, g -> g.runstate)
            .preSave(GlobalState::prepare)
            .postLoad((g, version) -> g.loaded())
            .build();

    // ------------------------------------------------------------ the set

    private final Machine machine;
    private final Timer timer = new Timer();
    private final Serial serial = new Serial();
    private final Blob blob;
    private final GlobalState globalState;
    private final List<MainLoop.Timer> activity = new ArrayList<>();
    /** The iterative devices, in configuration order (their sections are registered by the migration side). */
    private final List<Accelerator> accelerators = new ArrayList<>();

    Devices(Machine machine) {
        this.machine = machine;
        for (Accelerator.Spec a : machine.config().accelerators()) {
            accelerators.add(new Accelerator(machine, a, machine.config().seed()));
        }
        this.blob = new Blob(machine.config().blobSize(), machine.config().seed());
        var registry = machine.registry();
        registry.registerDevice("timer", 0, TIMER_VMSD, timer);
        for (Vcpu v : machine.vcpus()) {
            registry.registerDevice("cpu", v.index(), CPU_VMSD, v.state);
        }
        registry.registerDevice("serial", 0, SERIAL_VMSD, serial);
        registry.registerDevice("blob", 0, BLOB_VMSD, blob);
        this.globalState = new GlobalState(machine);
        registry.registerDevice(GLOBALSTATE_IDSTR, 0, GLOBALSTATE_VMSD, globalState);
        // Device activity while the guest runs, on the main loop as a real device model's would be.
        activity.add(machine.mainLoop().addPeriodicTimer(10, () -> {
            if (machine.runState().isRunning()) {
                serial.receive((byte) ('a' + (serial.bytesReceived % 26)), timer.guestClock());
            }
        }));
        activity.add(machine.mainLoop().addPeriodicTimer(100, () -> {
            if (machine.runState().isRunning()) {
                blob.touch();
            }
        }));
    }

    public Timer timer() { return timer; }
    public Serial serial() { return serial; }
    public Blob blob() { return blob; }
    public GlobalState globalState() { return globalState; }

    /** The iterative devices ({@code --device}), in configuration order. */
    public List<Accelerator> accelerators() {
        return List.copyOf(accelerators);
    }

    /** Called with the BQL held: every accelerator's engine stops (vmStop). */
    void pauseAccelerators() {
        for (Accelerator a : accelerators) {
            a.pauseEngine();
        }
    }

    /** Called with the BQL held: every accelerator's engine runs again (vmStart). */
    void resumeAccelerators() {
        for (Accelerator a : accelerators) {
            a.resumeEngine();
        }
    }

    void close() {
        activity.forEach(MainLoop.Timer::cancel);
        accelerators.forEach(Accelerator::close);
    }
}
