package org.livemig.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.livemig.monitor.QmpClient;
import picocli.CommandLine;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.ObjectMapper;
import tools.jackson.databind.node.ObjectNode;

/** Source and destination as two {@code livemig run} processes, driven over QMP as QEMU is. */
class TwoProcessTest {
    private static final Duration LONG = Duration.ofSeconds(120);
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    private static MachineOptions machine(String ram, String workload, String fill) {
        MachineOptions m = new MachineOptions();
        m.ram = ram;
        m.vcpus = 2;
        m.workload = workload;
        m.fill = fill;
        m.blobSize = "64K";
        m.seed = 5;
        return m;
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"tcp", "unix"})
    void demoMigratesAnAbGuestAndVerifies(String transport) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        PrintStream old = System.out;
        int rc;
        try {
            System.setOut(new PrintStream(out, true));
            rc = new CommandLine(new Main()).execute("demo", "--ram", "64M", "--transport", transport, "--json",
                    "--run-before-ms", "300");
        } finally {
            System.setOut(old);
        }
        JsonNode r = JSON.readTree(out.toString().lines().filter(l -> l.startsWith("{")).reduce((a, b) -> b).orElseThrow());
        assertThat(rc).as(r.toString()).isZero();
        assertThat(r.get("verified").asBoolean()).as(r.toString()).isTrue();
        assertThat(r.get("source").get("status").asString()).isEqualTo("completed");
        assertThat(r.get("destination").get("status").asString()).isEqualTo("completed");
        assertThat(r.get("source").get("downtime").asLong()).isLessThan(300);
        assertThat(r.get("checks").get("ab-check").asBoolean()).isTrue();
        assertThat(r.get("checks").get("destination-run-state").asString()).isEqualTo("running");
    }

    /**
     * With --multifd the two processes set the capability and multifd-channels over QMP, as
     * QEMU's users do; the pages go over the channels and the destination verifies.
     */
    @Test
    void demoOverMultifdChannelsVerifies() {
        int[] rc = new int[1];
        JsonNode r = demoJson(rc, "demo", "--ram", "64M", "--multifd", "3", "--json", "--run-before-ms", "300");
        assertThat(rc[0]).as(r.toString()).isZero();
        assertThat(r.get("verified").asBoolean()).as(r.toString()).isTrue();
        JsonNode ram = r.get("source").get("ram");
        assertThat(ram.get("multifd-bytes").asLong()).as(r.toString())
                .isGreaterThanOrEqualTo(ram.get("normal").asLong() * 4096);
        assertThat(r.get("destination").get("status").asString()).isEqualTo("completed");
    }

    /**
     * demo --device with --switchover-ack over 2 multifd channels: both processes get the
     * accelerator, the source waits for the destination's ack, the device's final state goes in
     * device-state packets, and the fingerprints (the device's memory among them) agree.
     */
    @Test
    void demoWithAnAcceleratorSwitchoverAckAndMultifdVerifies() {
        int[] rc = new int[1];
        JsonNode r = demoJson(rc, "demo", "--ram", "32M", "--device", "acc0,size=16M,dirty-rate=16", "--multifd", "2",
                "--switchover-ack", "--json", "--run-before-ms", "300", "--timeout", "120");
        assertThat(rc[0]).as(r.toString()).isZero();
        assertThat(r.get("verified").asBoolean()).as(r.toString()).isTrue();
        JsonNode src = r.get("source");
        assertThat(src.get("x-switchover-ack").asString()).as(r.toString()).isEqualTo("acked");
        JsonNode dev = src.get("x-iterative-devices").get(0);
        assertThat(dev.get("name").asString()).isEqualTo("acc0");
        assertThat(dev.get("transferred").asLong()).as(r.toString()).isGreaterThanOrEqualTo(16L << 20);
        assertThat(dev.get("final-state-over-multifd").asBoolean()).as(r.toString()).isTrue();
        assertThat(r.get("checks").get("devices-equal").asBoolean()).isTrue();
    }

    /** demo --colo: two processes reach colo, take checkpoints, one side fails over and verifies. */
    @org.junit.jupiter.params.ParameterizedTest(name = "{0} survives")
    @org.junit.jupiter.params.provider.ValueSource(strings = {"secondary", "primary"})
    void demoColoFailsOverAndTheSurvivorVerifies(String survivor) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        PrintStream old = System.out;
        int rc;
        try {
            System.setOut(new PrintStream(out, true));
            rc = new CommandLine(new Main()).execute("demo", "--colo", "--colo-failover", survivor, "--ram", "64M",
                    "--workload", "ab:20000,print", "--checkpoints", "3", "--checkpoint-delay", "100", "--timeout", "120");
        } finally {
            System.setOut(old);
        }
        String text = out.toString();
        assertThat(rc).as(text).isZero();
        assertThat(text).contains("primary primary, secondary secondary", "checkpoint 3:",
                "failover: the " + survivor + " runs alone", "\"last-mode\":\"" + survivor + "\"", "survivor verified: true");
    }

    private static JsonNode demoJson(int[] rc, String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        PrintStream old = System.out;
        try {
            System.setOut(new PrintStream(out, true));
            rc[0] = new CommandLine(new Main()).execute(args);
        } finally {
            System.setOut(old);
        }
        return JSON.readTree(out.toString().lines().filter(l -> l.startsWith("{")).reduce((a, b) -> b).orElseThrow());
    }

    /**
     * A guest dirtying 64 MiB/s against 16 MiB/s of bandwidth never converges under precopy; the
     * demo switches to postcopy right after the first pass (on its MIGRATION_PASS event, so every
     * run sends the same one pass first), the destination's guest runs and pulls its
     * pages, and every page it has not written since equals the source's. Optionally the
     * postcopy channel is broken (migrate-pause, out-of-band over QMP) and recovered on a new
     * address (migrate-recover, migrate resume=true).
     */
    @ParameterizedTest(name = "{0}, pause {1}")
    @org.junit.jupiter.params.provider.CsvSource({"checked, false", "userfaultfd, false", "checked, true", "userfaultfd, true"})
    void demoPostcopyCompletesANonConvergingGuestAndVerifies(String backend, boolean pause) {
        if (backend.equals("userfaultfd")) {
            var a = org.livemig.memory.postcopy.PostcopyBackend.userfaultfdAvailability();
            org.junit.jupiter.api.Assumptions.assumeTrue(a.available(), "userfaultfd unavailable: " + a.reason());
        }
        java.util.List<String> args = new java.util.ArrayList<>(java.util.List.of("demo", "--postcopy",
                "--postcopy-backend", backend, "--ram", "64M", "--fill", "random", "--workload", "random-writes:64",
                "--max-bandwidth", "16M", "--json", "--run-before-ms", "300"));
        if (pause) {
            args.add("--postcopy-pause");
        }
        int[] rc = new int[1];
        JsonNode r = demoJson(rc, args.toArray(String[]::new));
        assertThat(rc[0]).as(r.toString()).isZero();
        assertThat(r.get("verified").asBoolean()).as(r.toString()).isTrue();
        assertThat(r.get("source").get("status").asString()).isEqualTo("completed");
        assertThat(r.get("destination").get("status").asString()).isEqualTo("completed");
        assertThat(r.get("destination").get("x-postcopy-backend").asString()).isEqualTo(backend);
        assertThat(r.get("source").get("ram").get("postcopy-bytes").asLong()).isPositive();
        // As its help says, the switch comes right after the first precopy pass: one pass of the
        // 64 MiB of random RAM went before it (not none, not two), and little more.
        long precopy = r.get("source").get("ram").get("precopy-bytes").asLong();
        assertThat(precopy).as("precopy bytes").isBetween(64L << 20, (64L << 20) * 5 / 4);
        assertThat(r.get("checks").get("pages-differing").asLong()).isZero();
        assertThat(r.get("checks").get("pages-compared").asLong()).isPositive();
        if (pause) {
            assertThat(r.get("checks").get("postcopy-paused-and-recovered").asBoolean()).isTrue();
        }
    }

    private static int freePort() throws Exception {
        try (java.net.ServerSocket s = new java.net.ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }

    private static String status(QmpSide side) throws Exception {
        return side.queryMigrate().path("status").asString();
    }

    @Test
    void destinationKilledMidMigrationLeavesTheSourceRunningAndIntact() throws Exception {
        try (QmpSide src = QmpSide.start(machine("64M", "idle", "random"), false, dir, "src");
             QmpSide dst = QmpSide.start(machine("64M", "idle", "zero"), true, dir, "dst")) {
            String ramBefore = src.fingerprint().get("ram").toString();
            ObjectNode p = JSON.createObjectNode();
            p.put("max-bandwidth", 8L << 20);
            src.setParameters(p);
            String uri = "tcp:127.0.0.1:" + freePort();
            dst.migrateIncoming(uri);
            src.migrate(uri);
            await().atMost(LONG).until(() -> src.queryMigrate().path("ram").path("transferred").asLong() > (4L << 20));
            dst.process().destroyForcibly();
            await().atMost(LONG).until(() -> status(src).equals("failed"));
            assertThat(src.status()).isEqualTo("running");
            assertThat(src.fingerprint().get("ram").toString()).isEqualTo(ramBefore);
        }
    }

    @Test
    void sourceKilledMidMigrationMakesTheDestinationExitWithStatus1() throws Exception {
        try (QmpSide src = QmpSide.start(machine("64M", "idle", "random"), false, dir, "src");
             QmpSide dst = QmpSide.start(machine("64M", "idle", "zero"), true, dir, "dst")) {
            ObjectNode p = JSON.createObjectNode();
            p.put("max-bandwidth", 8L << 20);
            src.setParameters(p);
            String uri = "tcp:127.0.0.1:" + freePort();
            dst.migrateIncoming(uri); // exit-on-error defaults to true, as in QEMU
            src.migrate(uri);
            await().atMost(LONG).until(() -> status(dst).equals("active"));
            src.process().destroyForcibly();
            assertThat(dst.process().waitFor(60, TimeUnit.SECONDS)).isTrue();
            assertThat(dst.process().exitValue()).isEqualTo(1);
        }
    }

    @Test
    void withoutExitOnErrorTheDestinationCleansUpAndTakesANewMigration() throws Exception {
        try (QmpSide dst = QmpSide.start(machine("64M", "ab:20000", "zero"), true, dir, "dst")) {
            String uri1 = "tcp:127.0.0.1:" + freePort();
            try (QmpSide src = QmpSide.start(machine("64M", "ab:20000", "random"), false, dir, "src1")) {
                ObjectNode p = JSON.createObjectNode();
                p.put("max-bandwidth", 8L << 20);
                src.setParameters(p);
                dst.qmp().execute("migrate-incoming", QmpClient.args("uri", uri1, "exit-on-error", false));
                // While the incoming migration runs, capabilities and parameters are refused.
                src.migrate(uri1);
                await().atMost(LONG).until(() -> status(dst).equals("active"));
                assertThat(dst.qmp().request("migrate-set-parameters", QmpClient.args("downtime-limit", 100))
                        .path("error").path("class").asString()).isEqualTo("GenericError");
                ObjectNode caps = JSON.createObjectNode();
                caps.putArray("capabilities").addObject().put("capability", "events").put("state", true);
                JsonNode refused = dst.qmp().request("migrate-set-capabilities", caps).path("error");
                assertThat(refused.path("class").asString()).isEqualTo("GenericError");
                assertThat(refused.path("desc").asString()).contains("migration process in progress");
                // The source, as QEMU's, takes new parameters while it migrates.
                assertThat(src.qmp().request("migrate-set-parameters", QmpClient.args("max-bandwidth", 4L << 20))
                        .has("error")).isFalse();
                assertThat(src.qmp().execute("query-migrate-parameters").path("max-bandwidth").asLong())
                        .isEqualTo(4L << 20);
                src.process().destroyForcibly();
                await().atMost(LONG).until(() -> status(dst).equals("failed"));
                assertThat(dst.queryMigrate().path("error-desc").asString()).contains("offset");
            }
            assertThat(dst.process().isAlive()).isTrue();
            try (QmpSide src = QmpSide.start(machine("64M", "ab:20000", "random"), false, dir, "src2")) {
                src.setCapabilities(Map.of("events", true));
                ObjectNode unlimited = JSON.createObjectNode();
                unlimited.put("max-bandwidth", 0);
                src.setParameters(unlimited);
                String uri2 = "tcp:127.0.0.1:" + freePort();
                await().atMost(LONG).ignoreExceptions().until(() -> {
                    dst.migrateIncoming(uri2);
                    return true;
                });
                src.migrate(uri2);
                await().atMost(LONG).until(() -> status(src).equals("completed"));
                await().atMost(LONG).until(() -> status(dst).equals("completed"));
                assertThat(src.qmp().waitForEvent("MIGRATION", e -> e.path("data").path("status").asString().equals("completed"),
                        Duration.ofSeconds(10))).isNotNull();
                JsonNode fd = dst.fingerprint();
                assertThat(fd.get("ram")).isEqualTo(src.fingerprint().get("ram"));
                assertThat(fd.get("ab-check").get("ok").asBoolean()).isTrue();
            }
        }
    }
}
