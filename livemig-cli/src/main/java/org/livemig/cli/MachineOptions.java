package org.livemig.cli;

import org.livemig.machine.Machine;
import picocli.CommandLine.Option;

/** The options that describe a machine, shared by demo, run, snapshot and bench. */
final class MachineOptions {
    @Option(names = "--ram", description = "Guest RAM size (default: ${DEFAULT-VALUE}).", defaultValue = "1G")
    String ram;

    @Option(names = "--vcpus", description = "Number of vCPUs (default: ${DEFAULT-VALUE}).", defaultValue = "2")
    int vcpus;

    @Option(names = "--workload", description = "ab[:PAGES_PER_SEC] | random-writes:MIB_PER_SEC | idle (default: ${DEFAULT-VALUE}).",
            defaultValue = "ab")
    String workload;

    @Option(names = "--fill", description = "Initial RAM contents: zero | random | text | mixed (text, half-zero, zero and random pages) (default: ${DEFAULT-VALUE}).", defaultValue = "zero")
    String fill;

    @Option(names = "--blob-size", description = "Size of the blob device's opaque state (default: ${DEFAULT-VALUE}).",
            defaultValue = "64K")
    String blobSize;

    @Option(names = "--seed", description = "Seed of the random fill and workloads (default: ${DEFAULT-VALUE}).", defaultValue = "1")
    long seed;

    @Option(names = "--device", paramLabel = "NAME,size=SIZE,dirty-rate=MIB_PER_SEC",
            description = {"An accelerator with SIZE of on-board memory (a multiple of 64K) that the guest writes at",
                    "MIB_PER_SEC while it runs: a device whose state migrates iteratively, as QEMU's VFIO devices'. Repeatable;",
                    "source and destination need the same devices."})
    java.util.List<String> devices = new java.util.ArrayList<>();

    /**
     * Refuses, before any memory is touched, a {@code --ram} that this host cannot back for
     * {@code machines} machines (a demo runs two).
     */
    void requireHostMemory(int machines) {
        long devicesBytes = accelerators().stream().mapToLong(org.livemig.machine.Accelerator.Spec::size).sum();
        long bytes = Sizes.parse(ram) + devicesBytes;
        HostMemory.read().ifPresent(h -> h.require(bytes, machines,
                "--ram " + ram + (devicesBytes > 0 ? " and the --device memory" : "")));
    }

    /** The {@code --device} accelerators. */
    java.util.List<org.livemig.machine.Accelerator.Spec> accelerators() {
        return devices.stream().map(org.livemig.machine.Accelerator.Spec::parse).toList();
    }

    /** The machine's configuration, after {@link #requireHostMemory} for one machine. */
    Machine.Config config(String name) {
        requireHostMemory(1);
        return configUnchecked(name);
    }

    /** The machine's configuration; the caller has checked the host's memory. */
    Machine.Config configUnchecked(String name) {
        Machine.Fill f = switch (fill) {
            case "zero" -> Machine.Fill.ZERO;
            case "random" -> Machine.Fill.RANDOM;
            case "text" -> Machine.Fill.TEXT;
            case "mixed" -> Machine.Fill.MIXED;
            default -> throw new IllegalArgumentException("--fill must be zero, random, text or mixed, not '" + fill + "'");
        };
        long blob = Sizes.parse(blobSize);
        if (blob > Integer.MAX_VALUE - 64) {
            throw new IllegalArgumentException("--blob-size too large: " + blobSize);
        }
        return new Machine.Config(name, Sizes.parse(ram), vcpus, workload, f, (int) blob, seed, true, accelerators());
    }

    /** The same options as command-line arguments, to start a child process with them. */
    java.util.List<String> asArgs() {
        java.util.List<String> a = new java.util.ArrayList<>(java.util.List.of("--ram", ram, "--vcpus", String.valueOf(vcpus),
                "--workload", workload, "--fill", fill, "--blob-size", blobSize, "--seed", String.valueOf(seed)));
        for (String d : devices) {
            a.add("--device");
            a.add(d);
        }
        return a;
    }
}
