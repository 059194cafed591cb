package org.livemig.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.livemig.machine.Machine;
import org.livemig.machine.RunState;
import org.livemig.monitor.MachineMonitor;
import org.livemig.monitor.QmpCommand.Builder;
import org.livemig.monitor.QmpJson;
import org.livemig.monitor.QmpServer;
import org.livemig.monitor.QmpType;
import org.livemig.monitor.RunStateCommands;
import picocli.CommandLine;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.node.ObjectNode;

/** {@code livemig qmp} against a monitor bound to a real machine. */
class QmpClientCommandTest {
    @TempDir
    Path dir;
    private Machine machine;
    private QmpServer server;
    private String sock;

    @BeforeEach
    void start() throws IOException {
        machine = new Machine(Machine.Config.defaults().withName("cli").withRam(4L << 20).withVcpus(1).withBlobSize(4096));
        machine.mainLoop().runAndWait(() -> machine.boot(RunState.RUNNING));
        server = QmpServer.builder(MachineMonitor.host(machine)).build();
        RunStateCommands.register(server, MachineMonitor.vm(machine, null));
        // Echoes its arguments, so the tests see how the CLI typed them.
        Builder echo = org.livemig.monitor.QmpCommand.builder("x-args").allowOob();
        for (String name : new String[] {"s", "n", "b", "o", "l", "uri", "neg", "nul"}) {
            echo.optionalArg(name, QmpType.ANY);
        }
        server.register(echo.handler(args -> {
            ObjectNode r = QmpJson.object();
            r.set("args", args);
            r.put("thread", Thread.currentThread().getName());
            return r;
        }).build());
        server.register(org.livemig.monitor.QmpCommand.builder("x-emit").handler(args -> {
            server.emitEvent("X-PING", QmpJson.object().put("n", 1));
            return null;
        }).build());
        sock = dir.resolve("cli.sock").toString();
        server.listen("unix:" + sock);
    }

    @AfterEach
    void stop() {
        server.close();
        machine.close();
    }

    private record Run(int status, String out, String err) {
    }

    private Run run(String stdin, String... args) {
        QmpClientCommand cmd = new QmpClientCommand();
        cmd.in = new ByteArrayInputStream(stdin.getBytes(StandardCharsets.UTF_8));
        CommandLine cl = new CommandLine(cmd);
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        cl.setOut(new PrintWriter(out, true));
        cl.setErr(new PrintWriter(err, true));
        int status = cl.execute(args);
        return new Run(status, out.toString(), err.toString());
    }

    @Test
    void oneCommandPrintsItsReturnValue() {
        Run r = run("", sock, "query-status");
        assertThat(r.status()).isZero();
        JsonNode ret = QmpJson.parse(r.out());
        assertThat(ret.get("status").stringValue()).isEqualTo("running");
        assertThat(r.out()).contains("\n    \"running\": true");

        Run compact = run("", "--compact", "unix:" + sock, "query-status");
        assertThat(compact.out().strip()).isEqualTo("{\"status\": \"running\", \"singlestep\": false, \"running\": true}");
    }

    /** {@code livemig qmp --tls}: a monitor listening with tls-creds, reached with the client's X.509 directory. */
    @Test
    void tlsWithAClientCertificateDirectory() throws Exception {
        org.livemig.testing.TlsFixtures.Ca ca = org.livemig.testing.TlsFixtures.ca("cli QMP CA");
        org.livemig.security.ObjectRegistry objects = new org.livemig.security.ObjectRegistry();
        objects.add("tls-creds-x509", java.util.Map.of("id", "qmp", "endpoint", "server", "verify-peer", true,
                "dir", org.livemig.testing.TlsFixtures.serverDir(dir.resolve("srv"), ca, "127.0.0.1", null).toString()));
        var bound = (java.net.InetSocketAddress) server.listen(org.livemig.monitor.QmpAddress.parse("tcp:127.0.0.1:0"),
                objects.tls("qmp", null, null, org.livemig.transport.tls.TlsEndpoint.SERVER, java.time.Duration.ofSeconds(10), () -> true));
        String addr = "tcp:127.0.0.1:" + bound.getPort();
        java.nio.file.Path client = org.livemig.testing.TlsFixtures.clientDir(dir.resolve("cli"), ca, ca,
                org.livemig.testing.TlsFixtures.FRIENDLY_CLIENT);
        Run r = run("", "--tls", "--tls-dir", client.toString(), addr, "query-status");
        assertThat(r.status()).as(r.err()).isZero();
        assertThat(QmpJson.parse(r.out()).get("status").stringValue()).isEqualTo("running");
        Run noCreds = run("", "--tls", addr, "query-status");
        assertThat(noCreds.status()).isNotZero();
        assertThat(noCreds.err()).contains("--tls-dir");
    }

    /** A plain QMP TCP socket off loopback needs an explicit flag (and only then warns). */
    @Test
    void runRefusesAPlainQmpSocketOffLoopback() {
        StringWriter err = new StringWriter();
        CommandLine cl = new CommandLine(new Main());
        cl.setErr(new PrintWriter(err, true));
        cl.setExecutionExceptionHandler((e, cmd, parsed) -> { // as Main's
            cmd.getErr().println("livemig: " + e.getMessage());
            return 1;
        });
        int status = org.junit.jupiter.api.Assertions.assertTimeoutPreemptively(java.time.Duration.ofSeconds(60),
                () -> cl.execute("run", "--no-warm-up", "--ram", "4M", "--qmp", "tcp:0.0.0.0:0"));
        assertThat(status).isNotZero();
        assertThat(err.toString()).contains("--qmp-allow-insecure-tcp");
    }

    @Test
    void mainKnowsTheSubcommand() {
        StringWriter out = new StringWriter();
        CommandLine cl = new CommandLine(new Main());
        cl.setOut(new PrintWriter(out, true));
        assertThat(cl.execute("qmp", sock, "stop")).isZero();
        assertThat(out.toString().strip()).isEqualTo("{}");
        assertThat(machine.runState()).isEqualTo(RunState.PAUSED);
    }

    @Test
    void keyValueArgumentsAreJsonWhenTheyLookLikeIt() {
        Run r = run("", sock, "x-args", "s=hello", "n=3", "b=true", "o={\"a\": [1]}", "l=[1,2]",
                "uri=tcp:127.0.0.1:4444", "neg=-1.5", "nul=null");
        assertThat(r.status()).as(r.err()).isZero();
        JsonNode args = QmpJson.parse(r.out()).get("args");
        assertThat(args.get("s").stringValue()).isEqualTo("hello");
        assertThat(args.get("n").isIntegralNumber()).isTrue();
        assertThat(args.get("b").booleanValue()).isTrue();
        assertThat(args.get("o").get("a").get(0).intValue()).isEqualTo(1);
        assertThat(args.get("l").size()).isEqualTo(2);
        assertThat(args.get("uri").stringValue()).isEqualTo("tcp:127.0.0.1:4444");
        assertThat(args.get("neg").doubleValue()).isEqualTo(-1.5);
        assertThat(args.get("nul").stringValue()).as("null is not among the JSON kinds taken").isEqualTo("null");
    }

    @Test
    void outOfBandOnRequest() {
        Run r = run("", "--oob", sock, "x-args");
        assertThat(QmpJson.parse(r.out()).get("thread").stringValue()).isEqualTo("qmp-io");
    }

    @Test
    void anErrorReplyExitsOneWithClassAndDesc() {
        Run r = run("", sock, "nope");
        assertThat(r.status()).isEqualTo(1);
        assertThat(r.err().strip()).isEqualTo("Error: CommandNotFound: The command nope has not been found");
        Run bad = run("", sock, "stop", "foo=1");
        assertThat(bad.status()).isEqualTo(1);
        assertThat(bad.err().strip()).isEqualTo("Error: GenericError: Parameter 'foo' is unexpected");
    }

    @Test
    void usageProblemsExitTwoAndAnUnreachableMonitorFour() {
        assertThat(run("", sock, "stop", "novalue").status()).isEqualTo(2);
        assertThat(run("", sock, "x-args", "s=1", "s=2").err()).contains("given twice");
        Run nobody = run("", dir.resolve("nobody.sock").toString(), "query-status");
        assertThat(nobody.status()).isEqualTo(ExitCodes.UNREACHABLE);
        assertThat(nobody.err()).contains("nobody.sock");
    }

    @Test
    void theShellRunsCommandsShowsEventsAndKeepsHistory() {
        Run r = run("query-name\n\nx-emit\nnope\n{\"execute\": \"x-args\", \"arguments\": {\"s\": \"raw\"}}\n"
                + "oob x-args s=o\nbogus-line-without-equals x\nhistory\nexit\nquery-status\n", sock);
        assertThat(r.status()).isZero();
        assertThat(r.out()).startsWith("Connected to unix:" + sock + ": QEMU 7.2.0 (livemig 0.1.0).");
        assertThat(r.out()).contains("(QMP) {}");
        assertThat(r.out()).containsPattern("\\{\"timestamp\": \\{\"seconds\": \\d+, \"microseconds\": \\d+\\}, "
                + "\"event\": \"X-PING\", \"data\": \\{\"n\": 1\\}\\}");
        assertThat(r.err()).contains("Error: CommandNotFound: The command nope has not been found");
        assertThat(r.out()).contains("\"s\": \"raw\"").contains("\"thread\": \"qmp-io\"");
        assertThat(r.err()).contains("Error: argument 'x' is not key=value");
        assertThat(r.out()).contains("   1  query-name", "   2  x-emit", "   3  nope", "   6  bogus-line-without-equals x");
        assertThat(r.out()).as("nothing after exit").doesNotContain("\"status\": \"running\"");
    }

    /** A shell on a (dumb) terminal over the test's streams, with its history in {@code history}. */
    private Run shellOnTerminal(String typed, Path history) throws IOException {
        QmpClientCommand cmd = new QmpClientCommand();
        java.io.ByteArrayOutputStream screen = new java.io.ByteArrayOutputStream();
        // Typed ahead into a pipe that stays open: a terminal's input does not end when the typing stops.
        java.io.PipedOutputStream keys = new java.io.PipedOutputStream();
        java.io.PipedInputStream keyboard = new java.io.PipedInputStream(keys, 1 << 16);
        keys.write(typed.getBytes(StandardCharsets.UTF_8));
        keys.flush();
        cmd.terminal = org.jline.terminal.TerminalBuilder.builder().system(false).type("dumb").streams(keyboard, screen).build();
        cmd.historyFile = history;
        CommandLine cl = new CommandLine(cmd);
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        cl.setOut(new PrintWriter(out, true));
        cl.setErr(new PrintWriter(err, true));
        int status = cl.execute(sock);
        cmd.terminal.close();
        keys.close();
        return new Run(status, out + screen.toString(StandardCharsets.UTF_8), err.toString());
    }

    @Test
    void theLineEditingShellKeepsItsHistoryAcrossSessions() throws Exception {
        Path history = dir.resolve("state").resolve("livemig").resolve("qmp_history");
        Run first = shellOnTerminal("query-status\nx-args s=first-session\nexit\n", history);
        assertThat(first.status()).as(first.err()).isZero();
        assertThat(first.out()).contains("\"running\": true").contains("first-session");
        assertThat(java.nio.file.Files.readString(history)).contains("query-status").contains("x-args s=first-session");
        Run second = shellOnTerminal("history\nexit\n", history);
        assertThat(second.status()).isZero();
        assertThat(second.out()).containsPattern("\\d+  query-status").containsPattern("\\d+  x-args s=first-session");
    }

    @Test
    void historyLivesInTheXdgStateDirectoryOrTheHome() {
        Path h = QmpClientCommand.historyFile();
        String xdg = System.getenv("XDG_STATE_HOME");
        if (xdg != null && !xdg.isBlank()) {
            assertThat(h).isEqualTo(Path.of(xdg, "livemig", "qmp_history"));
        } else {
            assertThat(h).isEqualTo(Path.of(System.getProperty("user.home"), ".livemig_history"));
        }
    }

    @Test
    void completionOffersCommandsArgumentsAndEnumValuesFromTheMonitor() throws Exception {
        org.livemig.monitor.MigrationCommands.register(server, new org.livemig.migration.Migration(machine));
        QmpCompleter completer;
        try (org.livemig.monitor.QmpClient c = org.livemig.monitor.QmpClient.connect("unix:" + sock)) {
            c.negotiate();
            completer = QmpCompleter.load(c);
        }
        assertThat(completions(completer, "query-st")).contains("query-status", "query-migrate");
        assertThat(completions(completer, "oob migrate-re")).contains("migrate-recover");
        assertThat(completions(completer, "migrate-set-parameters max-b")).contains("max-bandwidth=", "downtime-limit=");
        assertThat(completions(completer, "migrate-set-parameters multifd-compression=")).contains(
                "multifd-compression=none", "multifd-compression=zstd");
        assertThat(completions(completer, "migrate uri=tcp:1 det")).contains("detach=", "resume=");
        assertThat(completions(completer, "migrate resume=")).containsExactlyInAnyOrder("resume=true", "resume=false");
    }

    private static List<String> completions(QmpCompleter c, String line) {
        org.jline.reader.ParsedLine parsed = new org.jline.reader.impl.DefaultParser().parse(line, line.length());
        List<org.jline.reader.Candidate> out = new java.util.ArrayList<>();
        c.complete(null, parsed, out);
        return out.stream().map(org.jline.reader.Candidate::value).toList();
    }
}
