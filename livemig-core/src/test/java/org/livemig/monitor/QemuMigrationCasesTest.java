package org.livemig.monitor;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;
import org.livemig.machine.RunState;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * QEMU's precopy migration cases (its qtests' {@code cancel/src/after/*}, {@code precopy/tcp/plain}
 * with the source stopped, {@code bad_dest}, {@code validate}, and {@code migrate_cancel},
 * {@code yank} and {@code query-yank}), driven over QMP with QEMU's commands as its qtests send
 * them. Where a case is marked {@code qemu} too, the same test body runs against a pair of real
 * QEMU 7.2 processes (skipped without one), so that the expectations written here are QEMU's own.
 *
 * <p>One deliberate difference: QEMU 7.2's {@code migrate-incoming} has no {@code exit-on-error}
 * (its destination always exits with status 1 when a load fails); livemig's is sent
 * {@code exit-on-error: false}, as QEMU's newer qtests do, and its destination then reports
 * {@code failed} and stays.
 */
class QemuMigrationCasesTest {
    private static final Duration LONG = QmpVm.LONG;
    private static final long RAM = 32L << 20;

    @TempDir
    Path dir;

    private final List<AutoCloseable> open = new ArrayList<>();

    @AfterEach
    void closeAll() throws Exception {
        Collections.reverse(open);
        for (AutoCloseable c : open) {
            c.close();
        }
    }

    /** A source (running) or destination ({@code -incoming defer}) of the given backend. */
    private QmpVm vm(String backend, String name, boolean incoming) throws Exception {
        return vm(backend, name, incoming, true);
    }

    /** As above; without {@code autostart} as with QEMU's {@code -S}. */
    private QmpVm vm(String backend, String name, boolean incoming, boolean autostart) throws Exception {
        QmpVm v;
        if (backend.equals("qemu")) {
            v = QemuVm.start(dir, name, incoming, autostart);
        } else {
            LivemigVm l = LivemigVm.start(dir, LivemigVm.config(name, RAM, "ab:2000"),
                    incoming ? RunState.INMIGRATE : RunState.RUNNING);
            l.migration.setAutostart(autostart);
            v = l;
        }
        open.add(v);
        return v;
    }

    private String uri(String name) {
        return "unix:" + dir.resolve(name + ".mig");
    }

    /** migrate-incoming as QEMU's qtests send it (see the class comment for exit-on-error). */
    private static void incoming(QmpVm dst, String uri) throws IOException {
        if (dst.isQemu()) {
            dst.cmd("migrate-incoming", "uri", uri);
        } else {
            dst.cmd("migrate-incoming", "uri", uri, "exit-on-error", false);
        }
    }

    /** QEMU's migrate_ensure_converge: 30 MB/s, a 30 s downtime limit. */
    private static void ensureConverge(QmpVm src) throws IOException {
        src.params("max-bandwidth", 30_000_000L, "downtime-limit", 30_000L);
    }

    /** A destination's failed load: livemig's reports failed and stays; QEMU 7.2's exits with status 1. */
    private static void assertDestinationFailed(QmpVm dst) throws Exception {
        if (dst instanceof QemuVm q) {
            assertThat(q.awaitExit(LONG)).as(q.logText()).isEqualTo(1);
            assertThat(q.logText()).contains("load of migration failed");
        } else {
            dst.awaitStatus("failed", "completed");
            assertThat(dst.alive()).isTrue();
            assertThat(dst.runState()).isEqualTo("inmigrate");
        }
    }

    /**
     * A new migration from {@code src} (after {@code cont} if its guest had migrated away, as
     * QEMU requires) to a new destination started with -S completes; the destination's guest then
     * waits paused if the source's ran (else in the source's state, as QEMU's does), and with
     * livemig both machines verify: the same RAM and devices, the A-B property.
     */
    private void newMigrationVerifies(String backend, QmpVm src) throws Exception {
        if (src.runState().equals("postmigrate")) {
            assertThat(src.request("migrate", "uri", uri("refused")).get("error").get("desc").asString())
                    .isEqualTo("Can't migrate the vm that was paused due to previous migration");
            src.cmd("cont");
        }
        String before = src.runState();
        for (String cap : List.of("pause-before-switchover", "multifd")) {
            src.cmd("migrate-set-capabilities", "capabilities", QmpJson.NODES.arrayNode()
                    .add(QmpClient.args("capability", cap, "state", false)));
        }
        QmpVm dst = vm(backend, "dst2", true, false);
        ensureConverge(src);
        incoming(dst, uri("again"));
        src.cmd("migrate", "uri", uri("again"));
        src.awaitStatus("completed", "failed", "cancelled");
        dst.awaitStatus("completed", "failed");
        assertThat(src.runState()).isEqualTo("postmigrate");
        assertThat(dst.runState()).isEqualTo(before.equals("running") ? "paused" : before);
        if (src instanceof LivemigVm s && dst instanceof LivemigVm d) {
            ObjectNode fs = s.fingerprint();
            ObjectNode fd = d.fingerprint();
            assertThat(fd.get("ram")).isEqualTo(fs.get("ram"));
            assertThat(fd.get("devices")).isEqualTo(fs.get("devices"));
            assertThat(fd.get("ab-check").get("ok").asBoolean()).as(fd.toString()).isTrue();
        }
        dst.cmd("cont");
        assertThat(dst.runState()).isEqualTo("running");
    }

    /**
     * {@code cancel/src/after/PHASE}: migrate_cancel on the source once its migration reached
     * PHASE (its MIGRATION event): the source's status and run state afterwards, the
     * destination's end, as QEMU's qtests expect them and QEMU 7.2 does; then a new migration
     * from the same source completes and verifies.
     */
    @ParameterizedTest(name = "{0}: cancel/src/after/{1}")
    @CsvSource({"livemig, none", "livemig, setup", "livemig, active", "livemig, pre-switchover", "livemig, cancelling",
            "livemig, cancelled", "livemig, completed", "livemig, failed",
            "qemu, none", "qemu, setup", "qemu, pre-switchover", "qemu, cancelling", "qemu, cancelled", "qemu, completed",
            "qemu, failed"})
    void cancelSrcAfter(String backend, String phase) throws Exception {
        QmpVm src = vm(backend, "src", false);
        QmpVm dst = vm(backend, "dst", true);
        src.caps("events");
        String uri = uri("mig");
        switch (phase) {
            case "none" -> {
                // Cancelling with no migration changes nothing on either side.
                dst.cmd("migrate_cancel");
                src.cmd("migrate_cancel");
                assertThat(src.cmd("query-migrate").size()).as("QEMU's query-migrate before any migration is {}").isZero();
                assertThat(src.runState()).isEqualTo("running");
                assertThat(dst.runState()).isEqualTo("inmigrate");
                incoming(dst, uri);
                ensureConverge(src);
                src.cmd("migrate", "uri", uri);
                src.awaitStatus("completed", "failed", "cancelled");
                dst.awaitStatus("completed", "failed");
                assertThat(dst.runState()).isEqualTo("running");
                return; // the migration after the cancel was this case's new migration
            }
            case "setup", "active", "pre-switchover" -> {
                for (QmpVm v : List.of(src, dst)) {
                    v.caps("pause-before-switchover", "multifd");
                }
                incoming(dst, uri);
                ensureConverge(src);
                src.cmd("migrate", "uri", uri);
                src.awaitMigrationEvent(phase);
                src.cmd("migrate_cancel");
                src.awaitMigrationEvent("cancelling");
                src.awaitStatus("cancelled", "completed");
                assertDestinationFailed(dst);
            }
            case "cancelling", "cancelled" -> {
                incoming(dst, uri);
                ensureConverge(src);
                src.cmd("migrate", "uri", uri);
                src.cmd("migrate_cancel"); // to move it to cancelling, then cancelled
                src.awaitMigrationEvent(phase);
                src.cmd("migrate_cancel"); // the migrate_cancel under test
                src.awaitStatus("cancelled", "completed");
                assertDestinationFailed(dst);
            }
            case "completed" -> {
                incoming(dst, uri);
                ensureConverge(src);
                src.cmd("migrate", "uri", uri);
                src.awaitMigrationEvent("completed");
                src.cmd("migrate_cancel");
                // A migration no longer running is not cancelled: it stays completed.
                assertThat(src.migrationStatus()).isEqualTo("completed");
                dst.awaitStatus("completed", "failed");
                assertThat(src.sawMigration("cancelling")).isFalse();
                assertThat(src.runState()).isEqualTo("postmigrate");
                assertThat(dst.runState()).isEqualTo("running");
                newMigrationVerifies(backend, src);
                return;
            }
            case "failed" -> {
                // No migrate-incoming: the source fails to connect.
                src.cmd("migrate", "uri", uri);
                src.awaitStatus("failed", "completed");
                src.cmd("migrate_cancel");
                assertThat(src.migrationStatus()).as("cancelling does not move it out of failed").isEqualTo("failed");
                assertThat(src.sawMigration("cancelling")).isFalse();
                assertThat(dst.migrationStatus()).isEqualTo("none");
                assertThat(dst.runState()).isEqualTo("inmigrate");
            }
            default -> throw new IllegalArgumentException(phase);
        }
        assertThat(src.runState()).as("the source runs its guest again").isEqualTo("running");
        newMigrationVerifies(backend, src);
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }

    /**
     * {@code precopy/tcp/plain} with the source stopped: the destination completes with the guest
     * stopped (the globalstate section carries the source's run state), {@code cont} there
     * starts it, and it runs.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"livemig", "qemu"})
    void precopyTcpPlainWithTheSourceStoppedThenContOnTheDestination(String backend) throws Exception {
        QmpVm src = vm(backend, "src", false);
        QmpVm dst = vm(backend, "dst", true);
        for (QmpVm v : List.of(src, dst)) {
            v.caps("events");
        }
        String uri = "tcp:127.0.0.1:" + freePort();
        src.cmd("stop");
        incoming(dst, uri);
        ensureConverge(src);
        src.cmd("migrate", "uri", uri);
        src.awaitStatus("completed", "failed", "cancelled");
        dst.awaitStatus("completed", "failed");
        assertThat(src.runState()).isEqualTo("postmigrate");
        assertThat(dst.runState()).isEqualTo("paused");
        assertThat(dst.count("RESUME")).isZero();
        if (src instanceof LivemigVm s && dst instanceof LivemigVm d) {
            assertThat(d.fingerprint().get("ram")).isEqualTo(s.fingerprint().get("ram"));
        }
        String ramBefore = dst instanceof LivemigVm d ? d.ramHash() : null;
        dst.cmd("cont");
        assertThat(dst.runState()).isEqualTo("running");
        await().atMost(LONG).until(() -> dst.count("RESUME") == 1);
        if (dst instanceof LivemigVm d) {
            // The guest runs: its A-B workload writes RAM, and A-B still holds when it stops.
            await().atMost(LONG).until(() -> !d.ramHash().equals(ramBefore));
            d.cmd("stop");
            assertThat(d.fingerprint().get("ab-check").get("ok").asBoolean()).isTrue();
        }
    }

    /**
     * {@code bad_dest}: migrate to an address where nothing listens fails, the source keeps
     * running, and a second migrate to a good address completes and verifies.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"livemig", "qemu"})
    void badDest(String backend) throws Exception {
        QmpVm src = vm(backend, "src", false);
        src.caps("events");
        int port = freePort();
        src.cmd("migrate", "uri", "tcp:127.0.0.1:" + port);
        src.awaitStatus("failed", "completed");
        assertThat(src.cmd("query-migrate").path("error-desc").asString())
                .isEqualTo("Failed to connect to '127.0.0.1:" + port + "': Connection refused");
        assertThat(src.runState()).isEqualTo("running");
        newMigrationVerifies(backend, src);
    }

    /** One look at a migrating source: its dirty-sync-count, throttle and run state. */
    private record Sample(long syncs, int throttle, String runState, String status) {}

    /**
     * {@code auto_converge}: a guest that dirties its RAM faster than the link sends it, with
     * auto-converge on and a downtime limit it cannot meet. The first pass runs unthrottled (no
     * throttle while dirty-sync-count is at most 2, QEMU's count); then the throttle starts at
     * cpu-throttle-initial and grows by cpu-throttle-increment up to max-cpu-throttle, never
     * beyond; the source's guest keeps running while throttled. Given a downtime limit it can
     * meet, the migration completes, and the destination holds the source's RAM with A-B intact.
     */
    @Test
    void autoConverge() throws Exception {
        LivemigVm src = LivemigVm.start(dir, LivemigVm.config("src", 8L << 20, "ab"), RunState.RUNNING);
        open.add(src);
        LivemigVm dst = LivemigVm.start(dir, LivemigVm.config("dst", 8L << 20, "ab"), RunState.INMIGRATE);
        open.add(dst);
        dst.migration.setAutostart(false); // -S: its RAM is compared with the source's below
        src.caps("auto-converge");
        src.params("cpu-throttle-initial", 5, "cpu-throttle-increment", 5, "max-cpu-throttle", 15,
                "max-bandwidth", 16L << 20, "downtime-limit", 1);
        incoming(dst, uri("mig"));
        src.cmd("migrate", "uri", uri("mig"));
        List<Sample> samples = new ArrayList<>();
        // Sample until the throttle has stood at its maximum for two more syncs.
        await().atMost(LONG).pollInterval(Duration.ofMillis(10)).until(() -> {
            JsonNode q = src.cmd("query-migrate");
            Sample now = new Sample(q.path("ram").path("dirty-sync-count").asLong(), q.path("cpu-throttle-percentage").asInt(0),
                    src.runState(), q.path("status").asString());
            samples.add(now);
            assertThat(now.status()).as("cannot converge yet").isEqualTo("active");
            var firstAtMax = samples.stream().filter(x -> x.throttle() == 15).mapToLong(Sample::syncs).min();
            return firstAtMax.isPresent() && now.syncs() >= firstAtMax.getAsLong() + 2;
        });
        assertThat(samples).as("first pass unthrottled").filteredOn(x -> x.syncs() <= 2).isNotEmpty()
                .allMatch(x -> x.throttle() == 0);
        List<Integer> levels = samples.stream().map(Sample::throttle).filter(t -> t > 0).distinct().toList();
        assertThat(levels).as("initial, then increments, capped").containsExactly(5, 10, 15);
        for (int i = 1; i < samples.size(); i++) {
            assertThat(samples.get(i).throttle()).as("never decreases").isGreaterThanOrEqualTo(samples.get(i - 1).throttle());
        }
        assertThat(samples).as("the source runs its guest while throttled").allMatch(x -> x.runState().equals("running"));
        // A limit it can meet: it converges, and the throttle is lifted.
        src.params("downtime-limit", 30_000L, "max-bandwidth", 0);
        src.awaitStatus("completed", "failed", "cancelled");
        dst.awaitStatus("completed", "failed");
        assertThat(src.cmd("query-migrate").has("cpu-throttle-percentage")).isFalse();
        assertThat(src.machine.throttlePercent()).isZero();
        ObjectNode fd = dst.fingerprint();
        assertThat(fd.get("ram")).isEqualTo(src.fingerprint().get("ram"));
        assertThat(fd.get("ab-check").get("ok").asBoolean()).as(fd.toString()).isTrue();
    }

    private static boolean listsMigration(QmpVm v) throws IOException {
        for (JsonNode i : v.cmd("query-yank")) {
            if (i.path("type").asString().equals("migration")) {
                return true;
            }
        }
        return false;
    }

    /**
     * {@code query-yank}, {@code yank} and {@code migrate_cancel} sent over QMP: the migration
     * instance exists from migrate-incoming (a destination still listening has it, and a yank
     * there leaves it listening) and from migrate, until the migration ends; yanking a running
     * migration fails it on both sides with the source running; migrate_cancel cancels the next
     * one; QEMU 7.2 lists the same instances at the same moments.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"livemig", "qemu"})
    void migrateCancelYankAndQueryYankOverQmp(String backend) throws Exception {
        QmpVm src = vm(backend, "src", false);
        QmpVm dst = vm(backend, "dst", true);
        assertThat(listsMigration(src)).isFalse();
        assertThat(src.request("yank", "instances", QmpJson.NODES.arrayNode().add(QmpClient.args("type", "migration")))
                .get("error").toString()).isEqualTo("{\"class\":\"DeviceNotFound\",\"desc\":\"Instance not found\"}");
        incoming(dst, uri("mig"));
        assertThat(listsMigration(dst)).as("a listening destination").isTrue();
        dst.yankMigration();
        assertThat(listsMigration(dst)).as("still listening after a yank").isTrue();
        // At 20 kB/s it runs while we look (QEMU's mostly zero RAM is about 100 kB on the wire).
        src.params("max-bandwidth", 20_000L);
        src.cmd("migrate", "uri", uri("mig"));
        src.awaitStatus("active", "failed", "completed");
        dst.awaitStatus("active", "failed", "completed");
        assertThat(listsMigration(src)).isTrue();
        assertThat(listsMigration(dst)).isTrue();
        src.yankMigration();
        src.awaitStatus("failed", "completed", "cancelled");
        assertThat(src.runState()).isEqualTo("running");
        assertThat(listsMigration(src)).as("gone with the migration").isFalse();
        assertDestinationFailed(dst);
        // migrate_cancel, over QMP, on the next one.
        QmpVm dst2 = vm(backend, "dst-cancel", true);
        incoming(dst2, uri("mig2"));
        src.cmd("migrate", "uri", uri("mig2"));
        src.awaitStatus("active", "failed", "completed");
        src.cmd("migrate_cancel");
        src.awaitStatus("cancelled", "completed", "failed");
        assertThat(src.runState()).isEqualTo("running");
        assertThat(listsMigration(src)).isFalse();
        assertDestinationFailed(dst2);
        newMigrationVerifies(backend, src);
    }

    /** Requests that must get exactly QEMU 7.2's reply on a source that has never migrated. */
    private static final List<String> SOURCE_MISTAKES = List.of(
            "{\"execute\": \"migrate\"}",
            "{\"execute\": \"migrate\", \"arguments\": {}}",
            "{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"\"}}",
            "{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"foo:bar\"}}",
            "{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"tcp:\"}}",
            "{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"tcp:127.0.0.1\"}}",
            "{\"execute\": \"migrate\", \"arguments\": {\"uri\": 42}}",
            "{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"tcp:127.0.0.1:1\", \"bogus\": 1}}",
            "{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"tcp:127.0.0.1:1\", \"resume\": true}}",
            "{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"tcp:127.0.0.1:1\", \"detach\": \"yes\"}}",
            "{\"execute\": \"migrate-incoming\", \"arguments\": {\"uri\": \"tcp:127.0.0.1:0\"}}",
            "{\"execute\": \"migrate-continue\", \"arguments\": {\"state\": \"pre-switchover\"}}",
            "{\"execute\": \"migrate-continue\", \"arguments\": {\"state\": \"bogus\"}}",
            "{\"execute\": \"migrate-start-postcopy\"}",
            "{\"execute\": \"migrate-pause\"}",
            "{\"execute\": \"migrate-recover\", \"arguments\": {\"uri\": \"tcp:127.0.0.1:0\"}}",
            "{\"execute\": \"migrate_cancel\"}",
            "{\"execute\": \"yank\", \"arguments\": {\"instances\": [{\"type\": \"migration\"}]}}",
            "{\"execute\": \"yank\", \"arguments\": {\"instances\": []}}",
            "{\"execute\": \"query-migrate\"}",
            "{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"unix:\"}}",
            "{\"execute\": \"query-migrate\"}");

    /** The same on a destination waiting with -incoming defer. */
    private static final List<String> DESTINATION_MISTAKES = List.of(
            "{\"execute\": \"migrate-incoming\"}",
            "{\"execute\": \"migrate-incoming\", \"arguments\": {\"uri\": \"\"}}",
            "{\"execute\": \"migrate-incoming\", \"arguments\": {\"uri\": \"foo:bar\"}}",
            "{\"execute\": \"migrate-incoming\", \"arguments\": {\"uri\": \"tcp:\"}}",
            "{\"execute\": \"migrate-incoming\", \"arguments\": {\"uri\": \"unix:\"}}",
            "{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"tcp:127.0.0.1:1\"}}",
            "{\"execute\": \"migrate-recover\", \"arguments\": {\"uri\": \"tcp:127.0.0.1:0\"}}",
            "{\"execute\": \"migrate-incoming\", \"arguments\": {\"uri\": \"tcp:127.0.0.1:0\"}}",
            "{\"execute\": \"migrate-incoming\", \"arguments\": {\"uri\": \"tcp:127.0.0.1:0\"}}");

    /**
     * {@code validate}: migrate, migrate-incoming and the other migration commands with missing,
     * mistyped or out-of-place arguments answer as QEMU 7.2 answers, word for word, on a source
     * and on a destination.
     */
    @Test
    void validateAnswersAsQemu72() throws Exception {
        QmpVm qemuSrc = vm("qemu", "qsrc", false);
        QmpVm qemuDst = vm("qemu", "qdst", true);
        QmpVm ourSrc = vm("livemig", "src", false);
        QmpVm ourDst = vm("livemig", "dst", true);
        List<String> differences = new ArrayList<>();
        compare(SOURCE_MISTAKES, qemuSrc, ourSrc, differences);
        compare(DESTINATION_MISTAKES, qemuDst, ourDst, differences);
        assertThat(differences).isEmpty();
    }

    private static void compare(List<String> requests, QmpVm qemu, QmpVm ours, List<String> differences) throws Exception {
        for (String r : requests) {
            ObjectNode request = (ObjectNode) QmpJson.parse(r);
            String command = request.get("execute").asString();
            ObjectNode args = request.has("arguments") ? (ObjectNode) request.get("arguments") : null;
            String theirs = normalize(qemu.qmp.request(command, args));
            String mine = normalize(ours.qmp.request(command, args));
            if (!theirs.equals(mine)) {
                differences.add(r + "\n  QEMU:    " + theirs + "\n  livemig: " + mine);
            }
        }
    }

    /** A reply as compared: errors whole; a query-migrate's status and error only; anything else "return". */
    private static String normalize(ObjectNode reply) {
        if (reply.has("error")) {
            return reply.get("error").toString();
        }
        JsonNode r = reply.get("return");
        if (r.isObject() && (r.has("status") || r.has("socket-address") || r.isEmpty())) {
            return "status " + r.path("status").asString("none") + " " + r.path("error-desc").asString("");
        }
        return "return";
    }
}
