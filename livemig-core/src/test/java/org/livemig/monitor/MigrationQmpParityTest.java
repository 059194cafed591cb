package org.livemig.monitor;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.livemig.machine.Machine;
import org.livemig.machine.RunState;
import org.livemig.migration.Migration;
import org.livemig.testing.HostTools;
import tools.jackson.databind.JsonNode;

/**
 * The migration queries asked of a real QEMU 7.2 and of livemig by the same client: every key
 * livemig returns exists in QEMU's reply, with the same JSON type. Skips without QEMU.
 */
class MigrationQmpParityTest {
    @TempDir
    Path dir;

    private Process qemu;
    private QmpClient real;
    private Machine machine;
    private QmpServer server;
    private QmpClient ours;

    @BeforeEach
    void start() throws Exception {
        HostTools.Qemu q = HostTools.startQemu(dir, "-M", "pc", "-m", "32M", "-accel", "tcg", "-nodefaults",
                "-display", "none", "-S");
        qemu = q.process();
        real = HostTools.connectQmp(q.qmpSocket());
        real.negotiate();

        machine = new Machine(Machine.Config.defaults().withRam(32L << 20).withWorkload("idle").withBlobSize(4096));
        machine.mainLoop().runAndWait(() -> machine.boot(RunState.PAUSED));
        Migration migration = new Migration(machine);
        server = QmpServer.builder(MachineMonitor.host(machine)).build();
        RunStateCommands.register(server, MachineMonitor.vm(machine, null));
        MigrationCommands.register(server, migration);
        ObjectCommands.register(server, migration.objects());
        server.listen("unix:" + dir.resolve("ours.sock"));
        ours = QmpClient.connect("unix:" + dir.resolve("ours.sock"));
        ours.negotiate();
    }

    @AfterEach
    void stop() throws Exception {
        if (ours != null) {
            ours.close();
        }
        if (server != null) {
            server.close();
        }
        if (machine != null) {
            machine.close();
        }
        if (real != null) {
            real.close();
        }
        if (qemu != null) {
            qemu.destroy();
            if (!qemu.waitFor(10, TimeUnit.SECONDS)) {
                qemu.destroyForcibly();
            }
        }
    }

    /** Keys livemig answers that came after QEMU 7.2 (QEMU 9.0's zero-page-detection): not in its reply. */
    private static final java.util.Set<String> AFTER_72 = java.util.Set.of("query-migrate-parameters.zero-page-detection");

    /** Keys of {@code ours} missing from {@code theirs} or of another JSON type, as paths. */
    private static List<String> shapeDifferences(String path, JsonNode ours, JsonNode theirs) {
        List<String> diffs = new ArrayList<>();
        if (AFTER_72.contains(path)) {
            return diffs;
        }
        if (theirs == null || theirs.isMissingNode()) {
            diffs.add(path + " is not in QEMU's reply");
            return diffs;
        }
        if (ours.getNodeType() != theirs.getNodeType()) {
            diffs.add(path + " is " + ours.getNodeType() + " here, " + theirs.getNodeType() + " in QEMU");
            return diffs;
        }
        if (ours.isObject()) {
            for (Map.Entry<String, JsonNode> e : ours.properties()) {
                diffs.addAll(shapeDifferences(path + "." + e.getKey(), e.getValue(), theirs.get(e.getKey())));
            }
        } else if (ours.isArray() && !ours.isEmpty() && !theirs.isEmpty()) {
            diffs.addAll(shapeDifferences(path + "[0]", ours.get(0), theirs.get(0)));
        }
        return diffs;
    }

    private void sameShape(String command) throws Exception {
        JsonNode o = ours.execute(command);
        JsonNode t = real.execute(command);
        assertThat(shapeDifferences(command, o, t)).as("ours %s%nQEMU %s", o, t).isEmpty();
    }

    @Test
    void migrationQueriesHaveQemusShape() throws Exception {
        sameShape("query-status");
        sameShape("query-migrate-capabilities");
        sameShape("query-migrate-parameters");
        sameShape("query-migrate");
        // After a completed migration, query-migrate carries times and RAM statistics.
        for (QmpClient c : List.of(ours, real)) {
            c.execute("migrate", QmpClient.args("uri", "exec:cat > /dev/null"));
        }
        await().atMost(Duration.ofSeconds(60)).until(() ->
                ours.execute("query-migrate").path("status").asString().equals("completed")
                        && real.execute("query-migrate").path("status").asString().equals("completed"));
        sameShape("query-migrate");
        sameShape("query-status");
        assertThat(ours.execute("query-migrate").get("ram").size()).isGreaterThan(10);
    }

    /** What each of the two says to {@code command}: its return, or its error class and text. */
    private String[] both(String command, tools.jackson.databind.node.ObjectNode args) {
        String[] r = new String[2];
        int i = 0;
        for (QmpClient c : List.of(ours, real)) {
            try {
                r[i] = String.valueOf(c.execute(command, args));
            } catch (QmpError e) {
                r[i] = e.errorClass() + ": " + e.desc();
            } catch (java.io.IOException e) {
                r[i] = "IO: " + e.getMessage();
            }
            i++;
        }
        return r;
    }

    @Test
    void tlsParametersAndObjectsAnswerAsQemus() throws Exception {
        for (String key : List.of("tls-creds", "tls-hostname", "tls-authz")) {
            assertThat(ours.execute("query-migrate-parameters").get(key)).as(key + " default")
                    .isEqualTo(real.execute("query-migrate-parameters").get(key));
        }
        for (QmpClient c : List.of(ours, real)) {
            c.execute("migrate-set-parameters", QmpClient.args("tls-creds", "nonexist", "tls-hostname", "qemu.org", "tls-authz", "a0"));
        }
        for (String key : List.of("tls-creds", "tls-hostname", "tls-authz")) {
            assertThat(ours.execute("query-migrate-parameters").get(key)).as(key)
                    .isEqualTo(real.execute("query-migrate-parameters").get(key));
        }
        // JSON null means "" (QEMU's no-tls test sends it)
        tools.jackson.databind.node.ObjectNode nulls = QmpJson.object();
        nulls.putNull("tls-creds");
        nulls.putNull("tls-hostname");
        nulls.putNull("tls-authz");
        for (QmpClient c : List.of(ours, real)) {
            c.execute("migrate-set-parameters", nulls);
        }
        for (String key : List.of("tls-creds", "tls-hostname", "tls-authz")) {
            assertThat(ours.execute("query-migrate-parameters").get(key).asString()).as(key).isEmpty();
            assertThat(real.execute("query-migrate-parameters").get(key).asString()).as(key).isEmpty();
        }
        java.nio.file.Path empty = java.nio.file.Files.createDirectories(dir.resolve("empty"));
        org.livemig.testing.TlsFixtures.pskDir(dir.resolve("psk"), "qemu");
        List<tools.jackson.databind.node.ObjectNode> calls = List.of(
                QmpClient.args("qom-type", "tls-creds-x509", "id", "x0", "endpoint", "server", "dir", empty.toString()),
                QmpClient.args("qom-type", "tls-creds-psk", "id", "p0", "endpoint", "server", "dir", dir.resolve("psk").toString()),
                QmpClient.args("qom-type", "tls-creds-psk", "id", "p0", "endpoint", "server", "dir", dir.resolve("psk").toString()),
                QmpClient.args("qom-type", "tls-creds-psk", "id", "p2", "endpoint", "bogus", "dir", dir.resolve("psk").toString()),
                QmpClient.args("qom-type", "tls-creds-psk", "id", "p3", "endpoint", "server", "dir", "x", "foo", 1),
                QmpClient.args("qom-type", "tls-creds-psk", "id", "p4", "endpoint", "server", "dir", "x", "verify-peer", "yes"),
                QmpClient.args("qom-type", "authz-simple", "id", "a0", "identity", "CN=x"),
                QmpClient.args("qom-type", "authz-simple", "id", "a1"),
                QmpClient.args("qom-type", "authz-simple", "id", "bad id!", "identity", "x"));
        for (var call : calls) {
            String[] r = both("object-add", call);
            assertThat(r[0]).as(call.toString()).isEqualTo(r[1]);
        }
        for (String id : List.of("nope", "p0", "p0", "a0")) {
            String[] r = both("object-del", QmpClient.args("id", id));
            assertThat(r[0]).as("object-del " + id).isEqualTo(r[1]);
        }
    }

    @Test
    void multifdCapabilityAndParametersAnswerAsQemus() throws Exception {
        assertThat(ours.execute("query-migrate-parameters").get("multifd-channels"))
                .as("default").isEqualTo(real.execute("query-migrate-parameters").get("multifd-channels"));
        for (QmpClient c : List.of(ours, real)) {
            tools.jackson.databind.node.ArrayNode caps = QmpJson.NODES.arrayNode();
            caps.add(QmpJson.object().put("capability", "multifd").put("state", true));
            c.execute("migrate-set-capabilities", QmpClient.args("capabilities", caps));
            c.execute("migrate-set-parameters", QmpClient.args("multifd-channels", 4, "multifd-compression", "none"));
        }
        for (String key : List.of("multifd-channels", "multifd-compression")) {
            assertThat(ours.execute("query-migrate-parameters").get(key)).as(key)
                    .isEqualTo(real.execute("query-migrate-parameters").get(key));
        }
        assertThat(withoutSwitchoverAck(ours.execute("query-migrate-capabilities")))
                .isEqualTo(real.execute("query-migrate-capabilities").toString());
        // A channel count out of range: the same error from both.
        String[] errors = new String[2];
        int i = 0;
        for (QmpClient c : List.of(ours, real)) {
            try {
                c.execute("migrate-set-parameters", QmpClient.args("multifd-channels", 0));
            } catch (QmpError e) {
                errors[i] = e.errorClass() + ": " + e.desc();
            }
            i++;
        }
        assertThat(errors[0]).isNotNull().isEqualTo(errors[1]);
    }

    /** The same request to both; returns both answers, each the result or "Class: desc" of the error. */
    @Test
    void xbzrleAndCompressParametersAnswerAsQemus() throws Exception {
        List<String> keys = List.of("xbzrle-cache-size", "compress-level", "compress-threads", "decompress-threads",
                "compress-wait-thread", "multifd-zlib-level", "multifd-zstd-level");
        for (String key : keys) {
            assertThat(ours.execute("query-migrate-parameters").get(key)).as("default " + key)
                    .isEqualTo(real.execute("query-migrate-parameters").get(key));
        }
        Object[][] good = {{"xbzrle-cache-size", 1L << 20}, {"compress-level", 0}, {"compress-level", 9},
            {"compress-threads", 3}, {"decompress-threads", 255}, {"compress-wait-thread", false},
            {"multifd-zlib-level", 9}, {"multifd-zstd-level", 20}, {"multifd-compression", "zstd"}};
        for (Object[] g : good) {
            String[] r = both("migrate-set-parameters", QmpClient.args((String) g[0], g[1]));
            assertThat(r[0]).as("%s %s", g[0], g[1]).isEqualTo(r[1]).isEqualTo("{}");
        }
        for (String key : keys) {
            if (key.startsWith("multifd-z")) {
                // QEMU 7.2 accepts these and keeps 1 (its migrate_params_apply skips them); livemig applies them.
                assertThat(real.execute("query-migrate-parameters").get(key).asInt()).as("QEMU 7.2 " + key).isEqualTo(1);
                assertThat(ours.execute("query-migrate-parameters").get(key).asInt()).as(key)
                        .isEqualTo(key.equals("multifd-zlib-level") ? 9 : 20);
                continue;
            }
            assertThat(ours.execute("query-migrate-parameters").get(key)).as("set " + key)
                    .isEqualTo(real.execute("query-migrate-parameters").get(key));
        }
        // Bad values: the same error class and words (QEMU 7.2 does not check the multifd levels
        // it documents; livemig does, so they are left out here).
        Object[][] bad = {{"xbzrle-cache-size", 12288L}, {"xbzrle-cache-size", 2048L}, {"xbzrle-cache-size", -4096L},
            {"compress-level", 10}, {"compress-level", -1}, {"compress-threads", 0}, {"compress-threads", 256},
            {"decompress-threads", 0}, {"multifd-zlib-level", 256}, {"multifd-zstd-level", -1},
            {"multifd-compression", "lz4"}, {"compress-wait-thread", 1}};
        for (Object[] b : bad) {
            String[] r = both("migrate-set-parameters", QmpClient.args((String) b[0], b[1]));
            assertThat(r[0]).as("%s %s", b[0], b[1]).startsWith("GenericError").isEqualTo(r[1]);
        }
        // multifd with compress: refused by both, whichever order they come in
        tools.jackson.databind.node.ArrayNode caps = QmpJson.NODES.arrayNode();
        caps.add(QmpJson.object().put("capability", "compress").put("state", true));
        caps.add(QmpJson.object().put("capability", "multifd").put("state", true));
        String[] r = both("migrate-set-capabilities", QmpClient.args("capabilities", caps));
        assertThat(r[0]).isEqualTo(r[1]).isEqualTo("GenericError: Multifd is not compatible with compress");
        assertThat(withoutSwitchoverAck(ours.execute("query-migrate-capabilities")))
                .as("nothing changed").isEqualTo(real.execute("query-migrate-capabilities").toString());
    }

    @Test
    void queryMigrateWithXbzrleAndCompressHasQemusShape() throws Exception {
        for (QmpClient c : List.of(ours, real)) {
            tools.jackson.databind.node.ArrayNode caps = QmpJson.NODES.arrayNode();
            caps.add(QmpJson.object().put("capability", "xbzrle").put("state", true));
            caps.add(QmpJson.object().put("capability", "compress").put("state", true));
            c.execute("migrate-set-capabilities", QmpClient.args("capabilities", caps));
            c.execute("migrate", QmpClient.args("uri", "exec:cat > /dev/null"));
        }
        await().atMost(Duration.ofSeconds(60)).until(() ->
                ours.execute("query-migrate").path("status").asString().equals("completed")
                        && real.execute("query-migrate").path("status").asString().equals("completed"));
        JsonNode o = ours.execute("query-migrate");
        JsonNode t = real.execute("query-migrate");
        assertThat(shapeDifferences("query-migrate", o, t)).as("ours %s%nQEMU %s", o, t).isEmpty();
        for (String member : List.of("xbzrle-cache", "compression")) {
            assertThat(o.has(member)).as(member).isTrue();
            List<String> theirs = new ArrayList<>();
            t.get(member).propertyNames().forEach(theirs::add);
            List<String> mine = new ArrayList<>();
            o.get(member).propertyNames().forEach(mine::add);
            assertThat(mine).as(member).containsExactlyInAnyOrderElementsOf(theirs);
        }
        assertThat(o.get("xbzrle-cache").get("cache-size")).isEqualTo(t.get("xbzrle-cache").get("cache-size"));
    }

    /**
     * QEMU 7.2's capabilities and then QEMU 8.1's switchover-ack, where 8.1 lists it (right after
     * postcopy-preempt, 7.2's last).
     */
    @Test
    void capabilityNamesAreQemus() throws Exception {
        List<String> theirs = new ArrayList<>();
        real.execute("query-migrate-capabilities").forEach(c -> theirs.add(c.get("capability").asString()));
        List<String> mine = new ArrayList<>();
        ours.execute("query-migrate-capabilities").forEach(c -> mine.add(c.get("capability").asString()));
        List<String> want = new ArrayList<>(theirs);
        want.add("switchover-ack");
        assertThat(theirs.getLast()).isEqualTo("postcopy-preempt");
        assertThat(mine).containsExactlyElementsOf(want);
    }

    /** livemig's query-migrate-capabilities without QEMU 8.1's switchover-ack (last, and off), to compare with 7.2's. */
    private static String withoutSwitchoverAck(JsonNode caps) {
        tools.jackson.databind.node.ArrayNode a = ((tools.jackson.databind.node.ArrayNode) caps).deepCopy();
        JsonNode last = a.get(a.size() - 1);
        assertThat(last.get("capability").asString()).isEqualTo("switchover-ack");
        assertThat(last.get("state").asBoolean()).isFalse();
        a.remove(a.size() - 1);
        return a.toString();
    }

    /**
     * Every numeric parameter at 0, 1, the edges of its type and range and past them, sent to
     * QEMU 7.2 and to livemig in the same order: the same reply (return, or error class and
     * text) and the same value read back by query-migrate-parameters.
     */
    @Test
    void numericParametersAnswerAsQemuAtTheirLimits() throws Exception {
        List<String> names = List.of("max-bandwidth", "max-postcopy-bandwidth", "downtime-limit", "cpu-throttle-initial",
                "cpu-throttle-increment", "max-cpu-throttle", "throttle-trigger-threshold", "multifd-channels");
        List<String> values = List.of("-1", "0", "1", "99", "100", "255", "256", "2000000", "2000001", "107374182400",
                "9223372036854775807", "18446744073709551615", "18446744073709551616");
        List<String> differences = new ArrayList<>();
        for (String name : names) {
            for (String v : values) {
                tools.jackson.databind.node.ObjectNode args = QmpJson.object();
                args.set(name, QmpJson.parse(v));
                String theirs = reply(real, args, name);
                String mine = reply(ours, args, name);
                if (!theirs.equals(mine)) {
                    differences.add(name + "=" + v + ": QEMU " + theirs + ", livemig " + mine);
                }
            }
        }
        assertThat(differences).isEmpty();
    }

    private static String reply(QmpClient c, tools.jackson.databind.node.ObjectNode args, String name) throws Exception {
        JsonNode r = c.request("migrate-set-parameters", args);
        String answer = r.has("error") ? r.get("error").get("class").asString() + ": " + r.get("error").get("desc").asString()
                : "return " + r.get("return");
        return answer + " -> " + c.execute("query-migrate-parameters").get(name);
    }
}
