package org.livemig.monitor;

import static org.assertj.core.api.Assertions.assertThat;

import java.net.SocketAddress;
import java.net.UnixDomainSocketAddress;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.livemig.testing.HostTools;

import tools.jackson.databind.JsonNode;

/**
 * The same client asks a real QEMU and livemig the same things and compares, line by line: error
 * replies to malformed and mistaken requests, run-state commands with their events, reply shapes.
 * Exact comparisons need QEMU 7.2 (another version: error classes only, the rest skipped);
 * everything is skipped when {@code qemu-system-x86_64} is not on PATH.
 */
class LiveQemuParityTest extends QmpServerFixture {
    /** Requests whose replies must match QEMU's exactly, in command mode. */
    private static final List<String> MISTAKES = List.of(
            "{\"execute\": }",
            "{\"execute\" \"query-status\"}",
            "{\"execute\": 'query-name' 'x'}",
            "{1: 2}",
            "[1 2]",
            "{\"execute\": \"query-name\", \"execute\": \"query-name\"}",
            "{\"execute\": nul}",
            "{\"execute\": True}",
            "{\"execute\": \"\\x\"}",
            "{\"execute\": \"\\ud800\"}",
            "{\"execute\": \"\\uzzzz\"}",
            "{\"execute\": 01}",
            "{\"execute\": -x}",
            "@@@ junk",
            "}",
            "]",
            "42",
            "'query-name'",
            "[\"query-status\"]",
            "{\"id\": 3}",
            "{\"execute\": 42}",
            "{\"execute\": \"stop\", \"arguments\": []}",
            "{\"execute\": \"stop\", \"argument\": {}}",
            "{\"exec-oob\": \"query-status\"}",
            "{\"execute\": \"no-such-command\", \"id\": \"f\"}",
            "{\"execute\": \"stop\", \"arguments\": {\"foo\": 1}}",
            "{\"execute\": \"query-name\", \"id\": {\"seq\": [1, \"two\", null, true, 1.5]}}",
            "{'execute': 'query-name', 'id': 'it\\'s'}",
            "{\"execute\":\n\"query-name\",\n\"id\": 7}",
            "{\"execute\": \"query-name\"}{\"execute\": \"query-name\", \"id\": 2}",
            "{\"execute\": \"qmp_capabilities\"}",
            "{\"execute\": \"qmp_capabilities\", \"arguments\": {\"enable\": [\"x\"]}}");

    /** The same, before capabilities negotiation. */
    private static final List<String> BEFORE_NEGOTIATION = List.of(
            "{\"execute\": \"query-status\"}",
            "{\"execute\": \"no-such-command\", \"id\": 1}",
            "{\"exec-oob\": \"qmp_capabilities\"}",
            "{\"execute\": }",
            "{\"execute\": \"qmp_capabilities\", \"arguments\": {\"enable\": [\"bogus\"]}}",
            "{\"execute\": \"qmp_capabilities\", \"arguments\": {\"enable\": \"oob\"}}",
            "{\"execute\": \"qmp_capabilities\", \"arguments\": {\"foo\": 1}}");

    /** The same, with OOB enabled. */
    private static final List<String> WITH_OOB = List.of(
            "{\"exec-oob\": \"query-status\", \"id\": 5}",
            "{\"execute\": \"query-name\", \"exec-oob\": \"query-name\"}",
            "{\"exec-oob\": 5}",
            "{\"exec-oob\": \"no-such-command\"}");

    private static final String SENTINEL = "{\"execute\": \"query-version\", \"id\": \"sentinel\"}";

    private Process qemu;
    private Path qemuSocket;

    @BeforeEach
    void startQemu() throws Exception {
        HostTools.Qemu q = HostTools.startQemu(dir, "-M", "none", "-nodefaults", "-display", "none", "-S");
        qemu = q.process();
        qemuSocket = q.qmpSocket();
        try (QmpClient probe = QmpClient.connect("unix:" + qemuSocket)) {
            JsonNode v = probe.greeting().get("QMP").get("version").get("qemu");
            qemuVersion = v.get("major").intValue() + "." + v.get("minor").intValue();
        }
    }

    /** "7.2" and the like: exact comparisons need the QEMU livemig speaks. */
    private String qemuVersion;

    private void assumeQemu72() {
        Assumptions.assumeTrue(qemuVersion.equals("7.2"), () -> "exact comparison needs QEMU 7.2, found " + qemuVersion);
    }

    @AfterEach
    void stopQemu() throws Exception {
        if (qemu != null) {
            qemu.destroy();
            if (!qemu.waitFor(10, TimeUnit.SECONDS)) {
                qemu.destroyForcibly();
            }
        }
    }

    private String log() {
        return HostTools.readQuietly(dir.resolve("qemu.log"));
    }

    @Test
    void queryRepliesHaveTheSameShape() throws Exception {
        assumeQemu72();
        try (QmpClient real = QmpClient.connect("unix:" + qemuSocket);
             QmpClient ours = QmpClient.connect("unix:" + dir.resolve("qmp.sock"))) {
            assertThat(QemuSchema.shapeDifferences(ours.greeting(), real.greeting())).isEmpty();
            real.negotiate();
            ours.negotiate();
            for (String command : List.of("query-status", "query-version", "query-name")) {
                JsonNode a = ours.execute(command);
                JsonNode b = real.execute(command);
                assertThat(QemuSchema.shapeDifferences(a, b)).as(command).isEmpty();
                assertThat(QemuSchema.shapeDifferences(b, a)).as(command + ", nothing missing").isEmpty();
            }
        }
    }

    /** cont, stop, query-status and quit from "prelaunch": the same lines, events included, in the same order. */
    @Test
    void runStateCommandsAndEventsMatch() throws Exception {
        assumeQemu72();
        vm.runOnMain(() -> vm.setState("prelaunch"));
        List<String> conversation = List.of("{\"execute\": \"query-status\"}", "{\"execute\": \"cont\"}",
                "{\"execute\": \"query-status\"}", "{\"execute\": \"stop\"}", "{\"execute\": \"stop\"}",
                "{\"execute\": \"query-status\"}", "{\"execute\": \"cont\", \"id\": 9}", "{\"execute\": \"quit\"}");
        try (RawQmp real = RawQmp.negotiated(UnixDomainSocketAddress.of(qemuSocket), false);
             RawQmp ours = RawQmp.negotiated(address, false)) {
            for (String request : conversation) {
                ours.send(request + "\n");
                real.send(request + "\n");
                List<String> a = untilReply(ours);
                List<String> b = untilReply(real);
                assertThat(a).as(request).isEqualTo(b);
            }
        }
    }

    /** Lines up to and including the next reply, event timestamps masked. */
    private static List<String> untilReply(RawQmp q) throws Exception {
        List<String> lines = new ArrayList<>();
        while (true) {
            String line = q.nextLine();
            lines.add(line.replaceAll("\"seconds\": \\d+, \"microseconds\": \\d+", "\"seconds\": S, \"microseconds\": U"));
            if (!line.contains("\"timestamp\"")) {
                return lines;
            }
        }
    }

    @Test
    void mistakesGetTheSameReplies() throws Exception {
        SocketAddress realAddress = UnixDomainSocketAddress.of(qemuSocket);
        boolean is72 = qemuVersion.equals("7.2");
        List<String> diffs = new ArrayList<>();
        try (RawQmp real = RawQmp.connect(realAddress);
             RawQmp ours = RawQmp.connect(address)) {
            real.nextLine();
            ours.nextLine();
            compare(BEFORE_NEGOTIATION, real, ours, is72, diffs);
        }
        try (RawQmp real = RawQmp.negotiated(realAddress, false);
             RawQmp ours = RawQmp.negotiated(address, false)) {
            compare(MISTAKES, real, ours, is72, diffs);
        }
        try (RawQmp real = RawQmp.negotiated(realAddress, true);
             RawQmp ours = RawQmp.negotiated(address, true)) {
            compare(WITH_OOB, real, ours, is72, diffs);
        }
        assertThat(diffs).isEmpty();
    }

    /**
     * Sends each request followed by a sentinel to both and compares every reply up to the
     * sentinel's (whose version differs and is not compared). Outside 7.2 only error classes count.
     */
    private static void compare(List<String> requests, RawQmp real, RawQmp ours, boolean exact, List<String> diffs)
            throws Exception {
        for (String request : requests) {
            List<String> a = repliesTo(ours, request);
            List<String> b = repliesTo(real, request);
            boolean same = exact ? a.equals(b) : classes(a).equals(classes(b));
            if (!same) {
                diffs.add(request + "\n  livemig: " + a + "\n  QEMU:    " + b);
            }
        }
    }

    private static List<String> repliesTo(RawQmp q, String request) throws Exception {
        q.send(request + "\n" + SENTINEL + "\n");
        List<String> replies = new ArrayList<>();
        while (true) {
            String line = q.pollLine(5000);
            if (line == null) {
                replies.add("(no reply to the sentinel within 5 s)");
                return replies;
            }
            if ("sentinel".equals(QmpJson.parse(line).path("id").asString(null))) {
                return replies;
            }
            replies.add(line);
        }
    }

    private static List<String> classes(List<String> replies) {
        List<String> out = new ArrayList<>();
        for (String r : replies) {
            JsonNode n = QmpJson.parse(r);
            out.add(n.has("error") ? n.get("error").get("class").stringValue() : "return");
        }
        return out;
    }
}
