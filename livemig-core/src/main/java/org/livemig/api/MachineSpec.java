package org.livemig.api;

import java.util.Objects;

/**
 * How to build a {@link VirtualMachine}: its name, guest RAM, vCPUs, the workload they run, how
 * RAM is filled at start, and the seed of everything random in it.
 *
 * @param name      the machine's name (QMP's query-name)
 * @param ramBytes  guest RAM, a multiple of 4 KiB; allocated and pre-faulted when the machine is built
 * @param vcpus     1 to 64
 * @param workload  {@code ab[:PAGES_PER_SEC]} (QEMU's migration-test guest: a RAM pattern a lost
 *                  or stale page breaks), {@code random-writes:MIB_PER_SEC} or {@code idle}
 * @param fill      what RAM holds before the workload starts
 * @param seed      seed of the fill and of the workload
 */
public record MachineSpec(String name, long ramBytes, int vcpus, String workload, Fill fill, long seed) {
    /** What guest RAM holds at start. */
    public enum Fill {
        /** Zero pages (sent as ZERO records). */
        ZERO,
        /** Random bytes (incompressible). */
        RANDOM,
        /** Text-like bytes (compressible about 2x). */
        TEXT,
        /** Text, half-zero, zero and random pages mixed. */
        MIXED
    }

    public MachineSpec {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(workload, "workload");
        Objects.requireNonNull(fill, "fill");
        if (ramBytes <= 0 || ramBytes % 4096 != 0) {
            throw new IllegalArgumentException("ramBytes must be a positive multiple of 4096, not " + ramBytes);
        }
        if (vcpus < 1 || vcpus > 64) {
            throw new IllegalArgumentException("vcpus must be 1 to 64, not " + vcpus);
        }
    }

    /** A machine of {@code ramBytes} of zero RAM, two vCPUs running the {@code ab} guest. */
    public static MachineSpec of(String name, long ramBytes) {
        return new MachineSpec(name, ramBytes, 2, "ab", Fill.ZERO, 1);
    }

    public MachineSpec withName(String n) {
        return new MachineSpec(n, ramBytes, vcpus, workload, fill, seed);
    }

    public MachineSpec withVcpus(int n) {
        return new MachineSpec(name, ramBytes, n, workload, fill, seed);
    }

    public MachineSpec withWorkload(String w) {
        return new MachineSpec(name, ramBytes, vcpus, w, fill, seed);
    }

    public MachineSpec withFill(Fill f) {
        return new MachineSpec(name, ramBytes, vcpus, workload, f, seed);
    }

    public MachineSpec withSeed(long s) {
        return new MachineSpec(name, ramBytes, vcpus, workload, fill, s);
    }
}
