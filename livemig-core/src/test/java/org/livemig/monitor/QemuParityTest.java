package org.livemig.monitor;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;

import org.junit.jupiter.api.Test;

import tools.jackson.databind.JsonNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * livemig's monitor against what a real QEMU 7.2 recorded (test resources {@code qemu-7.2/}):
 * command signatures against its introspection, replies and events against its transcript.
 * A live QEMU, when installed, is compared in {@link LiveQemuParityTest}.
 */
class QemuParityTest extends QmpServerFixture {
    private final QemuSchema schema = QemuSchema.load();

    @Test
    void everyGeneralCommandHasQemuSignature() {
        List<String> diffs = new ArrayList<>();
        List<String> checked = new ArrayList<>();
        for (String name : server.commands().names()) {
            if (name.startsWith("x-")) {
                continue; // this test's own commands
            }
            diffs.addAll(schema.differences(server.commands().lookup(name)));
            checked.add(name);
        }
        assertThat(diffs).isEmpty();
        assertThat(checked).contains("qmp_capabilities", "query-status", "stop", "cont", "quit");
    }

    @Test
    void theCheckerSeesADifference() {
        QmpCommand wrong = QmpCommand.builder("migrate-incoming").optionalArg("uri", QmpType.INT).allowOob()
                .handler(a -> null).build();
        assertThat(schema.differences(wrong)).hasSize(3);
        assertThat(schema.differences(QmpCommand.builder("no-such").handler(a -> null).build())).hasSize(1);
    }

    @Test
    void unionVariantMembersAreAcceptedWhenOptional() {
        QmpType.Struct instance = QmpType.struct(
                QmpType.member("type", QmpType.enumOf("YankInstanceType", "block-node", "chardev", "migration")),
                QmpType.optional("node-name", QmpType.STR),
                QmpType.optional("id", QmpType.STR));
        QmpCommand yank = QmpCommand.builder("yank").arg("instances", QmpType.arrayOf(instance)).allowOob()
                .handler(a -> null).build();
        assertThat(schema.differences(yank)).isEmpty();
        QmpCommand strict = QmpCommand.builder("yank").arg("instances", QmpType.arrayOf(QmpType.struct(
                instance.members().getFirst(), QmpType.member("id", QmpType.STR)))).allowOob()
                .handler(a -> null).build();
        assertThat(schema.differences(strict)).singleElement().asString().contains("only in some variants");
    }

    @Test
    void repliesHaveTheShapeQemuRecorded() throws Exception {
        try (RawQmp q = RawQmp.connect(address)) {
            ObjectNode greeting = q.next();
            JsonNode qemuGreeting = QemuSchema.firstFrom("src", m -> m.has("QMP"));
            assertThat(QemuSchema.shapeDifferences(greeting, qemuGreeting)).isEmpty();
            assertThat(QemuSchema.shapeDifferences(qemuGreeting, greeting)).as("and nothing missing").isEmpty();
            assertThat(q.exchange("{\"execute\": \"qmp_capabilities\"}")).isEqualTo(
                    QmpJson.write(QemuSchema.replyTo("src", "qmp_capabilities")));

            for (String command : List.of("query-version", "query-status", "query-name")) {
                q.send("{\"execute\": \"" + command + "\"}\n");
                ObjectNode ours = q.next();
                JsonNode theirs = QemuSchema.replyTo("src", command);
                assertThat(QemuSchema.shapeDifferences(ours, theirs)).as(command).isEmpty();
                assertThat(QemuSchema.shapeDifferences(theirs, ours)).as(command + ", nothing missing").isEmpty();
            }
            // query-status with an id, as the transcript polls query-migrate: the id comes back last.
            assertThat(q.exchange("{\"execute\": \"query-status\", \"id\": \"poll0\"}"))
                    .endsWith("}, \"id\": \"poll0\"}");
        }
    }

    @Test
    void eventsHaveTheShapeQemuRecorded() throws Exception {
        try (RawQmp q = RawQmp.negotiated(address, false)) {
            q.send("{\"execute\": \"stop\"}\n");
            ObjectNode stop = q.next();
            q.next();
            q.send("{\"execute\": \"cont\"}\n");
            ObjectNode resume = q.next();
            q.next();
            q.send("{\"execute\": \"quit\"}\n");
            ObjectNode shutdown = q.next();
            assertThat(QmpJson.write(q.next())).isEqualTo(QmpJson.write(QemuSchema.replyTo("src", "quit")));

            for (ObjectNode ours : List.of(stop, resume, shutdown)) {
                String name = ours.get("event").stringValue();
                String side = name.equals("RESUME") ? "dst" : "src"; // the transcript's RESUME is the destination's
                JsonNode theirs = QemuSchema.firstFrom(side, m -> name.equals(m.path("event").asString(null)));
                assertThat(QemuSchema.shapeDifferences(ours, theirs)).as(name).isEmpty();
                assertThat(QemuSchema.shapeDifferences(theirs, ours)).as(name + ", nothing missing").isEmpty();
                assertThat(List.copyOf(ours.propertyNames())).as(name + " member order")
                        .isEqualTo(List.copyOf(theirs.propertyNames()));
            }
            assertThat(shutdown.get("data")).isEqualTo(QemuSchema.firstFrom("src",
                    m -> "SHUTDOWN".equals(m.path("event").asString(null))).get("data"));
        }
    }

    @Test
    void eventDataMatchesQemuIntrospection() {
        JsonNode shutdown = schema.entry("SHUTDOWN");
        assertThat(shutdown.get("meta-type").stringValue()).isEqualTo("event");
        JsonNode members = schema.entry(shutdown.get("arg-type").stringValue()).get("members");
        assertThat(members.get(0).get("name").stringValue()).isEqualTo("guest");
        assertThat(members.get(1).get("name").stringValue()).isEqualTo("reason");
        List<String> reasons = new ArrayList<>();
        schema.entry(members.get(1).get("type").stringValue()).get("values").forEach(v -> reasons.add(v.stringValue()));
        assertThat(reasons).contains("host-qmp-quit", "host-signal");
        for (String noData : List.of("STOP", "RESUME")) {
            assertThat(schema.entry(schema.entry(noData).get("arg-type").stringValue()).get("members")).isEmpty();
        }
        List<String> states = new ArrayList<>();
        schema.entry("262").get("values").forEach(v -> states.add(v.stringValue()));
        assertThat(states).as("RunState of query-status").contains("running", "paused", "inmigrate", "postmigrate",
                "finish-migrate", "prelaunch", "shutdown", "internal-error", "suspended");
    }
}
