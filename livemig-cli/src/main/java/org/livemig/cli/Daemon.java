package org.livemig.cli;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.lang.management.ManagementFactory;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine.Model.CommandSpec;

/**
 * {@code run --daemonize} and {@code --pidfile}, as QEMU's {@code -daemonize} and {@code -pidfile}.
 * A JVM cannot fork, so the parent starts the same command again as a child in a session of its
 * own ({@code setsid}), relays its output until the child says it is ready, and exits with 0
 * then (or with the child's status if it ends first).
 */
final class Daemon {
    private Daemon() {}

    /** The line prefix by which {@code run} says it is ready. */
    static final String READY = "livemig run: ready";
    /** Longest a child may take to get ready (it allocates and fills its RAM first). */
    private static final long START_MINUTES = 10;

    /** Starts the daemon child and waits for it to be ready. Returns this process's exit status. */
    static int start(CommandSpec spec, Path pidfile) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>();
        Path setsid = Path.of("/usr/bin/setsid");
        if (Files.isExecutable(setsid)) {
            cmd.add(setsid.toString()); // a session of its own: no terminal, no SIGHUP or Ctrl-C from it
        }
        cmd.add(ProcessHandle.current().info().command().orElse("java"));
        cmd.addAll(ManagementFactory.getRuntimeMXBean().getInputArguments());
        cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), Main.class.getName()));
        for (String a : spec.root().commandLine().getParseResult().originalArgs()) {
            if (!a.equals("--daemonize")) {
                cmd.add(a);
            }
        }
        cmd.add("--x-daemon-child");
        Process child = new ProcessBuilder(cmd).redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")))
                .redirectErrorStream(true).start();
        long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(START_MINUTES);
        Thread watchdog = Thread.ofVirtual().start(() -> {
            try {
                if (!child.waitFor(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS)) {
                    child.destroy(); // no ready line in time: the read below sees the end
                }
            } catch (InterruptedException e) {
                // the parent is done
            }
        });
        try (BufferedReader out = new BufferedReader(new InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8))) {
            String line;
            while ((line = out.readLine()) != null) {
                System.err.println(line);
                if (line.startsWith(READY)) {
                    System.err.flush();
                    return ExitCodes.OK;
                }
            }
        } finally {
            watchdog.interrupt();
        }
        int status = child.waitFor();
        System.err.println("livemig run: the machine did not get ready: its process " + org.livemig.bench.ChildMachine.describeExit(status));
        return status == 0 ? ExitCodes.FAILED : status;
    }

    /** In the daemon child, once ready: the parent stops reading, so later output goes nowhere (as QEMU's). */
    static void detached() {
        PrintStream nowhere = new PrintStream(java.io.OutputStream.nullOutputStream(), true, StandardCharsets.UTF_8);
        System.out.flush();
        System.err.flush();
        System.setOut(nowhere);
        System.setErr(nowhere);
    }

    /** A pid file, locked from the start so that two machines cannot share one; removed at exit. */
    static final class PidFile {
        private final Path path;
        private final FileChannel channel;
        private final FileLock lock;

        private PidFile(Path path, FileChannel channel, FileLock lock) {
            this.path = path;
            this.channel = channel;
            this.lock = lock;
        }

        /** Opens and locks {@code path}; refuses one locked by a running machine, naming its pid. */
        static PidFile lock(Path path) throws IOException {
            FileChannel ch = FileChannel.open(path, StandardOpenOption.CREATE, StandardOpenOption.WRITE, StandardOpenOption.READ);
            FileLock l;
            try {
                l = ch.tryLock();
            } catch (IOException | RuntimeException e) {
                ch.close();
                throw e;
            }
            if (l == null) {
                ch.close();
                String holder = Files.readString(path).strip();
                throw new IllegalArgumentException("--pidfile " + path + " is locked by a running machine"
                        + (holder.isEmpty() ? "" : " (pid " + holder + ")"));
            }
            return new PidFile(path, ch, l);
        }

        /** Writes this process's id. */
        void write() throws IOException {
            channel.truncate(0);
            channel.write(ByteBuffer.wrap((ProcessHandle.current().pid() + "\n").getBytes(StandardCharsets.US_ASCII)), 0);
            channel.force(false);
        }

        /** Removes the file and lets the lock go. */
        void release() {
            try {
                Files.deleteIfExists(path);
                lock.release();
                channel.close();
            } catch (IOException e) {
                // exiting anyway
            }
        }
    }
}
