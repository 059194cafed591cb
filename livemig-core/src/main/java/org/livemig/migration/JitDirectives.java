package org.livemig.migration;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.lang.System.Logger.Level;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.management.ManagementFactory;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Collectors;

/**
 * The compiler directive of the page path, which the process installs in its own JVM, so that every
 * launcher and a library user's own {@code java} line get it alike.
 *
 * <p>The page loops ({@code RamSaver.saveIterate}, {@code RamLoader.load}) run once per 50 ms
 * section, too few times for a warm-up to compile them normally; a real migration compiles them on
 * the stack (OSR), and with the per-page methods inlined that recompiled the whole page path the
 * warm-up had compiled already (0.05–0.2 C2 CPU-s per process in every migration). Kept out of the
 * loops, the per-page methods stay the warm-up's compiled code and the loops' own compilation is
 * small. This is {@code -XX:CompileCommand=dontinline} for those methods, for the compilations of
 * livemig's own methods (the only callers).
 *
 * <p>HotSpot has no public in-process API for it but the DiagnosticCommand MBean, whose first use
 * costs about 0.2 CPU-s and 0.5 s (it describes every diagnostic command, JFR's included). So the
 * process asks its own attach listener (what {@code jcmd PID Compiler.directives_add} talks to):
 * a trigger file and a SIGQUIT start it, as for any {@code jcmd}; about 10 ms. Where the listener is
 * off ({@code -XX:+DisableAttachMechanism}, or {@code -Xrs}, where SIGQUIT would end the process)
 * it uses the MBean; on another JVM it logs once and does nothing. An embedder that keeps SIGQUIT
 * for itself (a {@code sun.misc.Signal} handler) or wants no attach listener sets the system
 * property {@value #MODE_PROPERTY} to {@code mbean}; {@code off} installs nothing.
 *
 * <p>Thread-safety: {@link #install} is synchronized and runs once per process.
 */
public final class JitDirectives {
    private static final System.Logger LOG = System.getLogger(JitDirectives.class.getName());
    /** The methods no livemig compilation inlines (class/method, as compiler directives name them). */
    public static final List<String> DONT_INLINE = List.of("org/livemig/migration/RamSaver.sendNextDirtyPage",
            "org/livemig/migration/RamSaver.sendKnownZeroRun", "org/livemig/migration/RamLoader.loadRecord");
    /** System property choosing how the directive is installed: {@code auto} (default), {@code mbean} or {@code off}. */
    public static final String MODE_PROPERTY = "livemig.jit.directive";
    private static final int SIGQUIT = 3;
    private static final long ATTACH_TIMEOUT_MILLIS = 2_000;

    /** How the directive got installed, once {@link #install} has run. */
    public enum Outcome { ATTACH_LISTENER, MBEAN, UNAVAILABLE }

    private static Outcome outcome;

    private JitDirectives() {
    }

    /** The directives file's text: livemig's compilations do not inline {@link #DONT_INLINE}. */
    public static String json() {
        return "[{match: [\"org/livemig/*.*\"], inline: ["
                + DONT_INLINE.stream().map(m -> "\"-" + m + "\"").collect(Collectors.joining(", ")) + "]}]";
    }

    /**
     * Installs the directive in this JVM, the first time it is called; later calls return the first
     * outcome. Called without the BQL; blocks on a local socket (milliseconds).
     */
    public static synchronized Outcome install() {
        if (outcome != null) {
            return outcome;
        }
        long start = System.nanoTime();
        String mode = System.getProperty(MODE_PROPERTY, "auto");
        if (mode.equals("off")) {
            LOG.log(Level.DEBUG, "page path compiler directive not installed: " + MODE_PROPERTY + "=off");
            return outcome = Outcome.UNAVAILABLE;
        }
        Path file = null;
        String why;
        try {
            file = Files.createTempFile("livemig-jit", ".json");
            Files.writeString(file, json());
            String command = "Compiler.directives_add " + file;
            why = switch (mode) {
                case "auto" -> attachListenerUnusable();
                case "mbean" -> MODE_PROPERTY + "=mbean";
                default -> throw new IllegalArgumentException(MODE_PROPERTY + " must be auto, mbean or off, not '" + mode + "'");
            };
            String reply;
            if (why == null) {
                try {
                    reply = attachCommand(command);
                } catch (IOException e) {
                    why = "the attach listener failed: " + e.getMessage();
                    reply = mbeanCommand("compilerDirectivesAdd", file.toString());
                }
            } else {
                reply = mbeanCommand("compilerDirectivesAdd", file.toString());
            }
            outcome = why == null ? Outcome.ATTACH_LISTENER : Outcome.MBEAN;
            if (!reply.contains("1 compiler directives added")) {
                throw new IOException("the JVM answered: " + reply.strip());
            }
            String how = why == null ? "through the attach listener" : "through the DiagnosticCommand MBean (" + why + ")";
            LOG.log(Level.DEBUG, () -> "page path compiler directive installed " + how + " in "
                    + (System.nanoTime() - start) / 1_000_000 + " ms");
        } catch (IOException | RuntimeException | LinkageError e) {
            outcome = Outcome.UNAVAILABLE;
            LOG.log(Level.INFO, "the page path's compiler directive could not be installed (" + e
                    + "); a migration may compile its page loops while it runs");
        } finally {
            if (file != null) {
                try {
                    Files.deleteIfExists(file);
                } catch (IOException e) {
                    // a leftover temp file is harmless
                }
            }
        }
        return outcome;
    }

    /**
     * The JVM's compiler directives as {@code Compiler.directives_print} prints them, through the
     * same way {@link #install} used (tests, diagnostics). Called without the BQL.
     *
     * @throws IOException when nothing was installed or the JVM does not answer
     */
    public static String print() throws IOException {
        Outcome o = install();
        return switch (o) {
            case ATTACH_LISTENER -> attachCommand("Compiler.directives_print");
            case MBEAN -> mbeanCommand("compilerDirectivesPrint");
            case UNAVAILABLE -> throw new IOException("no compiler directive was installed on this JVM");
        };
    }

    /** Why the attach listener may not be used, or null when it may. */
    private static String attachListenerUnusable() {
        if (!System.getProperty("os.name", "").equals("Linux")) {
            return "not Linux";
        }
        com.sun.management.HotSpotDiagnosticMXBean hs =
                ManagementFactory.getPlatformMXBean(com.sun.management.HotSpotDiagnosticMXBean.class);
        if (hs == null) {
            throw new IllegalStateException("not a HotSpot JVM");
        }
        for (String flag : List.of("ReduceSignalUsage", "DisableAttachMechanism")) {
            if (Boolean.parseBoolean(hs.getVMOption(flag).getValue())) {
                return "-XX:" + flag + " is on";
            }
        }
        return null;
    }

    /** One command to this JVM's attach listener, started first if it is not running. */
    private static String attachCommand(String command) throws IOException {
        long pid = ProcessHandle.current().pid();
        // HotSpot on Linux: the listener's socket and its trigger file are in /tmp, whatever java.io.tmpdir says.
        Path socket = Path.of("/tmp/.java_pid" + pid);
        String reply = tryAttach(socket, command);
        if (reply != null) {
            return reply;
        }
        Path trigger = Path.of("/tmp/.attach_pid" + pid);
        Files.deleteIfExists(trigger);
        Files.createFile(trigger);
        try {
            kill(pid, SIGQUIT); // with the trigger file present, the JVM starts its attach listener (no thread dump)
            long deadline = System.nanoTime() + ATTACH_TIMEOUT_MILLIS * 1_000_000;
            while ((reply = tryAttach(socket, command)) == null) {
                if (System.nanoTime() > deadline) {
                    throw new IOException("the JVM's attach listener did not start within " + ATTACH_TIMEOUT_MILLIS + " ms");
                }
                try {
                    Thread.sleep(1); // the JVM tells no one when its listener is up
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IOException("interrupted while the attach listener started", e);
                }
            }
            return reply;
        } finally {
            Files.deleteIfExists(trigger);
        }
    }

    /** The listener's reply to one {@code jcmd} command, or null when no listener answers on {@code socket}. */
    private static String tryAttach(Path socket, String command) throws IOException {
        if (!Files.exists(socket)) {
            return null;
        }
        SocketChannel ch;
        try {
            ch = SocketChannel.open(UnixDomainSocketAddress.of(socket));
        } catch (IOException e) {
            return null; // a stale socket of an earlier process with this pid, or the listener not up yet
        }
        try (ch) {
            // Attach protocol 1: version, command, three arguments, each NUL-terminated.
            ch.write(ByteBuffer.wrap(("1\0jcmd\0" + command + "\0\0\0").getBytes(StandardCharsets.UTF_8)));
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            ByteBuffer b = ByteBuffer.allocate(4096);
            while (ch.read(b) >= 0) {
                out.write(b.array(), 0, b.position());
                b.clear();
            }
            String reply = out.toString(StandardCharsets.UTF_8);
            if (!reply.startsWith("0\n")) {
                throw new IOException("the attach listener refused '" + command + "': " + reply.strip());
            }
            return reply.substring(2);
        }
    }

    private static void kill(long pid, int signal) throws IOException {
        Linker linker = Linker.nativeLinker();
        MethodHandle kill = linker.downcallHandle(linker.defaultLookup().find("kill").orElseThrow(),
                FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT));
        int rc;
        try {
            rc = (int) kill.invokeExact((int) pid, signal);
        } catch (Throwable t) {
            throw new IOException("kill failed", t);
        }
        if (rc != 0) {
            throw new IOException("kill(" + pid + ", SIGQUIT) failed");
        }
    }

    private static String mbeanCommand(String operation, String... args) throws IOException {
        try {
            Object r = ManagementFactory.getPlatformMBeanServer().invoke(
                    new javax.management.ObjectName("com.sun.management:type=DiagnosticCommand"), operation,
                    new Object[] {args}, new String[] {String[].class.getName()});
            return String.valueOf(r);
        } catch (javax.management.JMException e) {
            throw new IOException("the DiagnosticCommand MBean failed: " + e, e);
        }
    }
}
