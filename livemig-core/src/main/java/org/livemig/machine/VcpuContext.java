package org.livemig.machine;

import java.util.random.RandomGenerator;
import org.livemig.memory.GuestRam;
import org.livemig.memory.RamBlock;

/** What a {@link Workload} sees while it runs on a vCPU thread. Owned by that thread. */
public final class VcpuContext {
    private final int index;
    private final int vcpuCount;
    private final GuestRam ram;
    private final RamBlock mainBlock;
    private final CpuState regs;
    private final RandomGenerator random;
    private final java.util.function.Consumer<Byte> serial;
    /** Pacing state of the workload on this vCPU (not guest state: it does not migrate). */
    public long pacingStartNanos;
    public long pacingDone;

    VcpuContext(int index, int vcpuCount, GuestRam ram, RamBlock mainBlock, CpuState regs, RandomGenerator random,
            java.util.function.Consumer<Byte> serial) {
        this.serial = serial;
        this.index = index;
        this.vcpuCount = vcpuCount;
        this.ram = ram;
        this.mainBlock = mainBlock;
        this.regs = regs;
        this.random = random;
    }

    public int index() {
        return index;
    }

    public int vcpuCount() {
        return vcpuCount;
    }

    public GuestRam ram() {
        return ram;
    }

    public RamBlock mainBlock() {
        return mainBlock;
    }

    /** The live registers of this vCPU. */
    public CpuState regs() {
        return regs;
    }

    public RandomGenerator random() {
        return random;
    }

    /** The guest writes one byte to its serial port (the machine's output). */
    public void serialWrite(byte b) {
        serial.accept(b);
    }
}
