package org.livemig.cli;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalLong;

/**
 * What memory this host can give guest RAM, read before any is touched: a machine pre-faults all
 * of its RAM, and asking for more than the host has ends in the kernel's OOM killer, which may
 * take other processes with it. The limit is the smallest of /proc/meminfo's MemAvailable, the
 * commit limit left when overcommit is strict (mode 2), and the memory cgroup's limit left.
 */
record HostMemory(long availableBytes, String why) {
    private static final Path MEMINFO = Path.of("/proc/meminfo");
    private static final Path OVERCOMMIT = Path.of("/proc/sys/vm/overcommit_memory");
    private static final List<Path[]> CGROUP_LIMITS = List.of(
            new Path[] {Path.of("/sys/fs/cgroup/memory.max"), Path.of("/sys/fs/cgroup/memory.current")},
            new Path[] {Path.of("/sys/fs/cgroup/memory/memory.limit_in_bytes"), Path.of("/sys/fs/cgroup/memory/memory.usage_in_bytes")});

    /** This host's; empty where /proc/meminfo cannot be read (not Linux): then nothing is refused. */
    static java.util.Optional<HostMemory> read() {
        try {
            String meminfo = Files.readString(MEMINFO);
            String overcommit = Files.isReadable(OVERCOMMIT) ? Files.readString(OVERCOMMIT).strip() : "0";
            OptionalLong cgroupLeft = OptionalLong.empty();
            for (Path[] c : CGROUP_LIMITS) {
                if (Files.isReadable(c[0]) && Files.isReadable(c[1])) {
                    String limit = Files.readString(c[0]).strip();
                    // "max" (v2) or a page-rounded Long.MAX_VALUE (v1) mean no limit
                    if (!limit.equals("max") && Long.parseLong(limit) < (1L << 62)) {
                        cgroupLeft = OptionalLong.of(Long.parseLong(limit) - Long.parseLong(Files.readString(c[1]).strip()));
                    }
                    break;
                }
            }
            return java.util.Optional.of(of(meminfo, overcommit, cgroupLeft));
        } catch (IOException | NumberFormatException e) {
            return java.util.Optional.empty();
        }
    }

    /** From the text of /proc/meminfo, the overcommit mode and the cgroup's room left (tests give their own). */
    static HostMemory of(String meminfo, String overcommitMode, OptionalLong cgroupLeft) {
        long available = field(meminfo, "MemAvailable");
        long total = field(meminfo, "MemTotal");
        List<String> parts = new ArrayList<>();
        parts.add(Sizes.human(available) + " available of " + Sizes.human(total) + " (MemAvailable)");
        long limit = available;
        if (overcommitMode.equals("2")) {
            long commitLeft = field(meminfo, "CommitLimit") - field(meminfo, "Committed_AS");
            parts.add(Sizes.human(Math.max(0, commitLeft)) + " left under the commit limit (vm.overcommit_memory=2)");
            limit = Math.min(limit, commitLeft);
        }
        if (cgroupLeft.isPresent()) {
            parts.add(Sizes.human(Math.max(0, cgroupLeft.getAsLong())) + " left in this memory cgroup");
            limit = Math.min(limit, cgroupLeft.getAsLong());
        }
        return new HostMemory(Math.max(0, limit), String.join(", ", parts));
    }

    private static long field(String meminfo, String name) {
        for (String line : meminfo.split("\n")) {
            if (line.startsWith(name + ":")) {
                String[] w = line.substring(name.length() + 1).trim().split("\\s+");
                return Long.parseLong(w[0]) * (w.length > 1 && w[1].equalsIgnoreCase("kB") ? 1024 : 1);
            }
        }
        throw new NumberFormatException("no " + name + " in /proc/meminfo");
    }

    /**
     * Refuses {@code machines} machines of {@code ramBytes} each when this host cannot back
     * them, naming what it has; {@code option} is how the user asked for the size.
     */
    void require(long ramBytes, int machines, String option) {
        long need = Math.multiplyHigh(ramBytes, machines) != 0 ? Long.MAX_VALUE : ramBytes * machines;
        if (need > availableBytes) {
            throw new IllegalArgumentException(option + ": "
                    + (machines == 1 ? "a machine of " + Sizes.human(ramBytes)
                            : machines + " machines of " + Sizes.human(ramBytes) + " each (" + Sizes.human(need) + ")")
                    + " cannot be backed by this host: " + why + "; guest RAM is allocated and touched in full at start, so ask for less");
        }
    }
}
