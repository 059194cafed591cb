package org.livemig.machine;

import java.util.Arrays;

/**
 * Architectural register state of one vCPU. Each {@link Vcpu} has two: the live copy its thread
 * works on, and the synchronised copy that device state is saved from and loaded into (as QEMU
 * keeps KVM's registers and CPUState apart). {@code cpu_synchronize_*} moves state between them
 * on the vCPU thread through {@link Machine#runOnCpu}.
 */
public final class CpuState {
    public final long[] regs = new long[16];
    public long rip;
    public long rflags = 0x2;
    public boolean halted;
    /** Retired "instructions" (workload steps); present from version 2 of the cpu state. */
    public long instructions;
    /** Nanoseconds this vCPU spent throttled by auto-converge; saved in a subsection when non-zero. */
    public long throttleNanos;

    public void copyFrom(CpuState o) {
        System.arraycopy(o.regs, 0, regs, 0, regs.length);
        rip = o.rip;
        rflags = o.rflags;
        halted = o.halted;
        instructions = o.instructions;
        throttleNanos = o.throttleNanos;
    }

    @Override
    public boolean equals(Object obj) {
        return obj instanceof CpuState o && Arrays.equals(regs, o.regs) && rip == o.rip
                && rflags == o.rflags && halted == o.halted && instructions == o.instructions
                && throttleNanos == o.throttleNanos;
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(regs) * 31 + Long.hashCode(rip);
    }
}
