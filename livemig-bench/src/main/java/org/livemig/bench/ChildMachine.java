package org.livemig.bench;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.livemig.monitor.QmpClient;

/**
 * A {@code livemig run} machine in a child JVM with a QMP socket, as a QEMU process is to a
 * management tool: started with machine options, driven over QMP, asked to {@code quit}.
 *
 * <p>The child runs {@value #MAIN_CLASS} by name from this process's class path (the shaded jar
 * when started by {@code ./livemig}), so this module needs no compile-time link to the CLI.
 * The QMP socket appears only after the child has allocated, pre-faulted and filled guest RAM,
 * so {@link #start} returns with the machine ready and that work done.
 *
 * <p>Thread-safety: the QMP client is thread-safe; the rest is read-only after {@link #start}.
 */
public final class ChildMachine implements AutoCloseable {
    /** The CLI entry point the child runs. */
    public static final String MAIN_CLASS = "org.livemig.cli.Main";
    /**
     * The JVM options of a machine process: the serial collector and {@value #RUN_OPTIONS_RESOURCE},
     * the list {@code ./livemig run} and the release launcher read too (a heap that starts at 16 MiB
     * with an 8 MiB young generation, no per-thread cache of large temporary direct buffers, freed
     * native memory given back). With {@code MALLOC_ARENA_MAX=2} in the environment: resident memory
     * beyond guest RAM at about a third of what the JVM's defaults gave (issue 21).
     */
    public static final String RUN_JAVA_OPTS = "-XX:+UseSerialGC " + runOptions();
    /** Heap of a child JVM unless {@code LIVEMIG_CHILD_JAVA_OPTS} says otherwise (guest RAM is off-heap), with {@link #RUN_JAVA_OPTS}. */
    public static final String DEFAULT_CHILD_JAVA_OPTS = "-Xmx256m " + RUN_JAVA_OPTS;
    private static final Duration START_TIMEOUT = Duration.ofSeconds(180);
    /** Where {@link #RUN_JAVA_OPTS} come from on the class path (livemig-core; a java @argument file). */
    public static final String RUN_OPTIONS_RESOURCE = "META-INF/livemig/run.jvmopts";

    private final String name;
    private final Process process;
    private final QmpClient qmp;
    private final Path socket;
    private final Path log;
    private final long startToGreetingNanos;

    private ChildMachine(String name, Process process, QmpClient qmp, Path socket, Path log, long startToGreetingNanos) {
        this.name = name;
        this.process = process;
        this.qmp = qmp;
        this.socket = socket;
        this.log = log;
        this.startToGreetingNanos = startToGreetingNanos;
    }

    /**
     * The command that starts a child JVM running {@value #MAIN_CLASS}: this process's java binary,
     * {@code --enable-native-access}, the options of {@code LIVEMIG_CHILD_JAVA_OPTS} (default
     * {@link #DEFAULT_CHILD_JAVA_OPTS}), {@code -ea} when asked, and this process's class path.
     */
    public static List<String> javaCommand(boolean assertions) {
        return javaCommand(assertions, DEFAULT_CHILD_JAVA_OPTS);
    }

    /**
     * As {@link #javaCommand(boolean)}, with {@code defaultOptions} in place of
     * {@link #DEFAULT_CHILD_JAVA_OPTS} when {@code LIVEMIG_CHILD_JAVA_OPTS} is not set.
     */
    public static List<String> javaCommand(boolean assertions, String defaultOptions) {
        String java = ProcessHandle.current().info().command().orElse("java");
        List<String> cmd = new ArrayList<>(List.of(java, "--enable-native-access=ALL-UNNAMED"));
        if (assertions) {
            cmd.add("-ea");
        }
        String opts = System.getenv("LIVEMIG_CHILD_JAVA_OPTS");
        for (String o : (opts == null ? defaultOptions : opts).trim().split("\\s+")) {
            if (!o.isEmpty()) {
                cmd.add(o);
            }
        }
        // The launcher's AOT cache (trained on the same jar): a child starts with its classes
        // linked and its methods profiled. A cache that does not fit is ignored by the JVM.
        String aot = System.getenv("LIVEMIG_AOT_CACHE");
        if (aot != null && !aot.isBlank() && Files.isRegularFile(Path.of(aot))) {
            cmd.add("-XX:AOTCache=" + aot);
            cmd.add("-Xlog:aot=off");
            cmd.add("-Xlog:cds=off");
        }
        // LIVEMIG_CHILD_JAR runs the children from another build (an A/B against a baseline's jar).
        String jar = System.getenv("LIVEMIG_CHILD_JAR");
        cmd.addAll(List.of("-cp", jar != null && !jar.isBlank() ? jar : System.getProperty("java.class.path"), MAIN_CLASS));
        return cmd;
    }

    /**
     * Starts {@code <java> run <runArgs> --name NAME --qmp unix:DIR/NAME.qmp}, waits for its QMP
     * socket, times its greeting on a first connection, then connects and negotiates. The child's
     * output goes to {@code DIR/NAME.log}.
     *
     * @throws IOException when the child exits or gives no socket within the start timeout (with
     *                     the tail of its log)
     */
    public static ChildMachine start(List<String> javaCommand, List<String> runArgs, Path dir, String name)
            throws IOException, InterruptedException {
        Path sock = dir.resolve(name + ".qmp");
        Path log = dir.resolve(name + ".log");
        Files.deleteIfExists(sock);
        List<String> cmd = new ArrayList<>(javaCommand);
        cmd.add("run");
        cmd.addAll(runArgs);
        cmd.addAll(List.of("--name", name, "--qmp", "unix:" + sock));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile());
        String level = System.getProperty("livemig.log.level"); // this process's --log-level, -v or -q
        if (level != null) {
            pb.environment().put("LIVEMIG_LOG_LEVEL", level);
        }
        // glibc's malloc keeps an arena per thread that ever allocated (the JIT's, mostly), each
        // keeping what it freed: two are enough for a machine process.
        pb.environment().putIfAbsent("MALLOC_ARENA_MAX", "2");
        long t0 = System.nanoTime();
        Process p = pb.start();
        try {
            long deadline = t0 + START_TIMEOUT.toNanos();
            while (!Files.exists(sock)) {
                if (!p.isAlive()) {
                    throw new IOException(name + " process " + describeExit(p.exitValue()) + ": " + tail(log));
                }
                if (System.nanoTime() > deadline) {
                    throw new IOException(name + " process did not open its QMP socket within "
                            + START_TIMEOUT.toSeconds() + " s: " + tail(log));
                }
                Thread.sleep(2); // a child creating its socket sends no event to wait on
            }
            long greeted;
            try (var ch = QmpPinger.connectRetrying(sock, START_TIMEOUT)) {
                QmpPinger.readGreeting(ch);
                greeted = System.nanoTime();
            }
            QmpClient c = QmpClient.connect("unix:" + sock);
            c.negotiate();
            return new ChildMachine(name, p, c, sock, log, greeted - t0);
        } catch (IOException | InterruptedException | RuntimeException e) {
            p.destroyForcibly();
            throw e;
        }
    }

    /** The options of {@value #RUN_OPTIONS_RESOURCE}, one line: its words, without its comments. */
    static String runOptions() {
        try (var in = ChildMachine.class.getClassLoader().getResourceAsStream(RUN_OPTIONS_RESOURCE)) {
            if (in == null) {
                throw new IllegalStateException(RUN_OPTIONS_RESOURCE + " is not on the class path (livemig-core's jar holds it)");
            }
            return new String(in.readAllBytes(), java.nio.charset.StandardCharsets.UTF_8).lines()
                    .filter(l -> !l.strip().startsWith("#"))
                    .flatMap(l -> java.util.Arrays.stream(l.trim().split("\\s+")))
                    .filter(w -> !w.isEmpty())
                    .collect(java.util.stream.Collectors.joining(" "));
        } catch (IOException e) {
            throw new java.io.UncheckedIOException("cannot read " + RUN_OPTIONS_RESOURCE, e);
        }
    }

    /**
     * How a child ended, from its exit value: "exited with status N", or for a process killed by
     * a signal (a status of 128 + N, as Java reports it) "was killed by signal N (SIGNAME)".
     */
    public static String describeExit(int status) {
        if (status <= 128 || status > 128 + 64) {
            return "exited with status " + status;
        }
        int sig = status - 128;
        String name = switch (sig) {
            case 1 -> "SIGHUP";
            case 2 -> "SIGINT";
            case 3 -> "SIGQUIT";
            case 6 -> "SIGABRT";
            case 9 -> "SIGKILL";
            case 11 -> "SIGSEGV";
            case 15 -> "SIGTERM";
            default -> "signal " + sig;
        };
        return "was killed by signal " + sig + " (" + name + (sig == 9
                ? "; the kernel's OOM killer sends it when memory runs out: see dmesg" : "") + ")";
    }

    /** The JVM options of a {@link #javaCommand} (between the java binary and the class path), for reports. */
    public static String jvmOptions(List<String> javaCommand) {
        int cp = javaCommand.indexOf("-cp");
        return String.join(" ", javaCommand.subList(1, cp < 0 ? javaCommand.size() : cp));
    }

    /** The last lines of a child's log, for error messages. */
    public static String tail(Path log) {
        try {
            List<String> lines = Files.readAllLines(log);
            return String.join("\n", lines.subList(Math.max(0, lines.size() - 20), lines.size()));
        } catch (IOException e) {
            return "(no log)";
        }
    }

    public String name() {
        return name;
    }

    /** Process start to the monitor's greeting on a first connection, in nanoseconds (polled every 2 ms). */
    public long startToGreetingNanos() {
        return startToGreetingNanos;
    }

    public long pid() {
        return process.pid();
    }

    public Process process() {
        return process;
    }

    /** The session opened by {@link #start}. */
    public QmpClient qmp() {
        return qmp;
    }

    /** Opens another QMP session to the child with out-of-band execution enabled. The caller closes it. */
    public QmpClient connectOob() throws IOException {
        QmpClient c = QmpClient.connect("unix:" + socket);
        try {
            c.negotiateOob();
        } catch (IOException | RuntimeException e) {
            c.close();
            throw e;
        }
        return c;
    }

    /** Opens a bare QMP session for timing round trips (negotiated). The caller closes it. */
    QmpPinger pinger() throws IOException, InterruptedException {
        return QmpPinger.connect(socket, Duration.ofSeconds(10));
    }

    /** Opens another QMP session to the child (negotiated). The caller closes it. */
    public QmpClient connect() throws IOException {
        QmpClient c = QmpClient.connect("unix:" + socket);
        try {
            c.negotiate();
        } catch (IOException | RuntimeException e) {
            c.close();
            throw e;
        }
        return c;
    }

    public Path log() {
        return log;
    }

    /** Peak resident memory of the child so far (VmHWM), or -1 where /proc is not available. */
    public long peakRssBytes() {
        return ProcessStats.peakRssBytes(process.pid());
    }

    /** Sends {@code quit} and waits for the child to exit, killing it if it does not within 30 s. */
    @Override
    public void close() throws InterruptedException {
        try {
            if (process.isAlive() && qmp.isConnected()) {
                qmp.execute("quit");
            }
        } catch (IOException | RuntimeException e) {
            // the child may be gone already; it is killed below if not
        } finally {
            qmp.close();
            if (!process.waitFor(30, TimeUnit.SECONDS)) {
                process.destroyForcibly();
                process.waitFor(10, TimeUnit.SECONDS);
            }
        }
    }
}
