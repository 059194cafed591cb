package org.livemig.testing;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** What /proc/self/smaps says of the mapping that holds an address (Linux; tests only). */
public final class Smaps {
    private static final Pattern RANGE = Pattern.compile("^([0-9a-f]+)-([0-9a-f]+) ");

    private Smaps() {}

    /** The value of a line starting {@code field} (as "Rss:"), for "Rss:  1024 kB" the 1024. */
    public static long field(long address, String field) throws IOException {
        String line = line(address, field);
        return Long.parseLong(line.substring(field.length()).trim().split("\\s+")[0]);
    }

    /** The two-letter VmFlags of the mapping ("nh": no huge pages advised, "hg": huge pages advised, ...). */
    public static List<String> vmFlags(long address) throws IOException {
        return List.of(line(address, "VmFlags:").substring("VmFlags:".length()).trim().split("\\s+"));
    }

    private static String line(long address, String field) throws IOException {
        boolean inside = false;
        for (String l : Files.readAllLines(Path.of("/proc/self/smaps"))) {
            Matcher m = RANGE.matcher(l);
            if (m.find()) {
                inside = Long.parseUnsignedLong(m.group(1), 16) <= address && address < Long.parseUnsignedLong(m.group(2), 16);
            } else if (inside && l.startsWith(field)) {
                return l;
            }
        }
        throw new AssertionError("no mapping holding 0x" + Long.toHexString(address) + " with " + field + " in /proc/self/smaps");
    }
}
