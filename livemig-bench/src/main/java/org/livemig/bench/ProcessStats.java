package org.livemig.bench;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

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
