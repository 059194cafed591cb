package org.livemig.bench;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.TreeMap;

/** Resident memory of this process or of a child, from /proc (Linux). */
public final class ProcessStats {
    private ProcessStats() {}

    /** Current resident set in bytes, or -1 where /proc is not available. */
    public static long rssBytes() {
        return statusField("VmRSS:");
    }

    /** Peak resident set in bytes ("high water mark"), or -1. */
    public static long peakRssBytes() {
        return statusField("VmHWM:");
    }

    /** Current resident set of process {@code pid} in bytes, or -1 (not Linux, or the process is gone). */
    public static long rssBytes(long pid) {
        return statusField(Path.of("/proc", Long.toString(pid), "status"), "VmRSS:");
    }

    /** Peak resident set ("high water mark", VmHWM) of process {@code pid} in bytes, or -1. */
    public static long peakRssBytes(long pid) {
        return statusField(Path.of("/proc", Long.toString(pid), "status"), "VmHWM:");
    }

    /**
     * CPU time (user + system) used so far by each thread of process {@code pid}, in nanoseconds,
     * summed by thread name (Linux truncates names to 15 characters); empty where /proc is not
     * available. The kernel counts in clock ticks, assumed to be 100 per second (10 ms resolution).
     */
    public static Map<String, Long> threadCpuNanos(long pid) {
        Map<String, Long> byName = new TreeMap<>();
        try (var tasks = Files.list(Path.of("/proc", Long.toString(pid), "task"))) {
            for (Path t : tasks.toList()) {
                String stat;
                try {
                    stat = Files.readString(t.resolve("stat"));
                } catch (IOException e) {
                    continue; // the thread ended
                }
                int open = stat.indexOf('(');
                int close = stat.lastIndexOf(')');
                if (open < 0 || close < open) {
                    continue;
                }
                String name = stat.substring(open + 1, close);
                String[] f = stat.substring(close + 2).split(" ");
                long ticks = Long.parseLong(f[11]) + Long.parseLong(f[12]);
                byName.merge(name, ticks * 10_000_000L, Long::sum);
            }
        } catch (IOException | RuntimeException e) {
            return Map.of();
        }
        return byName;
    }

    /** CPU time (user + system) used so far by all threads of process {@code pid}, ended ones included, or -1. */
    public static long processCpuNanos(long pid) {
        try {
            String stat = Files.readString(Path.of("/proc", Long.toString(pid), "stat"));
            String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
            return (Long.parseLong(f[11]) + Long.parseLong(f[12])) * 10_000_000L;
        } catch (IOException | RuntimeException e) {
            return -1;
        }
    }

    /** Resets the peak RSS counter (writes 5 to clear_refs), where the kernel allows it. */
    public static void resetPeak() {
        try {
            Files.writeString(Path.of("/proc/self/clear_refs"), "5");
        } catch (IOException | RuntimeException e) {
            // not Linux, or not allowed: the peak then covers the whole run
        }
    }

    private static long statusField(String name) {
        return statusField(Path.of("/proc/self/status"), name);
    }

    private static long statusField(Path status, String name) {
        try {
            for (String line : Files.readAllLines(status)) {
                if (line.startsWith(name)) {
                    String[] parts = line.substring(name.length()).trim().split("\\s+");
                    return Long.parseLong(parts[0]) * 1024;
                }
            }
        } catch (IOException | RuntimeException e) {
            return -1;
        }
        return -1;
    }
}
