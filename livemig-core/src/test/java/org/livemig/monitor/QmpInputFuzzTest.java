package org.livemig.monitor;

import static org.assertj.core.api.Assertions.assertThat;

import com.code_intelligence.jazzer.junit.FuzzTest;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.livemig.machine.Machine;
import org.livemig.machine.RunState;
import org.livemig.migration.Migration;
import tools.jackson.databind.JsonNode;

/**
 * Jazzer fuzz target over the QMP server's JSON input: bytes as a client sends them, fed to the
 * server's parser ({@link JsonStreamParser}) in pieces (the first byte says where the input is
 * cut, as reads cut it), every message then checked by the server's dispatcher
 * ({@link QmpDispatch#prepare}) against the real commands of a livemig run process (machine,
 * run-state and migration commands) in both modes, before and after capabilities negotiation.
 * Every message must end as a value or a parse error with a description, every value as a reply
 * or a call with typed arguments; any throwable is a finding. Commands are not executed. Without
 * {@code JAZZER_FUZZ=1} the seeds in {@code QmpInputFuzzTestInputs/fuzzQmpInput} run as a
 * regression test.
 */
class QmpInputFuzzTest {
    private static Machine machine;
    private static QmpServer server;
    private static QmpDispatch dispatch;

    /** A livemig run process's commands (not in a static initializer: the main loop runs a lambda of this class). */
    @BeforeAll
    static void open() throws java.io.IOException {
        machine = new Machine(Machine.Config.defaults().withName("fuzz").withRam(1L << 20).withVcpus(1)
                .withWorkload("idle").withBlobSize(64));
        Machine m = machine;
        m.mainLoop().runAndWait(() -> m.boot(RunState.PAUSED));
        server = QmpServer.builder(MachineMonitor.host(m)).build();
        RunStateCommands.register(server, MachineMonitor.vm(m, "fuzz"));
        MigrationCommands.register(server, new Migration(m));
        dispatch = new QmpDispatch(server.commands(), MachineMonitor.host(m));
    }

    @AfterAll
    static void close() {
        server.close();
        machine.close();
    }

    @FuzzTest(maxDuration = "2m")
    void fuzzQmpInput(byte[] data) {
        feed(data);
    }

    /** Feeds {@code data} (its first byte: where to cut it) and checks every message; returns the calls prepared. */
    static int feed(byte[] data) {
        List<JsonNode> values = new ArrayList<>();
        List<String> errors = new ArrayList<>();
        JsonStreamParser parser = new JsonStreamParser(new JsonStreamParser.Sink() {
            @Override
            public void value(JsonNode value) {
                values.add(value);
            }

            @Override
            public void error(String desc) {
                if (desc == null || desc.isEmpty()) {
                    throw new AssertionError("a parse error without a description");
                }
                errors.add(desc);
            }
        }, 1 << 16, 1 << 12);
        int cut = data.length == 0 ? 0 : Math.min(data.length, 1 + (data[0] & 0xFF));
        parser.feed(ByteBuffer.wrap(data, 0, cut));
        parser.feed(ByteBuffer.wrap(data, cut, data.length - cut));
        int calls = 0;
        for (JsonNode v : values) {
            for (boolean commandMode : new boolean[] {false, true}) {
                QmpDispatch.Prepared p = dispatch.prepare(v, commandMode, true);
                switch (p) {
                    case QmpDispatch.Reply r -> {
                        if (!r.response().has("error") && !r.response().has("return")) {
                            throw new AssertionError("a reply that is neither return nor error: " + r.response());
                        }
                        QmpJson.wire(r.response());
                    }
                    case QmpDispatch.Call c -> {
                        calls++;
                        if (c.args() == null || !c.args().isObject()) {
                            throw new AssertionError("a call without object arguments: " + v);
                        }
                    }
                }
            }
        }
        return calls;
    }

    @Test
    void seedsPrepareCalls() throws Exception {
        Path dir = Path.of("src/test/resources/org/livemig/monitor/QmpInputFuzzTestInputs/fuzzQmpInput");
        assertThat(feed(Files.readAllBytes(dir.resolve("session")))).isGreaterThanOrEqualTo(8);
    }
}
