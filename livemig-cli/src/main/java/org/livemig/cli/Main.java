package org.livemig.cli;

import java.io.IOException;
import java.io.InputStream;
import java.net.ConnectException;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileSystemException;
import java.nio.file.NoSuchFileException;
import java.util.Properties;
import picocli.CommandLine.Command;
import picocli.CommandLine;

/** The {@code livemig} command. With no subcommand it runs {@code demo}. */
@Command(name = "livemig", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
        description = "Live migration for the JVM, speaking QEMU's stream format and QMP.",
        footerHeading = "%nEnvironment:%n",
        footer = {"  LIVEMIG_LOG_LEVEL    error | warning | info (default) | debug | trace: how much the log says, unless --log-level,",
                "                       -v or -q say; debug adds stack traces",
                "  LIVEMIG_JAVA_OPTS    JVM options added to the launcher's (./livemig)",
                "  LIVEMIG_NO_AOT       set: the launcher neither trains nor uses its AOT cache"},
        exitCodeListHeading = ExitCodes.HEADING,
        exitCodeList = {ExitCodes.OK_TEXT, "1:the command failed (see each command's --help)", ExitCodes.USAGE_TEXT,
                ExitCodes.FILE_TEXT, ExitCodes.UNREACHABLE_TEXT, ExitCodes.TIMEOUT_TEXT, ExitCodes.NOT_DECODED_TEXT},
        subcommands = {
                DemoCommand.class,
                RunCommand.class,
                WatchCommand.class,
                CheckCommand.class,
                SnapshotCommand.class,
                BenchCommand.class,
                AnalyzeCommand.class,
                RelayCommand.class,
                QmpClientCommand.class,
                TraceCommand.class,
                AotTrainCommand.class,
                CommandLine.HelpCommand.class,
        })
public final class Main implements Runnable {
    @picocli.CommandLine.Mixin
    LogSetup.Options log = new LogSetup.Options();

    @Override
    public void run() {
        CommandLine.usage(this, System.out);
    }

    /** The command line with livemig's error handling: one line per error, statuses from {@link ExitCodes}. */
    static CommandLine commandLine() {
        CommandLine cl = new CommandLine(new Main());
        cl.setExecutionExceptionHandler((e, cmd, parsed) -> {
            cmd.getErr().println("livemig: " + describe(e));
            if (System.getLogger("org.livemig").isLoggable(System.Logger.Level.DEBUG)) {
                e.printStackTrace(cmd.getErr());
            }
            cmd.getErr().flush();
            return exitCode(e);
        });
        // A bad command line: what was wrong and where to look, not the whole usage text.
        cl.setParameterExceptionHandler((e, args) -> {
            CommandLine cmd = e.getCommandLine();
            java.io.PrintWriter err = cmd.getErr();
            err.println("livemig: " + e.getMessage());
            CommandLine.UnmatchedArgumentException.printSuggestions(e, err);
            err.println("Try '" + cmd.getCommandSpec().qualifiedName() + " --help' for more information.");
            err.flush();
            return ExitCodes.USAGE;
        });
        // Logging as the options say (given before or after the sub-command), for this command only.
        cl.setExecutionStrategy(parsed -> {
            Main main = cl.getCommand();
            LogSetup.Saved saved;
            try {
                saved = LogSetup.apply(LogSetup.level(main.log.level, main.log.verbose.length, main.log.quiet.length),
                        main.log.file);
            } catch (IllegalArgumentException | IOException e) {
                CommandLine cmd = parsed.subcommands().isEmpty() ? cl : parsed.subcommands().getLast().commandSpec().commandLine();
                cmd.getErr().println("livemig: " + (e instanceof IOException ? "--log-file " + main.log.file + ": " + e.getMessage()
                        : e.getMessage()));
                cmd.getErr().flush();
                return e instanceof IOException ? ExitCodes.FILE : ExitCodes.USAGE;
            }
            try {
                return new CommandLine.RunLast().execute(parsed);
            } finally {
                LogSetup.restore(saved);
            }
        });
        return cl;
    }

    public static void main(String[] args) {
        // The default job, as the README says: `livemig` alone runs the demo.
        System.exit(commandLine().execute(args.length == 0 ? new String[] {"demo"} : args));
    }

    /**
     * Whether standard input and output are a terminal. Since Java 22 {@code System.console()} is
     * there even when they are redirected, so its {@code isTerminal()} decides.
     */
    static boolean onTerminal() {
        java.io.Console c = System.console();
        return c != null && c.isTerminal();
    }

    /** The exit status for an exception that ended a command. */
    static int exitCode(Throwable e) {
        if (e instanceof IllegalArgumentException) {
            return ExitCodes.USAGE;
        }
        if (e instanceof ConnectException) {
            return ExitCodes.UNREACHABLE;
        }
        if (e instanceof FileSystemException || e instanceof org.livemig.stream.StreamFormatException) {
            return ExitCodes.FILE;
        }
        if (e instanceof java.util.concurrent.TimeoutException) {
            return ExitCodes.TIMEOUT;
        }
        return ExitCodes.FAILED;
    }

    /** One line saying what went wrong: for a file, which one and why (no such file, permission). */
    static String describe(Throwable e) {
        if (e instanceof FileSystemException fs) {
            String file = fs.getFile();
            if (e instanceof NoSuchFileException) {
                java.nio.file.Path p = java.nio.file.Path.of(file).toAbsolutePath();
                java.nio.file.Path parent = p.getParent();
                if (parent != null && !java.nio.file.Files.isDirectory(parent)) {
                    return "no such directory: " + parent;
                }
                return "no such file: " + file;
            }
            if (e instanceof AccessDeniedException) {
                return "permission denied: " + file;
            }
            return file + ": " + (fs.getReason() != null ? fs.getReason() : e.getClass().getSimpleName());
        }
        String m = e.getMessage();
        return m == null ? e.toString() : m;
    }

    /** The version Maven wrote into {@code version.properties} at build time. */
    static final class Version implements CommandLine.IVersionProvider {
        static String version() {
            try (InputStream in = Main.class.getResourceAsStream("version.properties")) {
                Properties p = new Properties();
                if (in != null) {
                    p.load(in);
                }
                return p.getProperty("version", "unknown");
            } catch (IOException e) {
                return "unknown";
            }
        }

        @Override
        public String[] getVersion() {
            return new String[] {"livemig " + version(), "Java " + Runtime.version() + " (" + System.getProperty("java.vm.vendor") + ")"};
        }
    }
}
