package org.livemig.monitor;

import static org.awaitility.Awaitility.await;

import java.io.IOException;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.node.ArrayNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * A machine behind a QMP monitor, driven as QEMU's qtests drive theirs: a livemig machine in this
 * JVM ({@link LivemigVm}) or a real QEMU process ({@link QemuVm}), so that one test body can run
 * against both and compare. The session negotiates out-of-band execution; events are kept.
 */
abstract class QmpVm implements AutoCloseable {
    static final Duration LONG = Duration.ofSeconds(60);

    final String name;
    final QmpClient qmp;
    final List<ObjectNode> events = new CopyOnWriteArrayList<>();

    QmpVm(String name, QmpClient qmp) throws IOException {
        this.name = name;
        this.qmp = qmp;
        qmp.negotiateOob();
        qmp.onEvent(events::add);
    }

    /** True for a real QEMU. */
    abstract boolean isQemu();

    /** Whether the process is still there (a livemig machine: whether it has not asked to exit). */
    abstract boolean alive();

    /** The exit status once the machine exited (or, in this JVM, asked to), else -1. */
    abstract int exitStatus();

    /** A command's return value; a QMP error reply throws {@link QmpError}. */
    JsonNode cmd(String command, Object... args) throws IOException {
        return qmp.execute(command, args.length == 0 ? null : QmpClient.args(args));
    }

    /** A command's whole reply, {@code return} or {@code error}. */
    ObjectNode request(String command, Object... args) throws IOException {
        return qmp.request(command, args.length == 0 ? null : QmpClient.args(args));
    }

    /** An out-of-band command on this session. */
    JsonNode oob(String command, ObjectNode args) throws IOException {
        return qmp.executeOob(command, args);
    }

    /** {@code yank} of the migration instance, out of band. */
    JsonNode yankMigration() throws IOException {
        return oob("yank", QmpClient.args("instances", QmpJson.NODES.arrayNode().add(QmpClient.args("type", "migration"))));
    }

    /** query-migrate's status, "none" when it has none (QEMU's reply before any migration is {}). */
    String migrationStatus() throws IOException {
        return cmd("query-migrate").path("status").asString("none");
    }

    String runState() throws IOException {
        return cmd("query-status").path("status").asString();
    }

    /** Sets capabilities on. */
    void caps(String... names) throws IOException {
        ArrayNode list = QmpJson.NODES.arrayNode();
        for (String n : names) {
            list.add(QmpClient.args("capability", n, "state", true));
        }
        cmd("migrate-set-capabilities", "capabilities", list);
    }

    void params(Object... keyValues) throws IOException {
        cmd("migrate-set-parameters", keyValues);
    }

    /** Whether a MIGRATION event with {@code status} arrived. */
    boolean sawMigration(String status) {
        return events.stream().anyMatch(e -> e.path("event").asString().equals("MIGRATION")
                && e.path("data").path("status").asString().equals(status));
    }

    /** The statuses of the MIGRATION events so far, in order. */
    List<String> migrationEvents() {
        return events.stream().filter(e -> e.path("event").asString().equals("MIGRATION"))
                .map(e -> e.path("data").path("status").asString()).toList();
    }

    long count(String event) {
        return events.stream().filter(e -> e.path("event").asString().equals(event)).count();
    }

    /** Waits for the MIGRATION event with {@code status} (QEMU's migration_event_wait). */
    void awaitMigrationEvent(String status) {
        await().atMost(LONG).until(() -> sawMigration(status));
    }

    /**
     * Waits until query-migrate's status is one of {@code statuses} (QEMU's
     * wait_for_migration_status) and returns it; fails at once on a status in {@code never}.
     */
    String awaitStatus(List<String> statuses, String... never) {
        String[] seen = new String[1];
        await().atMost(LONG).until(() -> {
            seen[0] = migrationStatus();
            if (Arrays.asList(never).contains(seen[0])) {
                throw new AssertionError(name + " reached " + seen[0] + ", waiting for " + statuses);
            }
            return statuses.contains(seen[0]);
        });
        return seen[0];
    }

    String awaitStatus(String status, String... never) {
        return awaitStatus(List.of(status), never);
    }

    @Override
    public String toString() {
        return name;
    }
}
