package org.livemig.migration;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogRecord;
import java.util.logging.Logger;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;
import org.livemig.machine.RunState;

/**
 * Numeric parameters at their limits, as a new user sets them: 0, 1 and the largest values QEMU
 * 7.2 takes (100 GiB/s, which scripts use to mean "unthrottled", 2^63-1 and 2^64-1 bytes/s). No
 * setting may leave a migration active for ever with nothing sent.
 */
class ParameterLimitsTest {
    private static final Duration LONG = Duration.ofSeconds(60);

    @ParameterizedTest(name = "max-bandwidth {0}")
    @ValueSource(longs = {0, 107374182400L, Long.MAX_VALUE, -1 /* 2^64-1 over QMP */, 1L << 40})
    void aHugeOrZeroBandwidthMigratesAtFullSpeed(long maxBandwidth) throws Exception {
        try (PrecopyTest.Pair p = PrecopyTest.Pair.of(TestMachines.small("idle").withRam(16L << 20).withFill(
                org.livemig.machine.Machine.Fill.RANDOM))) {
            p.params(m -> m.maxBandwidth = maxBandwidth);
            Outgoing o = p.migrate(p.listen("tcp:127.0.0.1:0"));
            await().atMost(LONG).until(() -> o.status().isFinal());
            assertThat(o.status()).as(String.valueOf(o.error())).isEqualTo(MigrationStatus.COMPLETED);
            PrecopyTest.assertVerified(p);
        }
    }

    /**
     * One byte per second is as slow as a limit gets: the migration still sends (a record per
     * rate window), answers query-migrate, and completes once the limit is lifted mid-migration.
     */
    @Test
    void oneBytePerSecondStillSendsAndALiftedLimitCompletes() throws Exception {
        try (PrecopyTest.Pair p = PrecopyTest.Pair.of(TestMachines.small("idle").withRam(4L << 20))) {
            p.params(m -> m.maxBandwidth = 1);
            Outgoing o = p.migrate(p.listen("tcp:127.0.0.1:0"));
            await().atMost(LONG).until(() -> p.srcMig().queryMigrate().path("ram").path("transferred").asLong() > 0);
            assertThat(o.status()).isEqualTo(MigrationStatus.ACTIVE);
            p.params(m -> m.maxBandwidth = 0);
            await().atMost(LONG).until(() -> o.status().isFinal());
            assertThat(o.status()).isEqualTo(MigrationStatus.COMPLETED);
        }
    }

    /**
     * downtime-limit at its limits: 0 still completes a guest that dirties nothing (nothing is
     * left after a pass); 2000 s lets a busy guest switch over at once, however much is left.
     */
    @ParameterizedTest(name = "downtime-limit {0}")
    @ValueSource(longs = {0, MigrationParameters.MAX_DOWNTIME_LIMIT})
    void downtimeLimitAtItsLimitsCompletes(long limit) throws Exception {
        String workload = limit == 0 ? "idle" : "random-writes:64";
        try (PrecopyTest.Pair p = PrecopyTest.Pair.of(TestMachines.small(workload).withRam(16L << 20))) {
            p.params(m -> {
                m.maxBandwidth = 0;
                m.downtimeLimit = limit;
            });
            Outgoing o = p.migrate(p.listen("tcp:127.0.0.1:0"));
            await().atMost(LONG).until(() -> o.status().isFinal());
            assertThat(o.status()).as(String.valueOf(o.error())).isEqualTo(MigrationStatus.COMPLETED);
            PrecopyTest.assertVerified(p);
        }
    }

    @Test
    void postcopyBandwidthAtItsLimitsIsAccepted() throws Exception {
        MigrationParameters p = new MigrationParameters();
        for (long v : new long[] {0, 1, 107374182400L, Long.MAX_VALUE, -1}) {
            p.maxPostcopyBandwidth = v;
            p.maxBandwidth = v;
            p.validate();
        }
        p.downtimeLimit = MigrationParameters.MAX_DOWNTIME_LIMIT;
        p.validate();
        p.downtimeLimit = 0;
        p.validate();
    }

    @Test
    void outOfRangeValuesAreRefusedWithQemusTexts() {
        record Case(java.util.function.Consumer<MigrationParameters> set, String message) {}
        List<Case> cases = List.of(
                new Case(p -> p.downtimeLimit = MigrationParameters.MAX_DOWNTIME_LIMIT + 1,
                        "Parameter 'downtime_limit' expects an integer in the range of 0 to (2000 * 1000) ms"),
                new Case(p -> p.downtimeLimit = -1,
                        "Parameter 'downtime_limit' expects an integer in the range of 0 to (2000 * 1000) ms"),
                new Case(p -> p.cpuThrottleInitial = 0, "Parameter 'cpu_throttle_initial' expects an integer in the range of 1 to 99"),
                new Case(p -> p.cpuThrottleIncrement = 100,
                        "Parameter 'cpu_throttle_increment' expects an integer in the range of 1 to 99"),
                new Case(p -> p.maxCpuThrottle = 19,
                        "Parameter 'max_cpu_throttle' expects an integer in the range of cpu_throttle_initial to 99"),
                new Case(p -> p.throttleTriggerThreshold = 101,
                        "Parameter 'throttle_trigger_threshold' expects an integer in the range of 1 to 100"),
                new Case(p -> p.multifdChannels = 0, "Parameter 'multifd_channels' expects a value between 1 and 255"));
        for (Case c : cases) {
            MigrationParameters p = new MigrationParameters();
            c.set().accept(p);
            try {
                p.validate();
                throw new AssertionError("accepted: " + c.message());
            } catch (IllegalArgumentException e) {
                assertThat(e.getMessage()).isEqualTo(c.message());
            }
        }
    }

    /**
     * A migrate to an address where nothing listens: one WARNING line naming the cause, and the
     * stack trace only at FINE (debug).
     */
    @Test
    void aFailedMigrateLogsOneLineAndItsStackTraceOnlyAtDebug() throws Exception {
        Logger log = Logger.getLogger(Outgoing.class.getName());
        List<LogRecord> records = new ArrayList<>();
        Handler h = new Handler() {
            @Override
            public void publish(LogRecord r) {
                synchronized (records) {
                    records.add(r);
                }
            }

            @Override
            public void flush() {}

            @Override
            public void close() {}
        };
        Level before = log.getLevel();
        log.addHandler(h);
        log.setLevel(Level.FINE);
        try (org.livemig.machine.Machine m = TestMachines.booted(TestMachines.small("idle").withRam(4L << 20), RunState.RUNNING)) {
            Migration mig = new Migration(m);
            int port;
            try (java.net.ServerSocket s = new java.net.ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
                port = s.getLocalPort();
            }
            Outgoing o = m.mainLoop().call(() -> mig.migrate("tcp:127.0.0.1:" + port), 10_000);
            await().atMost(LONG).until(() -> o.status().isFinal());
            assertThat(o.status()).isEqualTo(MigrationStatus.FAILED);
            assertThat(m.runState()).isEqualTo(RunState.RUNNING);
        } finally {
            log.removeHandler(h);
            log.setLevel(before);
        }
        synchronized (records) {
            List<LogRecord> warnings = records.stream().filter(r -> r.getLevel() == Level.WARNING).toList();
            assertThat(warnings).hasSize(1);
            assertThat(warnings.getFirst().getMessage()).startsWith("outgoing migration failed: ").contains("127.0.0.1")
                    .doesNotContain("\n");
            assertThat(warnings.getFirst().getThrown()).as("no stack trace at WARNING").isNull();
            assertThat(records).anyMatch(r -> r.getLevel() == Level.FINE && r.getThrown() != null);
        }
    }
}
