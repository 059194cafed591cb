package org.livemig.cli;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import org.livemig.monitor.QmpAddress;
import org.livemig.monitor.QmpClient;
import org.livemig.monitor.QmpError;
import org.livemig.monitor.QmpJson;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;
import picocli.CommandLine;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * {@code livemig qmp SOCKET [COMMAND [key=value ...]]}: a small QMP client for livemig and for
 * QEMU. With a command it runs that one command and prints its {@code return} value; without,
 * it opens a shell that reads commands line by line and shows events as they arrive.
 */
@Command(name = "qmp", mixinStandardHelpOptions = true,
        description = {
            "Send QMP commands to a livemig or QEMU monitor.",
            "With COMMAND: run it once, print its return value as JSON (an error reply: its class and description).",
            "Without: an interactive shell (COMMAND key=value ..., a raw JSON request, 'oob COMMAND ...' for",
            "exec-oob, 'history', 'help', 'exit'); events are printed as they arrive.",
            "Values are JSON when they read as a number, true/false, an object or an array, else strings:",
            "  livemig qmp /tmp/dst.sock migrate-incoming uri=tcp:127.0.0.1:4444",
            "  livemig qmp tcp:127.0.0.1:4445 migrate-set-capabilities 'capabilities=[{\"capability\": \"events\", \"state\": true}]'",
            "The shell edits lines, keeps its history in $XDG_STATE_HOME/livemig/qmp_history (else ~/.livemig_history)",
            "and completes command and argument names from the monitor's query-commands and query-qmp-schema."
        },
        exitCodeListHeading = ExitCodes.HEADING, footer = "",
        exitCodeList = {"0:the command's return (or the shell ended)", "1:the monitor answered with an error",
                ExitCodes.USAGE_TEXT, "4:the monitor could not be reached, or closed the connection"})
public final class QmpClientCommand implements Callable<Integer> {
    @Parameters(index = "0", paramLabel = "SOCKET", description = "A unix socket path, unix:PATH or tcp:HOST:PORT.")
    String socket;

    @Parameters(index = "1", arity = "0..1", paramLabel = "COMMAND", description = "The QMP command to run.")
    String command;

    @Parameters(index = "2..*", paramLabel = "key=value", description = "The command's arguments.")
    List<String> arguments = new ArrayList<>();

    @Option(names = "--tls", description = "Speak TLS to the monitor (its --qmp has tls-creds=ID), with --tls-dir or --tls-psk-dir.")
    boolean tls;

    @Option(names = "--tls-dir", paramLabel = "DIR",
            description = "with --tls: X.509 client credentials in QEMU's layout (ca-cert.pem; client-cert.pem and client-key.pem if the monitor asks for a client certificate)")
    java.nio.file.Path tlsDir;

    @Option(names = "--tls-psk-dir", paramLabel = "DIR", description = "with --tls: a directory with keys.psk (username:hexkey)")
    java.nio.file.Path tlsPskDir;

    @Option(names = "--tls-username", paramLabel = "NAME", description = "with --tls-psk-dir: the username (default qemu)")
    String tlsUsername;

    @Option(names = "--tls-hostname", paramLabel = "NAME",
            description = "with --tls: the name the monitor's certificate must carry instead of the address's host")
    String tlsHostname;

    @Option(names = "--oob", description = "Negotiate out-of-band execution and send COMMAND with exec-oob.")
    boolean oob;

    @Option(names = "--compact", description = "Print JSON on one line, as QEMU writes it.")
    boolean compact;

    @Option(names = "--timeout", defaultValue = "60", paramLabel = "SECONDS",
            description = "How long to wait for the greeting and each reply (default: ${DEFAULT-VALUE}).")
    long timeoutSeconds;

    @Spec
    CommandSpec spec;

    /** Where the shell reads commands (a test replaces it). */
    InputStream in = System.in;

    /** The terminal of a line-editing shell (a test gives one over its own streams); by default, stdin's when it is one. */
    org.jline.terminal.Terminal terminal;

    /** Where the shell keeps its history across sessions (a test replaces it). */
    Path historyFile = historyFile();
    /** The client's TLS from --tls-dir or --tls-psk-dir, through the same objects as --object. */
    private org.livemig.transport.ChannelSecurity clientSecurity() throws org.livemig.security.ObjectException {
        org.livemig.security.ObjectRegistry objects = new org.livemig.security.ObjectRegistry();
        java.util.Map<String, Object> props = new java.util.LinkedHashMap<>();
        props.put("id", "qmp");
        props.put("endpoint", "client");
        if ((tlsDir == null) == (tlsPskDir == null)) {
            throw new IllegalArgumentException("--tls needs one of --tls-dir DIR (X.509) or --tls-psk-dir DIR (pre-shared key)");
        }
        if (tlsDir != null) {
            props.put("dir", tlsDir.toString());
            objects.add("tls-creds-x509", props);
        } else {
            props.put("dir", tlsPskDir.toString());
            if (tlsUsername != null) {
                props.put("username", tlsUsername);
            }
            objects.add("tls-creds-psk", props);
        }
        return objects.tls("qmp", tlsHostname, null, org.livemig.transport.tls.TlsEndpoint.CLIENT,
                org.livemig.transport.tls.TlsChannelSecurity.DEFAULT_HANDSHAKE_TIMEOUT, () -> true);
    }

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        ObjectNode args;
        try {
            args = command == null ? null : parseArguments(arguments);
        } catch (IllegalArgumentException e) {
            throw new CommandLine.ParameterException(spec.commandLine(), e.getMessage());
        }
        QmpAddress address;
        try {
            address = QmpAddress.parse(socket);
        } catch (IllegalArgumentException e) {
            throw new CommandLine.ParameterException(spec.commandLine(), e.getMessage());
        }
        org.livemig.transport.ChannelSecurity security = org.livemig.transport.ChannelSecurity.PLAIN;
        if (tls) {
            try {
                security = clientSecurity();
            } catch (org.livemig.security.ObjectException | IllegalArgumentException e) {
                err.println("livemig qmp: " + e.getMessage());
                return 1;
            }
        }
        try (QmpClient qmp = QmpClient.connect(address, Duration.ofSeconds(timeoutSeconds), security)) {
            if (command == null) {
                return shell(qmp, out, err);
            }
            if (oob) {
                qmp.negotiateOob();
            } else {
                qmp.negotiate();
            }
            return run(qmp, oob, command, args, out, err);
        } catch (IOException e) {
            err.println("livemig qmp: " + e.getMessage());
            err.flush();
            return ExitCodes.UNREACHABLE;
        }
    }

    private int run(QmpClient qmp, boolean outOfBand, String name, ObjectNode args, PrintWriter out, PrintWriter err)
            throws IOException {
        try {
            JsonNode ret = outOfBand ? qmp.executeOob(name, args) : qmp.execute(name, args);
            synchronized (out) {
                out.println(format(ret));
                out.flush();
            }
            return 0;
        } catch (QmpError e) {
            synchronized (out) {
                err.println("Error: " + e.errorClass().name() + ": " + e.desc());
                err.flush();
            }
            return 1;
        }
    }

    private String format(JsonNode value) {
        return compact ? QmpJson.writeAsReceived(value) : QmpJson.writePretty(value);
    }

    /** The interactive shell: one command per line until {@code exit} or end of input. */
    private int shell(QmpClient qmp, PrintWriter out, PrintWriter err) throws IOException {
        JsonNode version = qmp.greeting().path("QMP").path("version");
        out.println("Connected to " + qmp.address() + ": QEMU " + version.path("qemu").path("major").asString("?")
                + "." + version.path("qemu").path("minor").asString("?") + "." + version.path("qemu").path("micro").asString("?")
                + " (" + version.path("package").asString("") + "). Type 'help' for help.");
        qmp.negotiateOob();
        try (ShellInput input = openInput(qmp, out)) {
            qmp.onEvent(e -> input.printAbove(QmpJson.writeAsReceived(e)));
            return shellLoop(qmp, input, out, err);
        }
    }

    private int shellLoop(QmpClient qmp, ShellInput input, PrintWriter out, PrintWriter err) throws IOException {
        List<String> history = new ArrayList<>();
        int status = 0;
        while (true) {
            String line = input.readLine("(QMP) ");
            if (line == null) {
                synchronized (out) {
                    out.println();
                }
                break;
            }
            line = line.strip();
            if (line.isEmpty()) {
                continue;
            }
            if (line.equals("exit")) {
                break;
            }
            if (line.equals("history")) {
                synchronized (out) {
                    List<String> all = input.history(history);
                    for (int i = 0; i < all.size(); i++) {
                        out.printf("%4d  %s%n", i + 1, all.get(i));
                    }
                }
                continue;
            }
            if (line.equals("help")) {
                synchronized (out) {
                    out.println("COMMAND [key=value ...]   run a command (values: number, true/false, {...}, [...], else string)");
                    out.println("oob COMMAND [key=value]   run it out of band (exec-oob)");
                    out.println("{\"execute\": ...}          send a JSON request as it is");
                    out.println("history                   the commands entered (with line editing: of earlier sessions too)");
                    out.println("TAB                       complete command, argument and enum value names (line editing)");
                    out.println("exit                      leave (also end of input); 'quit' is QEMU's quit command");
                }
                continue;
            }
            history.add(line);
            try {
                status = runLine(qmp, line, out, err);
            } catch (IllegalArgumentException e) {
                synchronized (out) {
                    err.println("Error: " + e.getMessage());
                    err.flush();
                }
            }
            if (!qmp.isConnected()) {
                synchronized (out) {
                    err.println("livemig qmp: the monitor closed the connection");
                    err.flush();
                }
                return status;
            }
        }
        return 0;
    }

    /**
     * The shell's input: JLine on a terminal (line editing, history kept in {@link #historyFile},
     * completion from the monitor's schema), else plain lines from {@link #in}.
     */
    private ShellInput openInput(QmpClient qmp, PrintWriter out) throws IOException {
        org.jline.terminal.Terminal t = terminal;
        if (t == null && in == System.in && Main.onTerminal()) {
            t = org.jline.terminal.TerminalBuilder.builder().system(true).build();
        }
        if (t == null) {
            return new PlainInput(new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8)), out);
        }
        QmpCompleter completer = QmpCompleter.load(qmp);
        return new LineEditingInput(t, completer, historyFile, terminal == null);
    }

    /** $XDG_STATE_HOME/livemig/qmp_history where XDG_STATE_HOME is set, else ~/.livemig_history. */
    static Path historyFile() {
        String xdg = System.getenv("XDG_STATE_HOME");
        if (xdg != null && !xdg.isBlank() && Path.of(xdg).isAbsolute()) {
            return Path.of(xdg, "livemig", "qmp_history");
        }
        return Path.of(System.getProperty("user.home"), ".livemig_history");
    }

    /** Where the shell reads lines from and prints events to. */
    interface ShellInput extends AutoCloseable {
        /** The next line, null at the end of input. */
        String readLine(String prompt) throws IOException;

        /** Prints {@code text} (an event) without breaking the line being typed. */
        void printAbove(String text);

        /** The history to show: {@code session} (this session's commands) or more. */
        List<String> history(List<String> session);

        @Override
        void close() throws IOException;
    }

    /** Plain lines, as from a pipe. */
    private record PlainInput(BufferedReader reader, PrintWriter out) implements ShellInput {
        @Override
        public String readLine(String prompt) throws IOException {
            synchronized (out) {
                out.print(prompt);
                out.flush();
            }
            return reader.readLine();
        }

        @Override
        public void printAbove(String text) {
            synchronized (out) {
                out.println(text);
                out.flush();
            }
        }

        @Override
        public List<String> history(List<String> session) {
            return session;
        }

        @Override
        public void close() {
        }
    }

    /** JLine: editing, history across sessions, completion. */
    private static final class LineEditingInput implements ShellInput {
        private final org.jline.terminal.Terminal terminal;
        private final org.jline.reader.LineReader reader;
        private final boolean ownTerminal;

        LineEditingInput(org.jline.terminal.Terminal terminal, QmpCompleter completer, Path historyFile, boolean ownTerminal)
                throws IOException {
            this.terminal = terminal;
            this.ownTerminal = ownTerminal;
            Path dir = historyFile.toAbsolutePath().getParent();
            if (dir != null) {
                Files.createDirectories(dir);
            }
            this.reader = org.jline.reader.LineReaderBuilder.builder()
                    .terminal(terminal)
                    .appName("livemig-qmp")
                    .completer(completer)
                    .variable(org.jline.reader.LineReader.HISTORY_FILE, historyFile)
                    .variable(org.jline.reader.LineReader.HISTORY_FILE_SIZE, 10_000)
                    .option(org.jline.reader.LineReader.Option.HISTORY_IGNORE_DUPS, true)
                    .option(org.jline.reader.LineReader.Option.DISABLE_EVENT_EXPANSION, true) // '!' is no history command here
                    .build();
        }

        @Override
        public String readLine(String prompt) {
            while (true) {
                try {
                    return reader.readLine(prompt);
                } catch (org.jline.reader.UserInterruptException ctrlC) {
                    // Ctrl-C drops the line being typed, as in a shell
                } catch (org.jline.reader.EndOfFileException eof) {
                    return null;
                }
            }
        }

        @Override
        public void printAbove(String text) {
            reader.printAbove(text);
        }

        @Override
        public List<String> history(List<String> session) {
            List<String> all = new ArrayList<>();
            reader.getHistory().forEach(e -> all.add(e.line()));
            return all;
        }

        @Override
        public void close() throws IOException {
            reader.getHistory().save();
            if (ownTerminal) {
                terminal.close();
            }
        }
    }

    private int runLine(QmpClient qmp, String line, PrintWriter out, PrintWriter err) throws IOException {
        if (line.startsWith("{")) {
            JsonNode request = QmpJson.parse(line);
            if (!(request instanceof ObjectNode req) || !(req.has("execute") || req.has("exec-oob"))) {
                throw new IllegalArgumentException("a JSON request needs \"execute\" or \"exec-oob\"");
            }
            boolean outOfBand = !req.has("execute");
            String name = req.path(outOfBand ? "exec-oob" : "execute").asString();
            ObjectNode args = req.get("arguments") instanceof ObjectNode a ? a : null;
            return run(qmp, outOfBand, name, args, out, err);
        }
        List<String> words = new ArrayList<>(List.of(line.split("\\s+")));
        boolean outOfBand = words.getFirst().equals("oob");
        if (outOfBand) {
            words.removeFirst();
            if (words.isEmpty()) {
                throw new IllegalArgumentException("oob needs a command");
            }
        }
        String name = words.removeFirst();
        return run(qmp, outOfBand, name, parseArguments(words), out, err);
    }

    /**
     * {@code key=value} pairs into a QMP {@code arguments} object. A value that reads as a JSON
     * number, boolean, object or array is that; anything else is a string.
     */
    static ObjectNode parseArguments(List<String> pairs) {
        ObjectNode args = QmpJson.object();
        for (String pair : pairs) {
            int eq = pair.indexOf('=');
            if (eq <= 0) {
                throw new IllegalArgumentException("argument '" + pair + "' is not key=value");
            }
            String key = pair.substring(0, eq);
            String value = pair.substring(eq + 1);
            if (args.has(key)) {
                throw new IllegalArgumentException("argument '" + key + "' given twice");
            }
            args.set(key, parseValue(value));
        }
        return args;
    }

    static JsonNode parseValue(String value) {
        try {
            JsonNode v = QmpJson.parse(value);
            if (v.isNumber() || v.isBoolean() || v.isObject() || v.isArray()) {
                return v;
            }
        } catch (IllegalArgumentException notJson) {
            // a plain string
        }
        return QmpJson.NODES.stringNode(value);
    }
}
