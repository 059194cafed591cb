package org.livemig.migration;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.livemig.machine.MainLoop;
import org.livemig.machine.Machine;
import org.livemig.machine.RunState;
import org.livemig.transport.FaultSpec;
import tools.jackson.databind.node.ObjectNode;

/** In-process live migrations: a source and a destination machine in one JVM over real sockets. */
class PrecopyTest {
    private static final Duration LONG = Duration.ofSeconds(60);

    @TempDir
    Path dir;

    /** A source and a destination, the destination listening and not starting its guest after the load. */
    record Pair(Machine src, Migration srcMig, Machine dst, Migration dstMig) implements AutoCloseable {
        static Pair of(Machine.Config cfg) {
            Machine src = TestMachines.booted(cfg.withName("src"), RunState.RUNNING);
            Machine dst = TestMachines.booted(cfg.withName("dst").withFill(Machine.Fill.ZERO).withSeed(cfg.seed() + 11),
                    RunState.INMIGRATE);
            Migration dm = new Migration(dst);
            dm.setAutostart(false);
            return new Pair(src, new Migration(src), dst, dm);
        }

        String listen(String uri) throws Exception {
            return dst.mainLoop().call(() -> dstMig.migrateIncoming(uri, false), 10_000).boundAddress().uri();
        }

        Outgoing migrate(String uri) throws Exception {
            return src.mainLoop().call(() -> srcMig.migrate(uri), 10_000);
        }

        void params(java.util.function.Consumer<MigrationParameters> p) throws Exception {
            src.mainLoop().call(() -> {
                srcMig.setParameters(p);
                return null;
            }, 10_000);
        }

        void cap(Capability c) throws Exception {
            src.mainLoop().call(() -> {
                srcMig.setCapability(c, true);
                return null;
            }, 10_000);
        }

        @Override
        public void close() throws Exception {
            // Each close ends its machine's migration first (its threads joined).
            src.close();
            dst.close();
        }
    }

    static void assertVerified(Pair p) throws Exception {
        await().atMost(LONG).until(() -> p.dstMig.incoming().status() == MigrationStatus.COMPLETED);
        ObjectNode fs = TestMachines.fingerprint(p.src);
        ObjectNode fd = TestMachines.fingerprint(p.dst);
        assertThat(fd.get("ram")).isEqualTo(fs.get("ram"));
        assertThat(fd.get("devices")).isEqualTo(fs.get("devices"));
        if (fd.has("ab-check")) {
            assertThat(fd.get("ab-check").get("ok").asBoolean()).as(fd.toString()).isTrue();
        }
        assertThat(p.src.runState()).isEqualTo(RunState.POSTMIGRATE);
        assertThat(p.dst.runState()).isEqualTo(RunState.PAUSED);
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"tcp", "unix"})
    void abGuestMigratesLiveAndVerifies(String transport) throws Exception {
        try (Pair p = Pair.of(TestMachines.small("ab:50000").withRam(64L << 20))) {
            p.params(m -> m.maxBandwidth = 0);
            p.cap(Capability.RETURN_PATH);
            String uri = p.listen(transport.equals("tcp") ? "tcp:127.0.0.1:0" : "unix:" + dir.resolve("m.sock"));
            Outgoing o = p.migrate(uri);
            await().atMost(LONG).until(() -> o.status().isFinal());
            assertThat(o.status()).as(String.valueOf(o.error())).isEqualTo(MigrationStatus.COMPLETED);
            assertVerified(p);
            assertThat(o.downtimeMillis()).isLessThan(300);
            assertThat(o.ramStats().normalPages.get()).isPositive();
            assertThat(o.pongRoundTripNanos()).isPositive();
            ObjectNode q = p.srcMig.queryMigrate();
            assertThat(q.get("status").asString()).isEqualTo("completed");
            assertThat(q.get("ram").get("total").asLong()).isEqualTo(64L << 20);
        }
    }

    @Test
    void neverWrittenRamGoesOutUnscannedAndWritesDuringThatPassStillArrive() throws Exception {
        Machine.Config cfg = TestMachines.small("random-writes:4").withRam(32L << 20);
        Machine src = TestMachines.booted(cfg.withName("src"), RunState.PAUSED);
        Machine dst = TestMachines.booted(cfg.withName("dst").withSeed(99), RunState.INMIGRATE);
        Migration dm = new Migration(dst);
        dm.setAutostart(false);
        try (Pair p = new Pair(src, new Migration(src), dst, dm)) {
            assertThat(src.ram().isPristine()).isTrue();
            // 8192 ZERO records (73 KiB) at 32 KiB/s: the unscanned first pass lasts about 2 s.
            p.params(m -> m.maxBandwidth = 32L << 10);
            Outgoing o = p.migrate(p.listen("tcp:127.0.0.1:0"));
            await().atMost(LONG).until(() -> o.ramStats().zeroPages.get() > 0);
            // The guest writes while that pass is under way...
            src.mainLoop().runAndWait(src::vmStart);
            var block = src.ram().blocks().get(0);
            await().atMost(LONG).until(() -> block.dirtyBitmap().count() >= 64);
            src.mainLoop().runAndWait(() -> src.vmStop(RunState.PAUSED));
            assertThat(o.ramStats().dirtySyncCount.get()).as("still in the first pass (QEMU counts the setup sync)").isEqualTo(1);
            long written = block.dirtyBitmap().count();
            // ...then the link opens up (migrate-set-parameters during the migration) and it converges.
            p.params(m -> m.maxBandwidth = 0);
            await().atMost(LONG).until(() -> o.status().isFinal());
            assertThat(o.status()).as(String.valueOf(o.error())).isEqualTo(MigrationStatus.COMPLETED);
            assertThat(o.ramStats().normalPages.get()).as("pages written during the first pass went again")
                    .isGreaterThanOrEqualTo(written);
            assertVerified(p);
        }
    }

    @Test
    void aSwitchoverUnderAFlightRecordingEmitsItsPhases() throws Exception {
        try (jdk.jfr.Recording rec = new jdk.jfr.Recording();
             Pair p = Pair.of(TestMachines.small("idle").withRam(8L << 20))) {
            rec.enable("livemig.Switchover");
            rec.start();
            assertThat(org.livemig.trace.Trace.recording()).isTrue();
            Outgoing o = p.migrate(p.listen("tcp:127.0.0.1:0"));
            await().atMost(LONG).until(() -> o.status().isFinal());
            assertThat(o.status()).isEqualTo(MigrationStatus.COMPLETED);
            rec.stop();
            Path file = dir.resolve("switchover.jfr");
            rec.dump(file);
            var events = jdk.jfr.consumer.RecordingFile.readAllEvents(file).stream()
                    .filter(e -> e.getEventType().getName().equals("livemig.Switchover")).toList();
            assertThat(events).hasSize(1);
            var e = events.get(0);
            long phases = e.getLong("stopNanos") + e.getLong("devicesNanos") + e.getLong("ramNanos")
                    + e.getLong("flushNanos") + e.getLong("ackNanos");
            assertThat(e.getLong("downtimeNanos")).isEqualTo(phases).isPositive();
            // The event's downtime is the one query-migrate reports (whole milliseconds).
            assertThat(e.getLong("downtimeNanos") / 1_000_000).isBetween(o.downtimeMillis() - 1, o.downtimeMillis());
        }
    }

    @Test
    void fastDirtyingGuestDoesNotConvergeWithoutAutoConverge() throws Exception {
        try (Pair p = Pair.of(TestMachines.small("random-writes:200").withRam(16L << 20))) {
            p.params(m -> m.maxBandwidth = 8L << 20);
            Outgoing o = p.migrate(p.listen("tcp:127.0.0.1:0"));
            await().atMost(LONG).until(() -> o.passes() >= 4);
            assertThat(o.status()).isEqualTo(MigrationStatus.ACTIVE);
            assertThat(p.src.runState()).isEqualTo(RunState.RUNNING);
            p.srcMig.cancel();
            await().atMost(LONG).until(() -> o.status().isFinal());
            assertThat(o.status()).isEqualTo(MigrationStatus.CANCELLED);
            // The source keeps running after the cancel.
            assertThat(p.src.runState()).isEqualTo(RunState.RUNNING);
            assertThat(p.src.ram().dirtyLogging()).isFalse();
        }
    }

    @Test
    void autoConvergeThrottlesTheGuestUntilItConverges() throws Exception {
        // Random RAM: the first pass takes about 2 s at 8 MiB/s, so the guest has dirtied more than
        // a pass can send by its end however slowly a busy host runs its vCPUs (a zero-filled
        // guest's first pass went by in 0.2 s and sometimes converged with nothing to throttle).
        try (Pair p = Pair.of(TestMachines.small("random-writes:200").withRam(16L << 20).withFill(Machine.Fill.RANDOM))) {
            p.params(m -> {
                m.maxBandwidth = 8L << 20;
                m.cpuThrottleInitial = 60;
                m.cpuThrottleIncrement = 20;
            });
            p.cap(Capability.AUTO_CONVERGE);
            AtomicLong maxThrottle = new AtomicLong();
            Outgoing o = p.migrate(p.listen("tcp:127.0.0.1:0"));
            await().atMost(LONG).pollInterval(Duration.ofMillis(20)).until(() -> {
                maxThrottle.accumulateAndGet(o.throttlePercent(), Math::max);
                return o.status().isFinal();
            });
            assertThat(o.status()).as(String.valueOf(o.error())).isEqualTo(MigrationStatus.COMPLETED);
            assertThat(o.passes()).isGreaterThanOrEqualTo(2);
            assertThat(maxThrottle.get()).isGreaterThanOrEqualTo(60);
            assertVerified(p);
            assertThat(p.src.throttlePercent()).isZero();
        }
    }

    /** Max gap between ticks of a 5 ms main-loop timer while {@code during} runs. */
    private static long maxTickGapMillis(Machine m, ThrowingRunnable during) throws Exception {
        AtomicLong last = new AtomicLong(System.nanoTime());
        AtomicLong maxGap = new AtomicLong();
        MainLoop.Timer t = m.mainLoop().addPeriodicTimer(5, () -> {
            long now = System.nanoTime();
            maxGap.accumulateAndGet(now - last.getAndSet(now), Math::max);
        });
        try {
            during.run();
        } finally {
            t.cancel();
        }
        return maxGap.get() / 1_000_000;
    }

    interface ThrowingRunnable {
        void run() throws Exception;
    }

    @Test
    void destinationMainLoopTicksWhileTheSourceStallsInsideADeviceSection() throws Exception {
        // 8 MiB of zero RAM is a few dozen KiB on the wire; the 4 MiB blob device comes last, so
        // a stall after 2 MiB falls inside the blob's FULL section.
        Machine.Config cfg = TestMachines.small("idle").withRam(8L << 20).withBlobSize(4 << 20);
        try (Pair p = Pair.of(cfg)) {
            p.params(m -> m.maxBandwidth = 0);
            p.srcMig.setFaultInjection(FaultSpec.builder().stall(Duration.ofSeconds(2), 2L << 20).build(), FaultSpec.NONE);
            String uri = p.listen("tcp:127.0.0.1:0");
            long gap = maxTickGapMillis(p.dst, () -> {
                long t0 = System.nanoTime();
                Outgoing o = p.migrate(uri);
                await().atMost(LONG).until(() -> o.status().isFinal());
                assertThat(o.status()).isEqualTo(MigrationStatus.COMPLETED);
                assertThat(System.nanoTime() - t0).isGreaterThan(2_000_000_000L);
                await().atMost(LONG).until(() -> p.dstMig.incoming().status() == MigrationStatus.COMPLETED);
            });
            // QEMU before the seed would block its main loop for the whole 2 s stall.
            assertThat(gap).isLessThan(500);
            assertVerified(p);
        }
    }

    @Test
    void destinationMainLoopTicksWhileMigDstMainLoads() throws Exception {
        try (Pair p = Pair.of(TestMachines.small("random-writes:20").withRam(128L << 20).withFill(Machine.Fill.RANDOM))) {
            p.params(m -> m.maxBandwidth = 0);
            String uri = p.listen("tcp:127.0.0.1:0");
            long gap = maxTickGapMillis(p.dst, () -> {
                Outgoing o = p.migrate(uri);
                await().atMost(LONG).until(() -> o.status().isFinal());
                assertThat(o.status()).isEqualTo(MigrationStatus.COMPLETED);
                await().atMost(LONG).until(() -> p.dstMig.incoming().status() == MigrationStatus.COMPLETED);
            });
            assertThat(gap).isLessThan(500);
            assertThat(p.dstMig.incoming().loadThread().getName()).isEqualTo("mig/dst/main");
            assertVerified(p);
        }
    }
}
