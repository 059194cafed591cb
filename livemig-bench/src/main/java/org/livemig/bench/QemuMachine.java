package org.livemig.bench;

import java.io.File;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.livemig.monitor.QmpClient;

/**
 * A real QEMU 7.2 beside livemig in a benchmark: a paused guest ({@code -S}) with no devices, its
 * RAM pre-allocated ({@code memory-backend-*,prealloc=on}, as livemig pre-faults its own), a
 * destination with {@code -incoming defer}, a source whose RAM is a private mapping of a file of
 * random bytes (so that it migrates the same kind of RAM as livemig's {@code --fill random}).
 * KVM when the host has it, TCG otherwise (neither runs: the guest stays paused). A QEMU monitor
 * serves one client at a time, so there are two: {@link #qmp} for control, {@link #pingSocket}
 * for a benchmark's sampler.
 *
 * <p>Thread-safety: as {@link ChildMachine}.
 */
public final class QemuMachine implements AutoCloseable {
    /** The QEMU binary the benchmarks start. */
    public static final String BINARY = "qemu-system-x86_64";
    private static final Duration START_TIMEOUT = Duration.ofSeconds(120);

    private final String name;
    private final Process process;
    private final QmpClient qmp;
    private final Path socket;
    private final long startToGreetingNanos;

    private QemuMachine(String name, Process process, QmpClient qmp, Path socket, long startToGreetingNanos) {
        this.name = name;
        this.process = process;
        this.qmp = qmp;
        this.socket = socket;
        this.startToGreetingNanos = startToGreetingNanos;
    }

    /** The path of {@value #BINARY} on PATH, or null when it is not installed (the QEMU rows are then skipped). */
    public static String binary() {
        for (String d : System.getenv().getOrDefault("PATH", "").split(File.pathSeparator)) {
            Path p = Path.of(d, BINARY);
            if (!d.isEmpty() && Files.isExecutable(p)) {
                return p.toString();
            }
        }
        return null;
    }

    /** The QEMU version line ("QEMU emulator version 7.2.x ..."), or the error. */
    public static String version(String binary) {
        try {
            Process p = new ProcessBuilder(binary, "--version").redirectErrorStream(true).start();
            String first = new String(p.getInputStream().readAllBytes()).lines().findFirst().orElse("?");
            p.waitFor(10, TimeUnit.SECONDS);
            return first;
        } catch (IOException e) {
            return "(" + e.getMessage() + ")";
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return "(interrupted)";
        }
    }

    /** Writes {@code bytes} of random data to {@code file} (a QEMU source's RAM); not timed by the benchmarks. */
    public static void writeRandomRam(Path file, long bytes, long seed) throws IOException {
        SplittableRandom r = new SplittableRandom(seed);
        ByteBuffer buf = ByteBuffer.allocate(1 << 20);
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.TRUNCATE_EXISTING,
                StandardOpenOption.WRITE)) {
            for (long done = 0; done < bytes; done += buf.capacity()) {
                buf.clear();
                while (buf.hasRemaining()) {
                    buf.putLong(r.nextLong());
                }
                buf.flip();
                buf.limit((int) Math.min(buf.capacity(), bytes - done));
                while (buf.hasRemaining()) {
                    ch.write(buf);
                }
            }
        }
    }

    /**
     * The command line of a QEMU with {@code ramBytes} of pre-allocated RAM: backed by a private
     * mapping of {@code ramFile} when not null, else anonymous; {@code -incoming defer} when
     * {@code incoming}; QMP on {@code socket} and on {@link #pingSocketOf its ping socket}.
     */
    static List<String> command(String binary, long ramBytes, Path ramFile, boolean incoming, Path socket) {
        String backend = ramFile == null
                ? "memory-backend-ram,id=mem0,size=" + ramBytes + ",prealloc=on"
                : "memory-backend-file,id=mem0,size=" + ramBytes + ",mem-path=" + ramFile + ",share=off,prealloc=on";
        List<String> cmd = new ArrayList<>(List.of(binary, "-accel", "kvm", "-accel", "tcg",
                "-machine", "pc,memory-backend=mem0", "-m", (ramBytes >> 20) + "M", "-object", backend,
                "-nodefaults", "-display", "none", "-S", "-qmp", "unix:" + socket + ",server=on,wait=off",
                "-qmp", "unix:" + pingSocketOf(socket) + ",server=on,wait=off"));
        if (incoming) {
            cmd.addAll(List.of("-incoming", "defer"));
        }
        return cmd;
    }

    /**
     * Starts a QEMU (see {@link #command}), its output in {@code DIR/NAME.log}, and returns once
     * its monitor greeted a first client, timing process start to that greeting; then connects
     * the session {@link #qmp} and negotiates.
     */
    public static QemuMachine start(String binary, long ramBytes, Path ramFile, boolean incoming, Path dir, String name)
            throws IOException, InterruptedException {
        Path sock = dir.resolve(name + ".qmp");
        Path log = dir.resolve(name + ".log");
        Files.deleteIfExists(sock);
        ProcessBuilder pb = new ProcessBuilder(command(binary, ramBytes, ramFile, incoming, sock))
                .redirectErrorStream(true).redirectOutput(log.toFile());
        long t0 = System.nanoTime();
        Process p = pb.start();
        try {
            long greeted;
            try (SocketChannel ch = QmpPinger.connectRetrying(sock, START_TIMEOUT)) {
                QmpPinger.readGreeting(ch);
                greeted = System.nanoTime();
            } catch (IOException e) {
                throw new IOException(name + " (QEMU) " + (p.isAlive() ? "gave no QMP greeting" : ChildMachine.describeExit(
                        p.waitFor())) + ": " + e.getMessage() + "; " + ChildMachine.tail(log), e);
            }
            QmpClient c = QmpClient.connect("unix:" + sock);
            c.negotiate();
            return new QemuMachine(name, p, c, sock, greeted - t0);
        } catch (IOException | InterruptedException | RuntimeException e) {
            p.destroyForcibly();
            throw e;
        }
    }

    public String name() {
        return name;
    }

    public long pid() {
        return process.pid();
    }

    /** The session opened by {@link #start}. */
    public QmpClient qmp() {
        return qmp;
    }

    /** The second monitor's socket, free for one more client (QEMU's monitors serve one each). */
    public Path pingSocket() {
        return pingSocketOf(socket);
    }

    static Path pingSocketOf(Path socket) {
        return socket.resolveSibling(socket.getFileName() + "-ping");
    }

    /** Process start to the monitor's greeting, in nanoseconds. */
    public long startToGreetingNanos() {
        return startToGreetingNanos;
    }

    /** Sends {@code quit} and waits for QEMU to exit, killing it if it does not within 30 s. */
    @Override
    public void close() throws InterruptedException {
        try {
            if (process.isAlive() && qmp.isConnected()) {
                qmp.execute("quit");
            }
        } catch (IOException | RuntimeException e) {
            // gone already; killed below if not
        } finally {
            qmp.close();
            if (!process.waitFor(30, TimeUnit.SECONDS)) {
                process.destroyForcibly();
                process.waitFor(10, TimeUnit.SECONDS);
            }
        }
    }
}
