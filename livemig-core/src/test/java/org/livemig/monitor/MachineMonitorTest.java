package org.livemig.monitor;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicInteger;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.livemig.machine.Machine;
import org.livemig.machine.MachineListener;
import org.livemig.machine.RunState;

import tools.jackson.databind.JsonNode;
import tools.jackson.databind.node.ObjectNode;

/** The monitor bound to a real {@link Machine}: its main loop and BQL, its run state and vCPUs. */
class MachineMonitorTest {
    private static final Duration WAIT = Duration.ofSeconds(10);

    @TempDir
    Path dir;
    private Machine machine;
    private QmpServer server;
    private final AtomicInteger shutdownRequests = new AtomicInteger();

    @BeforeEach
    void start() throws IOException {
        machine = new Machine(Machine.Config.defaults().withName("m0").withRam(8L << 20).withVcpus(2).withBlobSize(4096));
        machine.mainLoop().runAndWait(() -> machine.boot(RunState.RUNNING));
        machine.addListener(new MachineListener() {
            @Override
            public void shutdownRequested() {
                shutdownRequests.incrementAndGet();
            }
        });
        server = QmpServer.builder(MachineMonitor.host(machine)).build();
        RunStateCommands.register(server, MachineMonitor.vm(machine, "guest0"));
        for (boolean oob : new boolean[] {false, true}) {
            QmpCommand.Builder b = QmpCommand.builder(oob ? "x-where-oob" : "x-where");
            if (oob) {
                b.allowOob();
            }
            server.register(b.handler(args -> {
                ObjectNode r = QmpJson.object();
                r.put("main", machine.mainLoop().inMainThread());
                r.put("bql", machine.bql().isHeldByCurrentThread());
                return r;
            }).build());
        }
        server.listen("unix:" + dir.resolve("m0.sock"));
    }

    @AfterEach
    void stop() {
        server.close();
        machine.close();
    }

    private QmpClient client() throws IOException {
        return QmpClient.connect("unix:" + dir.resolve("m0.sock"));
    }

    @Test
    void stopContAndQuitDriveTheMachine() throws Exception {
        try (QmpClient qmp = client()) {
            qmp.negotiate();
            assertThat(qmp.execute("query-name").get("name").stringValue()).isEqualTo("guest0");
            assertThat(qmp.execute("query-status").get("status").stringValue()).isEqualTo("running");

            qmp.execute("stop");
            qmp.waitForEvent("STOP", WAIT);
            assertThat(machine.runState()).isEqualTo(RunState.PAUSED);
            JsonNode status = qmp.execute("query-status");
            assertThat(status.get("status").stringValue()).isEqualTo("paused");
            assertThat(status.get("running").booleanValue()).isFalse();

            qmp.execute("cont");
            qmp.waitForEvent("RESUME", WAIT);
            assertThat(machine.runState()).isEqualTo(RunState.RUNNING);

            qmp.execute("quit");
            ObjectNode shutdown = qmp.waitForEvent("SHUTDOWN", WAIT);
            assertThat(shutdown.get("data").get("reason").stringValue()).isEqualTo("host-qmp-quit");
            assertThat(shutdownRequests).hasValue(1);
            assertThat(qmp.takeEvents()).as("exactly one SHUTDOWN, no STOP").isEmpty();
        }
    }

    @Test
    void inBandOnMainWithTheBqlOutOfBandOnQmpIoWithout() throws Exception {
        try (QmpClient qmp = client()) {
            qmp.negotiateOob();
            JsonNode inBand = qmp.execute("x-where", null);
            assertThat(inBand.get("main").booleanValue()).isTrue();
            assertThat(inBand.get("bql").booleanValue()).isTrue();
            JsonNode oob = qmp.executeOob("x-where-oob", null);
            assertThat(oob.get("main").booleanValue()).isFalse();
            assertThat(oob.get("bql").booleanValue()).isFalse();
        }
    }

    @Test
    void whenTheMainLoopHasEndedCommandsAnswerAnErrorInsteadOfHanging() throws Exception {
        try (QmpClient qmp = client()) {
            qmp.negotiate();
            machine.mainLoop().stop();
            assertThatThrownBy(() -> qmp.execute("query-status"))
                    .isInstanceOf(QmpError.class)
                    .hasMessage("The main loop is not running: the main loop of m0 has ended");
        }
    }
}
