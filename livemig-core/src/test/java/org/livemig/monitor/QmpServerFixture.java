package org.livemig.monitor;

import java.io.IOException;
import java.net.SocketAddress;
import java.nio.file.Path;
import java.time.Instant;
import java.time.InstantSource;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.io.TempDir;

import tools.jackson.databind.node.ObjectNode;

/**
 * A server on a unix socket in a temp dir, bound to a {@link TestMachine} with the run-state
 * commands and two test commands: {@code x-echo} (in-band, echoes {@code x} and says whether the
 * BQL was held and on which thread) and {@code x-oob-echo} (the same, allow-oob).
 */
abstract class QmpServerFixture {
    /** The timestamp every event carries in these tests (the fixture transcript's first one). */
    static final Instant EVENT_TIME = Instant.ofEpochSecond(1795629952, 776_241_000);
    static final String TS = "\"timestamp\": {\"seconds\": 1795629952, \"microseconds\": 776241}";

    @TempDir
    Path dir;
    TestMachine vm;
    QmpServer server;
    SocketAddress address;

    @BeforeEach
    void startServer() throws IOException {
        vm = new TestMachine("running");
        server = QmpServer.builder(vm)
                .version(7, 2, 22, "livemig test")
                .clock(InstantSource.fixed(EVENT_TIME))
                .build();
        RunStateCommands.register(server, vm);
        server.register(echo("x-echo", false));
        server.register(echo("x-oob-echo", true));
        address = server.listen("unix:" + dir.resolve("qmp.sock"));
    }

    private QmpCommand echo(String name, boolean oob) {
        QmpCommand.Builder b = QmpCommand.builder(name)
                .arg("x", QmpType.STR)
                .optionalArg("n", QmpType.INT);
        if (oob) {
            b.allowOob();
        }
        return b.handler(args -> {
            ObjectNode r = QmpJson.object();
            r.put("x", args.get("x").stringValue());
            r.put("bql", vm.bqlHeldByCurrentThread());
            r.put("thread", Thread.currentThread().getName());
            return r;
        }).build();
    }

    @AfterEach
    void stopServer() throws InterruptedException {
        server.close();
        vm.close();
    }
}
