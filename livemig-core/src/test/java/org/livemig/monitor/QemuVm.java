package org.livemig.monitor;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;
import org.livemig.testing.HostTools;

/**
 * A real QEMU process ({@code qemu-system-x86_64 -M pc -m 32M}, TCG) running the dirtyloop BIOS
 * of the test resources (it keeps writing two counters), with a QMP socket. Tests using it are
 * skipped when QEMU is not installed or is not 7.2 (the version livemig speaks).
 */
final class QemuVm extends QmpVm {
    final Process process;
    final Path log;

    private QemuVm(String name, Process process, Path log, QmpClient qmp) throws IOException {
        super(name, qmp);
        this.process = process;
        this.log = log;
    }

    /** Starts QEMU; a destination waits with {@code -incoming defer}. */
    static QemuVm start(Path dir, String name, boolean incoming) throws IOException, InterruptedException {
        return start(dir, name, incoming, true);
    }

    /** As above; without {@code autostart}, with {@code -S}. */
    static QemuVm start(Path dir, String name, boolean incoming, boolean autostart) throws IOException, InterruptedException {
        String binary = HostTools.onPath("qemu-system-x86_64");
        Assumptions.assumeTrue(binary != null, "qemu-system-x86_64 is not installed");
        Path bios = Path.of("src/test/resources/qemu-7.2/dirtyloop-bios.bin").toAbsolutePath();
        Path sock = dir.resolve(name + ".qmp");
        Path log = dir.resolve(name + ".log");
        List<String> cmd = new ArrayList<>(List.of(binary, "-M", "pc", "-m", "32M", "-accel", "tcg", "-nodefaults",
                "-display", "none", "-bios", bios.toString(), "-qmp", "unix:" + sock + ",server=on,wait=off"));
        if (incoming) {
            cmd.addAll(List.of("-incoming", "defer"));
        }
        if (!autostart) {
            cmd.add("-S");
        }
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        while (!Files.exists(sock) && p.isAlive() && System.nanoTime() < deadline) {
            Thread.sleep(20); // QEMU creating its socket sends nothing to wait on
        }
        Assumptions.assumeTrue(p.isAlive() && Files.exists(sock), () -> "QEMU did not start: " + HostTools.readQuietly(log));
        // The socket's file appears at bind, a moment before QEMU listens: refused until then.
        QmpClient c = null;
        while (c == null) {
            try {
                c = QmpClient.connect("unix:" + sock);
            } catch (IOException e) {
                if (!p.isAlive() || System.nanoTime() > deadline) {
                    throw e;
                }
                Thread.sleep(20);
            }
        }
        var v = c.greeting().path("QMP").path("version").path("qemu");
        if (v.path("major").asInt() != 7 || v.path("minor").asInt() != 2) {
            c.close();
            p.destroyForcibly();
            Assumptions.abort("these comparisons need QEMU 7.2, found " + v);
        }
        return new QemuVm(name, p, log, c);
    }

    @Override
    boolean isQemu() {
        return true;
    }

    @Override
    boolean alive() {
        return process.isAlive();
    }

    @Override
    int exitStatus() {
        return process.isAlive() ? -1 : process.exitValue();
    }

    /** Waits up to {@code timeout} for the process to exit; its status, or -1. */
    int awaitExit(Duration timeout) throws InterruptedException {
        return process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS) ? process.exitValue() : -1;
    }

    String logText() {
        return HostTools.readQuietly(log);
    }

    @Override
    public void close() throws InterruptedException {
        try {
            if (process.isAlive() && qmp.isConnected()) {
                qmp.execute("quit");
            }
        } catch (IOException | RuntimeException e) {
            // gone already; destroyed below
        } finally {
            qmp.close();
            if (!process.waitFor(10, TimeUnit.SECONDS)) {
                process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            }
        }
    }
}
