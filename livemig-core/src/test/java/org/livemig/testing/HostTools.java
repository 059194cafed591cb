package org.livemig.testing;

import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;

/** Programs and logs of the machine the tests run on (real QEMU for interop tests). */
public final class HostTools {
    private HostTools() {}

    /** The executable {@code name} found on PATH, or null (tests then skip). */
    public static String onPath(String name) {
        for (String d : System.getenv().getOrDefault("PATH", "").split(File.pathSeparator)) {
            Path p = Path.of(d, name);
            if (Files.isExecutable(p)) {
                return p.toString();
            }
        }
        return null;
    }

    /** A log file's text for an assertion message, or why it could not be read. */
    public static String readQuietly(Path log) {
        try {
            return Files.readString(log);
        } catch (Exception e) {
            return e.toString();
        }
    }
}
