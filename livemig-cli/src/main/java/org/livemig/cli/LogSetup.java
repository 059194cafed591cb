package org.livemig.cli;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import java.time.Instant;
import java.time.format.DateTimeFormatter;
import java.util.List;
import java.util.Locale;
import java.util.logging.ConsoleHandler;
import java.util.logging.FileHandler;
import java.util.logging.Formatter;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;
import picocli.CommandLine.Option;
import picocli.CommandLine.ScopeType;

/**
 * The command line's logging. livemig logs through {@code System.Logger}, whose default backend is
 * the JDK's java.util.logging: this class configures that backend for a livemig process, with
 * one line per record (a UTC timestamp, the thread, the level, the message, as QEMU's
 * {@code -msg timestamp=on}), to standard error or to {@code --log-file}. The only class of
 * livemig that touches java.util.logging.
 */
final class LogSetup {
    private LogSetup() {}

    /** The options every command takes (picocli copies them to each sub-command). */
    static final class Options {
        @Option(names = "--log-level", paramLabel = "LEVEL", scope = ScopeType.INHERIT,
                description = "error, warning, info (the default, or LIVEMIG_LOG_LEVEL), debug or trace.")
        String level;

        @Option(names = "-v", scope = ScopeType.INHERIT,
                description = "More log: -v debug, -vv trace (with stack traces).")
        boolean[] verbose = new boolean[0];

        @Option(names = "-q", scope = ScopeType.INHERIT, description = "Less log: -q warnings and errors, -qq errors only.")
        boolean[] quiet = new boolean[0];

        @Option(names = "--log-file", paramLabel = "FILE", scope = ScopeType.INHERIT,
                description = "Append log records to FILE instead of standard error.")
        Path file;
    }

    static final List<String> LEVELS = List.of("error", "warning", "info", "debug", "trace");

    /** The level the options ask for, after LIVEMIG_LOG_LEVEL; -v and -q move it from there. */
    static String level(String option, int verbose, int quiet) {
        String base = option != null ? option : System.getenv("LIVEMIG_LOG_LEVEL");
        base = base == null || base.isBlank() ? "info" : base.strip().toLowerCase(Locale.ROOT);
        if (base.equals("warn")) {
            base = "warning";
        }
        int i = LEVELS.indexOf(base);
        if (i < 0) {
            throw new IllegalArgumentException((option != null ? "--log-level" : "LIVEMIG_LOG_LEVEL")
                    + " must be error, warning, info, debug or trace, not '" + base + "'");
        }
        return LEVELS.get(Math.max(0, Math.min(LEVELS.size() - 1, i + verbose - quiet)));
    }

    private static Level julLevel(String level) {
        return switch (level) {
            case "error" -> Level.SEVERE;
            case "warning" -> Level.WARNING;
            case "info" -> Level.INFO;
            case "debug" -> Level.FINE;
            default -> Level.FINEST;
        };
    }

    /** The backend's configuration before {@link #apply}, to put back after the command (in-process runs). */
    record Saved(Level level, Handler[] handlers, String property) {}

    /**
     * Configures the backend: {@code level}, one handler writing one-line records to standard
     * error or appending them to {@code file}. A {@code -Djava.util.logging.config.file} given to
     * the JVM wins (nothing is changed then).
     */
    static Saved apply(String level, Path file) throws IOException {
        Logger root = Logger.getLogger("");
        Saved saved = new Saved(root.getLevel(), root.getHandlers(), System.getProperty("livemig.log.level"));
        if (System.getProperty("java.util.logging.config.file") != null) {
            return saved;
        }
        Handler h;
        if (file != null) {
            FileHandler fh = new FileHandler(file.toAbsolutePath().toString(), true);
            fh.setEncoding("UTF-8");
            h = fh;
        } else {
            h = new ConsoleHandler(); // standard error
        }
        h.setFormatter(new OneLine(level.equals("debug") || level.equals("trace")));
        h.setLevel(julLevel(level));
        for (Handler old : root.getHandlers()) {
            root.removeHandler(old);
        }
        root.addHandler(h);
        root.setLevel(julLevel(level));
        // Child machine processes (demo, bench) log at the same level.
        System.setProperty("livemig.log.level", level);
        return saved;
    }

    /** Puts the backend back as it was (and closes the handler {@link #apply} made). */
    static void restore(Saved saved) {
        if (System.getProperty("java.util.logging.config.file") != null) {
            return;
        }
        Logger root = Logger.getLogger("");
        for (Handler h : root.getHandlers()) {
            root.removeHandler(h);
            h.close();
        }
        for (Handler h : saved.handlers()) {
            root.addHandler(h);
        }
        root.setLevel(saved.level());
        if (saved.property() == null) {
            System.clearProperty("livemig.log.level");
        } else {
            System.setProperty("livemig.log.level", saved.property());
        }
    }

    /** {@code 2026-12-07T06:40:01.123Z livemig[mig/src/main] WARNING: message}, and the stack trace at debug. */
    static final class OneLine extends Formatter {
        private static final DateTimeFormatter TIME = DateTimeFormatter.ofPattern("yyyy-MM-dd'T'HH:mm:ss.SSS'Z'")
                .withZone(java.time.ZoneOffset.UTC);
        private final boolean stackTraces;

        OneLine(boolean stackTraces) {
            this.stackTraces = stackTraces;
        }

        @Override
        public String format(LogRecord r) {
            StringBuilder sb = new StringBuilder(128);
            sb.append(TIME.format(Instant.ofEpochMilli(r.getMillis()))).append(" livemig[")
                    .append(Thread.currentThread().getName()).append("] ").append(name(r.getLevel())).append(": ")
                    .append(formatMessage(r));
            Throwable t = r.getThrown();
            if (t != null) {
                if (stackTraces) {
                    StringWriter w = new StringWriter();
                    t.printStackTrace(new PrintWriter(w));
                    sb.append(System.lineSeparator()).append(w.toString().stripTrailing());
                } else if (t.getMessage() != null && (r.getMessage() == null || !r.getMessage().contains(t.getMessage()))) {
                    sb.append(" (").append(t.getMessage()).append(')');
                }
            }
            return sb.append(System.lineSeparator()).toString();
        }

        private static String name(Level l) {
            int v = l.intValue();
            return v >= Level.SEVERE.intValue() ? "ERROR" : v >= Level.WARNING.intValue() ? "WARNING"
                    : v >= Level.INFO.intValue() ? "INFO" : v >= Level.FINE.intValue() ? "DEBUG" : "TRACE";
        }
    }
}
