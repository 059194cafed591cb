package org.livemig.monitor;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.io.ByteArrayOutputStream;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.livemig.machine.Machine;
import org.livemig.machine.RunState;
import org.livemig.migration.Migration;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * QEMU's eight COLO cases ({plain, multifd} x {primary, secondary} failover x {while idle, during a
 * checkpoint}), driven over QMP with QEMU's commands as QEMU's qtests drive them: x-colo on both
 * sides, the primary reaches colo, the secondary resumes after each of at least three
 * checkpoints, an out-of-band yank and x-colo-lost-heartbeat on the survivor, which keeps running
 * its workload (a surviving secondary with the A-B property), with COLO_EXIT and
 * query-colo-status as QEMU's. The monitors answer throughout.
 */
class ColoQmpTest {
    private static final Duration LONG = Duration.ofSeconds(60);

    @TempDir
    Path dir;

    /** One machine behind its own QMP server, as a {@code livemig run} process would have it. */
    private final class Side implements AutoCloseable {
        final Machine machine;
        final Migration migration;
        final QmpServer server;
        final QmpClient qmp;
        final ByteArrayOutputStream output = new ByteArrayOutputStream();
        final List<ObjectNode> events = new CopyOnWriteArrayList<>();

        Side(String name, RunState state) throws Exception {
            machine = new Machine(Machine.Config.defaults().withName(name).withRam(32L << 20).withVcpus(2)
                    .withWorkload("ab:20000,print").withBlobSize(4096));
            machine.setExitHandler(s -> {
                throw new IllegalStateException("exit(" + s + ")");
            });
            machine.setSerialOutput(b -> {
                synchronized (output) {
                    output.write(b);
                }
            });
            machine.mainLoop().runAndWait(() -> machine.boot(state));
            migration = new Migration(machine);
            server = QmpServer.builder(MachineMonitor.host(machine)).build();
            RunStateCommands.register(server, MachineMonitor.vm(machine, name));
            MigrationCommands.register(server, migration);
            String sock = "unix:" + dir.resolve(name + ".qmp");
            server.listen(sock);
            qmp = QmpClient.connect(sock);
            qmp.negotiateOob();
            qmp.onEvent(events::add);
        }

        JsonNode cmd(String name, Object... args) throws Exception {
            return qmp.execute(name, QmpClient.args(args));
        }

        long count(String event) {
            return events.stream().filter(e -> e.get("event").asString().equals(event)).count();
        }

        int outputSize() {
            synchronized (output) {
                return output.size();
            }
        }

        @Override
        public void close() throws Exception {
            qmp.close();
            server.close();
            machine.close();
        }
    }

    private Side primary;
    private Side secondary;

    @AfterEach
    void close() throws Exception {
        for (Side s : new Side[] {primary, secondary}) {
            if (s != null) {
                s.close();
            }
        }
    }

    private static ObjectNode cap(String name) {
        return QmpClient.args("capability", name, "state", true);
    }

    /** Both sides set up as QEMU's COLO test does, the migration started; returns when the primary is in colo. */
    private void startColo(boolean multifd, long delayMillis) throws Exception {
        secondary = new Side("secondary", RunState.INMIGRATE);
        primary = new Side("primary", RunState.RUNNING);
        for (Side s : new Side[] {secondary, primary}) {
            var caps = QmpJson.NODES.arrayNode().add(cap("x-colo"));
            if (multifd) {
                caps.add(cap("multifd"));
            }
            ObjectNode a = QmpJson.object();
            a.set("capabilities", caps);
            s.qmp.execute("migrate-set-capabilities", a);
            s.cmd("migrate-set-parameters", "x-checkpoint-delay", delayMillis, "max-bandwidth", 0);
        }
        secondary.cmd("migrate-incoming", "uri", "tcp:127.0.0.1:0");
        String uri = secondary.migration.incoming().boundAddress().uri();
        primary.cmd("migrate", "uri", uri);
        await().atMost(LONG).until(() -> {
            String st = primary.cmd("query-migrate").get("status").asString();
            return st.equals("colo") || st.equals("failed");
        });
        assertThat(primary.cmd("query-migrate").get("status").asString()).isEqualTo("colo");
        assertThat(primary.cmd("query-colo-status").get("mode").asString()).isEqualTo("primary");
        await().atMost(LONG).until(() -> secondary.cmd("query-colo-status").get("mode").asString().equals("secondary"));
    }

    @ParameterizedTest(name = "{0} {1} failover {2}")
    @CsvSource({
            "plain, secondary, idle", "plain, secondary, checkpointing",
            "plain, primary, idle", "plain, primary, checkpointing",
            "multifd, secondary, idle", "multifd, secondary, checkpointing",
            "multifd, primary, idle", "multifd, primary, checkpointing"})
    void qemusColoCase(String transfer, String survivorName, String when) throws Exception {
        startColo(transfer.equals("multifd"), 100);
        // The secondary resumes after each of at least three checkpoints (STOP/RESUME around each).
        long resumesAtStart = secondary.count("RESUME");
        await().atMost(LONG).until(() -> secondary.count("RESUME") >= resumesAtStart + 3
                && primary.cmd("query-migrate").get("x-colo").get("checkpoints").asLong() >= 3);
        // Idle: checkpoints far apart, so none runs when the side fails over; checkpointing: back to back.
        primary.cmd("migrate-set-parameters", "x-checkpoint-delay", when.equals("idle") ? 600_000 : 0);
        if (when.equals("idle")) {
            long n = primary.cmd("query-migrate").get("x-colo").get("checkpoints").asLong();
            Thread.sleep(50); // let a checkpoint under way end; none starts for 600 s
            assertThat(primary.cmd("query-migrate").get("x-colo").get("checkpoints").asLong()).isBetween(n, n + 1);
        }
        // The monitors answer while checkpoints run.
        for (int i = 0; i < 20; i++) {
            assertThat(primary.cmd("query-status").get("status").asString()).isIn("running", "colo");
            assertThat(secondary.cmd("query-status").get("status").asString()).isIn("running", "colo");
        }
        Side survivor = survivorName.equals("secondary") ? secondary : primary;
        // As QEMU's tests: the migration instance yanked out of band, then the heartbeat declared lost.
        survivor.qmp.executeOob("yank", QmpClient.args("instances", QmpJson.NODES.arrayNode().add(
                QmpClient.args("type", "migration"))));
        long t0 = System.nanoTime();
        survivor.cmd("x-colo-lost-heartbeat");
        await().atMost(LONG).until(() -> survivor.cmd("query-status").get("status").asString().equals("running"));
        long failoverMillis = (System.nanoTime() - t0) / 1_000_000;
        assertThat(failoverMillis).as("heartbeat to running").isLessThan(10_000);
        await().atMost(LONG).until(() -> survivor.count("COLO_EXIT") >= 1);
        ObjectNode exit = survivor.events.stream().filter(e -> e.get("event").asString().equals("COLO_EXIT")).findFirst()
                .orElseThrow();
        assertThat(exit.get("data").get("mode").asString()).isEqualTo(survivorName);
        assertThat(exit.get("data").get("reason").asString()).isIn("error", "request");
        JsonNode colo = survivor.cmd("query-colo-status");
        assertThat(colo.get("mode").asString()).isEqualTo("none");
        assertThat(colo.get("last-mode").asString()).isEqualTo(survivorName);
        assertThat(colo.get("reason").asString()).isEqualTo("request");
        await().atMost(LONG).until(() -> survivor.cmd("query-migrate").get("status").asString().equals("completed"));
        // The survivor keeps running its workload: its guest goes on writing 'B' after each pass.
        int out = survivor.outputSize();
        await().atMost(LONG).until(() -> survivor.outputSize() > out);
        if (survivor == secondary) {
            survivor.cmd("stop");
            JsonNode f = survivor.cmd("x-livemig-fingerprint");
            assertThat(f.get("ab-check").get("ok").asBoolean()).as(f.toString()).isTrue();
        }
    }

    @Test
    void xColoLostHeartbeatWithoutColoIsRefusedAsQemuRefusesIt() throws Exception {
        primary = new Side("alone", RunState.PAUSED);
        JsonNode status = primary.cmd("query-colo-status");
        // QEMU 7.2's reply, member order included
        assertThat(status.toString()).isEqualTo("{\"last-mode\":\"none\",\"mode\":\"none\",\"reason\":\"none\"}");
        ObjectNode reply = primary.qmp.request("x-colo-lost-heartbeat", null);
        assertThat(reply.get("error").get("desc").asString()).isEqualTo("The feature 'colo' is not enabled");
    }

    @Test
    void aBrokenConnectionWithoutAHeartbeatLeavesBothSidesWaitingWithTheirMonitorsAnswering() throws Exception {
        startColo(false, 100);
        AtomicLong resumes = new AtomicLong(secondary.count("RESUME"));
        await().atMost(LONG).until(() -> secondary.count("RESUME") >= resumes.get() + 2);
        primary.qmp.executeOob("yank", QmpClient.args("instances", QmpJson.NODES.arrayNode().add(
                QmpClient.args("type", "migration"))));
        await().atMost(LONG).until(() -> primary.count("COLO_EXIT") >= 1 && secondary.count("COLO_EXIT") >= 1);
        for (Side s : new Side[] {primary, secondary}) {
            ObjectNode e = s.events.stream().filter(x -> x.get("event").asString().equals("COLO_EXIT")).findFirst().orElseThrow();
            assertThat(e.get("data").get("reason").asString()).isEqualTo("error");
            // As QEMU: COLO stays on, waiting for x-colo-lost-heartbeat; the monitor answers meanwhile.
            assertThat(s.cmd("query-colo-status").get("reason").asString()).isEqualTo("none");
            assertThat(s.cmd("query-status").has("status")).isTrue();
        }
        assertThat(primary.cmd("query-migrate").get("status").asString()).isEqualTo("colo");
        primary.cmd("x-colo-lost-heartbeat");
        secondary.cmd("x-colo-lost-heartbeat");
        await().atMost(LONG).until(() -> primary.cmd("query-migrate").get("status").asString().equals("completed")
                && secondary.cmd("query-migrate").get("status").asString().equals("completed"));
    }
}
