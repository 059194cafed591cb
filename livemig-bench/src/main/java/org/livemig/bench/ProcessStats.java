package org.livemig.bench;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** Resident memory of this process, from /proc (Linux). */
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

    /** Resets the peak RSS counter (writes 5 to clear_refs), where the kernel allows it. */
    public static void resetPeak() {
        try {
            Files.writeString(Path.of("/proc/self/clear_refs"), "5");
        } catch (IOException | RuntimeException e) {
            // not Linux, or not allowed: the peak then covers the whole run
        }
    }

    private static long statusField(String name) {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
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
