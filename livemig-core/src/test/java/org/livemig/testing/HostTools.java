package org.livemig.testing;

import static org.awaitility.Awaitility.await;

import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

import org.junit.jupiter.api.Assumptions;

/** Programs and logs of the machine the tests run on (real QEMU for interop tests). */
public final class HostTools {
    private HostTools() {}

    /** A started QEMU: its process, its QMP socket (not yet connected) and its log. */
    public record Qemu(Process process, Path qmpSocket, Path log) {
        /** The log's text, for assertion messages. */
        public String logText() {
            return readQuietly(log);
        }
    }

    /**
     * Starts {@code qemu-system-x86_64 ARGS -qmp unix:DIR/qemu.sock,server=on,wait=off}, its output
     * in {@code DIR/qemu.log}, and waits for the socket. The test is skipped (not failed) when QEMU
     * is not installed or does not start.
     */
    public static Qemu startQemu(Path dir, String... args) throws IOException {
        String binary = onPath("qemu-system-x86_64");
        Assumptions.assumeTrue(binary != null, "qemu-system-x86_64 is not installed");
        Path sock = dir.resolve("qemu.sock");
        Path log = dir.resolve("qemu.log");
        List<String> cmd = new ArrayList<>(List.of(binary));
        cmd.addAll(List.of(args));
        cmd.addAll(List.of("-qmp", "unix:" + sock + ",server=on,wait=off"));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        await().atMost(Duration.ofSeconds(30)).until(() -> Files.exists(sock) || !p.isAlive());
        Assumptions.assumeTrue(p.isAlive(), () -> "QEMU did not start: " + readQuietly(log));
        return new Qemu(p, sock, log);
    }

    /**
     * Connects a QMP client to a QEMU just started: its socket file exists as soon as QEMU binds
     * it, a moment before it listens, so a refused connection is tried again (for 30 s at most).
     */
    public static org.livemig.monitor.QmpClient connectQmp(Path socket) {
        return await().atMost(Duration.ofSeconds(30)).pollInterval(Duration.ofMillis(50))
                .ignoreExceptionsInstanceOf(IOException.class)
                .until(() -> org.livemig.monitor.QmpClient.connect("unix:" + socket), c -> c != null);
    }

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
