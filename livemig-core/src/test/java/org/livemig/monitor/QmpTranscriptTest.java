package org.livemig.monitor;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The QMP conversation byte for byte: what a QEMU user sends, what QEMU 7.2 answers (layout,
 * members, error classes and texts), and that the session stays usable after every error.
 */
class QmpTranscriptTest extends QmpServerFixture {

    @Test
    void greetingNegotiationAndQueries() throws Exception {
        try (RawQmp q = RawQmp.connect(address)) {
            assertThat(q.nextLine()).isEqualTo("{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, "
                    + "\"major\": 7}, \"package\": \"livemig test\"}, \"capabilities\": [\"oob\"]}}");

            // Before negotiation every command but qmp_capabilities is refused, known or not.
            assertThat(q.exchange("{\"execute\": \"query-status\"}")).isEqualTo(
                    "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"Expecting capabilities negotiation with 'qmp_capabilities'\"}}");
            assertThat(q.exchange("{\"execute\": \"no-such-command\", \"id\": 1}")).isEqualTo(
                    "{\"id\": 1, \"error\": {\"class\": \"CommandNotFound\", \"desc\": \"Expecting capabilities negotiation with 'qmp_capabilities'\"}}");
            assertThat(q.exchange("{\"exec-oob\": \"qmp_capabilities\"}")).isEqualTo(
                    "{\"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input member 'exec-oob' is unexpected\"}}");
            assertThat(q.exchange("{\"execute\": \"qmp_capabilities\", \"arguments\": {\"enable\": [\"bogus\"]}}")).isEqualTo(
                    "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'null' does not accept value 'bogus'\"}}");

            assertThat(q.exchange("{\"execute\": \"qmp_capabilities\"}")).isEqualTo("{\"return\": {}}");
            assertThat(q.exchange("{\"execute\": \"qmp_capabilities\"}")).isEqualTo(
                    "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"Capabilities negotiation is already complete, command ignored\"}}");

            assertThat(q.exchange("{\"execute\": \"query-version\"}")).isEqualTo(
                    "{\"return\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7}, \"package\": \"livemig test\"}}");
            assertThat(q.exchange("{\"execute\": \"query-status\", \"id\": \"poll0\"}")).isEqualTo(
                    "{\"return\": {\"status\": \"running\", \"singlestep\": false, \"running\": true}, \"id\": \"poll0\"}");
            assertThat(q.exchange("{\"execute\": \"query-name\"}")).isEqualTo("{\"return\": {}}");
            assertThat(q.exchange("{\"execute\": \"query-commands\"}"))
                    .startsWith("{\"return\": [{\"name\": \"qmp_capabilities\"}, {\"name\": \"query-version\"}, "
                            + "{\"name\": \"query-commands\"}, {\"name\": \"query-qmp-schema\"}, {\"name\": \"query-status\"}");
        }
    }

    @Test
    void queryNameReportsTheNameWhenThereIsOne() throws Exception {
        vm.named("guest0");
        try (RawQmp q = RawQmp.negotiated(address, false)) {
            assertThat(q.exchange("{\"execute\": \"query-name\"}")).isEqualTo("{\"return\": {\"name\": \"guest0\"}}");
        }
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', quoteCharacter = '`', value = {
        // Malformed JSON.
        "{\"execute\": }|{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, expecting value\"}}",
        "{\"execute\" \"query-status\"}|{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, missing : in object pair\"}}",
        "{\"execute\": 'query-status' 'x'}|{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, expected separator in dict\"}}",
        "@@@ junk|{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, stray '@'\"}}",
        // Well-formed JSON that is not a request.
        "[\"query-status\"]|{\"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input must be a JSON object\"}}",
        "{\"id\": 3}|{\"id\": 3, \"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input lacks member 'execute'\"}}",
        "{\"execute\": 42}|{\"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input member 'execute' must be a string\"}}",
        "{\"execute\": \"stop\", \"arguments\": []}|{\"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input member 'arguments' must be an object\"}}",
        "{\"execute\": \"stop\", \"argument\": {}}|{\"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input member 'argument' is unexpected\"}}",
        "{\"exec-oob\": \"x-oob-echo\", \"arguments\": {\"x\": \"a\"}}|{\"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input member 'exec-oob' is unexpected\"}}",
        // Unknown command, unknown argument, wrong types, missing argument.
        "{\"execute\": \"foo\", \"id\": \"f\"}|{\"id\": \"f\", \"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command foo has not been found\"}}",
        "{\"execute\": \"stop\", \"arguments\": {\"foo\": 1}}|{\"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'foo' is unexpected\"}}",
        "{\"execute\": \"x-echo\", \"arguments\": {\"x\": 1}}|{\"error\": {\"class\": \"GenericError\", \"desc\": \"Invalid parameter type for 'x', expected: string\"}}",
        "{\"execute\": \"x-echo\", \"arguments\": {\"x\": \"a\", \"n\": \"1\"}}|{\"error\": {\"class\": \"GenericError\", \"desc\": \"Invalid parameter type for 'n', expected: integer\"}}",
        "{\"execute\": \"x-echo\", \"arguments\": {}}|{\"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'x' is missing\"}}",
        // id of any JSON type comes back as sent.
        "{\"execute\": \"x-echo\", \"arguments\": {\"x\": \"a\"}, \"id\": {\"seq\": [1, \"two\"]}}|{\"return\": {\"thread\": \"main\", \"x\": \"a\", \"bql\": true}, \"id\": {\"seq\": [1, \"two\"]}}",
    })
    void errorsAnswerAndTheSessionStaysOpen(String request, String reply) throws Exception {
        try (RawQmp q = RawQmp.negotiated(address, false)) {
            assertThat(q.exchange(request)).isEqualTo(reply);
            // A lexical error skips to the next newline or structural character; a fresh line is clean.
            assertThat(q.exchange("{\"execute\": \"query-status\", \"id\": 2}")).isEqualTo(
                    "{\"return\": {\"status\": \"running\", \"singlestep\": false, \"running\": true}, \"id\": 2}");
        }
    }

    @Test
    void aStrayTokenInsideAnObjectLeavesItsClosingBraceAsASecondErrorAsInQemu() throws Exception {
        try (RawQmp q = RawQmp.negotiated(address, false)) {
            assertThat(q.exchange("{\"execute\": True}")).isEqualTo(
                    "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, stray 'T'\"}}");
            assertThat(q.nextLine()).isEqualTo(
                    "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, expecting value\"}}");
            assertThat(q.exchange("{\"execute\": \"query-name\"}")).isEqualTo("{\"return\": {}}");
        }
    }

    @Test
    void outOfBandRequestsAfterEnablingOob() throws Exception {
        try (RawQmp q = RawQmp.negotiated(address, true)) {
            assertThat(q.exchange("{\"exec-oob\": \"x-oob-echo\", \"arguments\": {\"x\": \"o\"}, \"id\": \"oob1\"}")).isEqualTo(
                    "{\"return\": {\"thread\": \"qmp-io\", \"x\": \"o\", \"bql\": false}, \"id\": \"oob1\"}");
            assertThat(q.exchange("{\"exec-oob\": \"query-status\", \"id\": 5}")).isEqualTo(
                    "{\"id\": 5, \"error\": {\"class\": \"GenericError\", \"desc\": \"The command query-status does not support OOB\"}}");
            assertThat(q.exchange("{\"execute\": \"x-echo\", \"exec-oob\": \"x-echo\", \"arguments\": {\"x\": \"o\"}}")).isEqualTo(
                    "{\"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input member 'execute' clashes with 'exec-oob'\"}}"); // QEMU's QDict order, checked against QEMU 7.2
            assertThat(q.exchange("{\"execute\": \"x-oob-echo\", \"arguments\": {\"x\": \"i\"}}")).as("an OOB-capable command sent in-band runs in-band")
                    .isEqualTo("{\"return\": {\"thread\": \"main\", \"x\": \"i\", \"bql\": true}}");
        }
    }

    @Test
    void twoRequestsOnOneLineAndOneRequestOverThreeLines() throws Exception {
        try (RawQmp q = RawQmp.negotiated(address, false)) {
            q.send("{\"execute\": \"query-name\", \"id\": 1}{\"execute\": \"query-name\", \"id\": 2}\n");
            assertThat(q.nextLine()).isEqualTo("{\"return\": {}, \"id\": 1}");
            assertThat(q.nextLine()).isEqualTo("{\"return\": {}, \"id\": 2}");
            q.send("{\"execute\":\n\"query-name\",\n\"id\": 3}\n");
            assertThat(q.nextLine()).isEqualTo("{\"return\": {}, \"id\": 3}");
        }
    }

    @Test
    void stopContAndTheirEvents() throws Exception {
        try (RawQmp q = RawQmp.negotiated(address, false)) {
            // The event is emitted while the command runs, so it comes before the reply, as in QEMU.
            assertThat(q.exchange("{\"execute\": \"stop\"}")).isEqualTo("{" + TS + ", \"event\": \"STOP\"}");
            assertThat(q.nextLine()).isEqualTo("{\"return\": {}}");
            assertThat(q.exchange("{\"execute\": \"query-status\"}")).isEqualTo(
                    "{\"return\": {\"status\": \"paused\", \"singlestep\": false, \"running\": false}}");
            // stop on a stopped guest: no event, just the reply.
            assertThat(q.exchange("{\"execute\": \"stop\"}")).isEqualTo("{\"return\": {}}");

            assertThat(q.exchange("{\"execute\": \"cont\"}")).isEqualTo("{" + TS + ", \"event\": \"RESUME\"}");
            assertThat(q.nextLine()).isEqualTo("{\"return\": {}}");
            assertThat(q.exchange("{\"execute\": \"cont\"}")).as("cont on a running guest sends no event")
                    .isEqualTo("{\"return\": {}}");
            assertThat(q.exchange("{\"execute\": \"query-status\"}")).isEqualTo(
                    "{\"return\": {\"status\": \"running\", \"singlestep\": false, \"running\": true}}");
        }
    }

    @Test
    void contIsRefusedWhereQemuRefusesIt() throws Exception {
        try (RawQmp q = RawQmp.negotiated(address, false)) {
            vm.runOnMain(() -> vm.setState("finish-migrate"));
            assertThat(q.nextLine()).isEqualTo("{" + TS + ", \"event\": \"STOP\"}");
            assertThat(q.exchange("{\"execute\": \"cont\"}")).isEqualTo(
                    "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Migration is not finalized yet\"}}");
            vm.runOnMain(() -> vm.setState("shutdown"));
            assertThat(q.exchange("{\"execute\": \"cont\"}")).isEqualTo(
                    "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Resetting the Virtual Machine is required\"}}");
            vm.runOnMain(() -> vm.setState("inmigrate"));
            assertThat(q.exchange("{\"execute\": \"cont\"}")).isEqualTo("{\"return\": {}}");
            assertThat(q.exchange("{\"execute\": \"query-status\"}")).isEqualTo(
                    "{\"return\": {\"status\": \"inmigrate\", \"singlestep\": false, \"running\": false}}");
        }
    }

    @Test
    void quitSendsShutdownBeforeItsReply() throws Exception {
        try (RawQmp q = RawQmp.negotiated(address, false)) {
            assertThat(q.exchange("{\"execute\": \"quit\"}")).isEqualTo(
                    "{" + TS + ", \"event\": \"SHUTDOWN\", \"data\": {\"guest\": false, \"reason\": \"host-qmp-quit\"}}");
            assertThat(q.nextLine()).isEqualTo("{\"return\": {}}");
            assertThat(vm.shutdownRequests).hasValue(1);
        }
    }

    @Test
    void aShutdownRequestedElsewhereIsReportedAsHostSignal() throws Exception {
        try (RawQmp q = RawQmp.negotiated(address, false)) {
            vm.runOnMain(vm::requestShutdown);
            assertThat(q.nextLine()).isEqualTo(
                    "{" + TS + ", \"event\": \"SHUTDOWN\", \"data\": {\"guest\": false, \"reason\": \"host-signal\"}}");
        }
    }

    @Test
    void runStateChangesMadeByTheMachineSendStopAndResume() throws Exception {
        try (RawQmp q = RawQmp.negotiated(address, false)) {
            vm.runOnMain(() -> vm.setState("finish-migrate"));
            assertThat(q.nextLine()).isEqualTo("{" + TS + ", \"event\": \"STOP\"}");
            vm.runOnMain(() -> vm.setState("postmigrate"));
            vm.runOnMain(() -> vm.setState("running"));
            assertThat(q.nextLine()).as("no event for a change between two stopped states")
                    .isEqualTo("{" + TS + ", \"event\": \"RESUME\"}");
            vm.runOnMain(() -> vm.setState("shutdown"));
            assertThat(q.exchange("{\"execute\": \"query-name\"}")).as("running -> shutdown sends no STOP")
                    .isEqualTo("{\"return\": {}}");
        }
    }
}
