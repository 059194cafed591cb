package org.livemig.migration;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.locks.LockSupport;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.livemig.machine.Accelerator;
import org.livemig.machine.Machine;
import org.livemig.machine.RunState;
import org.livemig.migration.multifd.MultifdReceiver;
import org.livemig.migration.multifd.MultifdSender;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * Machines with an accelerator (the iterative device) migrating live while the guest writes its
 * memory: over the main stream, and with its final state over multifd channels loaded by the
 * destination's load threads; both sides' device memory, register state and RAM compared.
 */
class AcceleratorMigrationTest {
    private static final Duration LONG = Duration.ofSeconds(120);

    static Machine.Config withAccelerator(String spec, long ram) {
        return TestMachines.small("ab:20000").withRam(ram).withFill(Machine.Fill.RANDOM)
                .withAccelerators(List.of(Accelerator.Spec.parse(spec)));
    }

    static void multifd(PrecopyTest.Pair p, int channels) throws Exception {
        for (var side : List.of(new Object[] {p.src(), p.srcMig()}, new Object[] {p.dst(), p.dstMig()})) {
            Machine m = (Machine) side[0];
            Migration mig = (Migration) side[1];
            m.mainLoop().call(() -> {
                mig.setCapability(Capability.MULTIFD, true);
                mig.setParameters(x -> x.multifdChannels = channels);
                return null;
            }, 10_000);
        }
    }

    /** Names of live threads with one of the prefixes, sampled until {@code o} ends. */
    static Set<String> sampleThreads(Outgoing o, String... prefixes) {
        Set<String> seen = ConcurrentHashMap.newKeySet();
        Thread.ofPlatform().daemon(true).start(() -> {
            while (!o.status().isFinal()) {
                for (Thread t : Thread.getAllStackTraces().keySet()) {
                    for (String p : prefixes) {
                        if (t.getName().startsWith(p)) {
                            seen.add(t.getName());
                        }
                    }
                }
                LockSupport.parkNanos(1_000_000);
            }
        });
        return seen;
    }

    private static JsonNode device(ObjectNode queryMigrate, String name) {
        for (JsonNode d : queryMigrate.get("x-iterative-devices")) {
            if (d.get("name").asString().equals(name)) {
                return d;
            }
        }
        throw new AssertionError("no device " + name + " in " + queryMigrate);
    }

    /** Migrates {@code cfg} live (multifd with {@code channels} > 0) and checks both sides agree. */
    static Outgoing migrateAndVerify(Machine.Config cfg, int channels) throws Exception {
        try (PrecopyTest.Pair p = PrecopyTest.Pair.of(cfg)) {
            p.params(m -> m.maxBandwidth = 0);
            p.cap(Capability.RETURN_PATH);
            if (channels > 0) {
                multifd(p, channels);
            }
            Accelerator src = p.src().devices().accelerators().getFirst();
            await().atMost(LONG).until(() -> src.writes() > 10); // the guest writes its device
            Outgoing o = p.migrate(p.listen("tcp:127.0.0.1:0"));
            Set<String> threads = sampleThreads(o, LoadThreads.THREAD_PREFIX, MultifdSender.THREAD_PREFIX,
                    MultifdReceiver.THREAD_PREFIX, Accelerator.ENGINE_THREAD_PREFIX);
            await().atMost(LONG).until(() -> o.status().isFinal());
            assertThat(o.status()).as(String.valueOf(o.error())).isEqualTo(MigrationStatus.COMPLETED);
            PrecopyTest.assertVerified(p);
            Accelerator dst = p.dst().devices().accelerators().getFirst();
            assertThat(dst.writes()).as("register state").isEqualTo(src.writes()).isPositive();
            assertThat(dst.postLoads()).isEqualTo(1);
            JsonNode d = device(p.srcMig().queryMigrate(), src.name());
            assertThat(d.get("transferred").asLong()).as("the whole memory went at least once")
                    .isGreaterThanOrEqualTo(src.spec().size());
            assertThat(d.get("pending").asLong()).isZero();
            assertThat(d.get("final-state-over-multifd").asBoolean()).isEqualTo(channels > 0);
            assertThat(threads).contains(Accelerator.ENGINE_THREAD_PREFIX + src.name());
            for (int i = 0; i < channels; i++) {
                assertThat(threads).contains(MultifdSender.THREAD_PREFIX + i, MultifdReceiver.THREAD_PREFIX + i);
            }
            if (channels > 0) {
                // Load threads start as tasks queue up (one per task waiting, up to the channels):
                // the first always, the others only when tasks overlap.
                assertThat(threads).contains(LoadThreads.THREAD_PREFIX + 0);
            }
            assertThat(threads).doesNotContain(LoadThreads.THREAD_PREFIX + channels);
            return o;
        }
    }

    @ParameterizedTest(name = "{0} multifd channels")
    @ValueSource(ints = {0, 2})
    void aSmallAcceleratorWrittenByTheGuestMigratesAndVerifies(int channels) throws Exception {
        migrateAndVerify(withAccelerator("acc0,size=16M,dirty-rate=32", 32L << 20), channels);
    }

    /** The case: 256 MiB written by the guest at 50 MiB/s, over the main stream, 2 and 4 channels. */
    @Test
    void a256MiBAcceleratorWrittenByTheGuestVerifiesOverTheMainStreamAndOver2And4Channels() throws Exception {
        for (int channels : new int[] {0, 2, 4}) {
            Outgoing o = migrateAndVerify(withAccelerator("acc0,size=256M,dirty-rate=50", 32L << 20), channels);
            assertThat(o.passes()).as("%d channels: passes", channels).isGreaterThanOrEqualTo(2);
        }
    }

    /** A device dirtied so fast that its final state always has chunks in it. */
    private static Machine.Config busyDevice() {
        return withAccelerator("acc0,size=2M,dirty-rate=200", 16L << 20);
    }

    private static int port(String uri) {
        return Integer.parseInt(uri.substring(uri.lastIndexOf(':') + 1));
    }

    @Test
    void aDamagedChunkOnTheMainStreamFailsBothSidesAndTheSourceKeepsRunning() throws Exception {
        // An idle guest on zero RAM: RAM goes as ZERO records only, so byte 4 MiB is the device's.
        Machine.Config cfg = withAccelerator("acc0,size=16M,dirty-rate=0", 16L << 20).withFill(Machine.Fill.ZERO)
                .withWorkload("idle");
        try (PrecopyTest.Pair p = PrecopyTest.Pair.of(cfg)) {
            p.params(m -> m.maxBandwidth = 0);
            p.cap(Capability.RETURN_PATH);
            p.srcMig().setFaultInjection(org.livemig.transport.FaultSpec.parse("flip:at=4m,dir=out"),
                    org.livemig.transport.FaultSpec.NONE);
            Accelerator src = p.src().devices().accelerators().getFirst();
            String before = StateDigest.hash(src.memory());
            Outgoing o = p.migrate(p.listen("tcp:127.0.0.1:0"));
            await().atMost(LONG).until(() -> o.status().isFinal() && p.dstMig().incoming().status().isFinal());
            assertThat(o.status()).isEqualTo(MigrationStatus.FAILED);
            assertThat(p.src().runState()).isEqualTo(RunState.RUNNING);
            assertThat(StateDigest.hash(src.memory())).as("the source's device is untouched").isEqualTo(before);
            Incoming in = p.dstMig().incoming();
            assertThat(in.status()).isEqualTo(MigrationStatus.FAILED);
            // Nearly always the chunk's bytes (its checksum); a flip in a record's header is refused too.
            assertThat(in.error()).containsPattern("accelerator 'acc0': chunk at 0x[0-9a-f]+ \\(0x10000 bytes\\) is damaged"
                    + "|accelerator chunk|accelerator state: unknown record marker");
            assertThat(in.error()).contains("acc0/accel");
        }
    }

    @Test
    void aDamagedChunkInADeviceStatePacketFailsItsLoadThreadAndTheMigrationWithItsMessage() throws Exception {
        // On a starved host the device's engine may dirty nothing between the last pass and the
        // stop: the final state then has no chunk for the flip to land in, and the migration
        // rightly completes. Such an attempt is tried again (a fresh pair), at most twice.
        for (int attempt = 1; ; attempt++) {
            if (damagedChunkAttempt(attempt == 3)) {
                return;
            }
        }
    }

    /** One attempt; false when the final state carried no chunk to damage (and {@code last} is false). */
    private boolean damagedChunkAttempt(boolean last) throws Exception {
        try (PrecopyTest.Pair p = PrecopyTest.Pair.of(busyDevice())) {
            p.params(m -> m.maxBandwidth = 0);
            p.cap(Capability.RETURN_PATH);
            multifd(p, 2);
            // Into the first chunk's bytes: packet header 276, its data's header 12, the chunk's header 16.
            try (var tamper = org.livemig.testing.DeviceStateTamper.flipping(port(p.listen("tcp:127.0.0.1:0")),
                    276 + 12 + 16 + 100)) {
                Outgoing o = p.migrate(tamper.uri());
                await().atMost(LONG).until(() -> o.status().isFinal() && p.dstMig().incoming() != null
                        && p.dstMig().incoming().status().isFinal());
                assertThat(tamper.awaitFired(0)).isTrue();
                Incoming in = p.dstMig().incoming();
                if (o.status() == MigrationStatus.COMPLETED && !last) {
                    return false;
                }
                assertThat(o.status()).as("source: %s; destination: %s", o.error(), in.error())
                        .isEqualTo(MigrationStatus.FAILED);
                assertThat(p.src().runState()).as("the source runs on").isEqualTo(RunState.RUNNING);
                assertThat(in.status()).isEqualTo(MigrationStatus.FAILED);
                assertThat(in.loadThreads().failure()).containsPattern(
                        "accelerator 'acc0': chunk at 0x[0-9a-f]+ \\(0x10000 bytes\\) in device-state packet \\d+ is damaged");
                assertThat(in.error()).startsWith(in.loadThreads().failure());
                assertThat(p.dstMig().queryMigrate().get("error-desc").asString()).startsWith(in.loadThreads().failure());
                // The destination takes a new migration, which completes.
                p.src().mainLoop().call(() -> {
                    p.srcMig().setCapability(Capability.MULTIFD, false);
                    return null;
                }, 10_000);
                p.dst().mainLoop().call(() -> {
                    p.dstMig().setCapability(Capability.MULTIFD, false);
                    return null;
                }, 10_000);
                Outgoing again = p.migrate(p.listen("tcp:127.0.0.1:0"));
                await().atMost(LONG).until(() -> again.status().isFinal());
                assertThat(again.status()).as(String.valueOf(again.error())).isEqualTo(MigrationStatus.COMPLETED);
                PrecopyTest.assertVerified(p);
                return true;
            }
        }
    }

    @Test
    void mainWaitsForTheLoadThreadsWithoutTheBql() throws Exception {
        try (PrecopyTest.Pair p = PrecopyTest.Pair.of(busyDevice())) {
            p.params(m -> m.maxBandwidth = 0);
            p.cap(Capability.RETURN_PATH);
            multifd(p, 2);
            // The device's final state is not applied until the gate opens: mig/dst/main reaches EOF first.
            java.util.concurrent.CountDownLatch gate = new java.util.concurrent.CountDownLatch(1);
            AcceleratorHandlers.of(p.dst(), "acc0").gateFinalStateLoad(gate);
            Outgoing o = p.migrate(p.listen("tcp:127.0.0.1:0"));
            Incoming in = await().atMost(LONG).until(() -> p.dstMig().incoming(), i -> i != null && i.loadThread() != null);
            Thread main = in.loadThread();
            await().atMost(LONG).until(() -> waitsForLoadThreads(main));
            assertThat(in.loadThreads().busy()).isTrue();
            // The BQL is free: another thread takes it, and the main loop answers.
            Thread.ofPlatform().start(() -> {
                try {
                    assertThat(p.dst().bql().tryLock(1_000)).isTrue();
                    p.dst().bql().unlock();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }).join();
            assertThat(p.dst().mainLoop().call(() -> "answered", 1_000)).isEqualTo("answered");
            assertThat(waitsForLoadThreads(main)).as("still waiting when the lock was taken").isTrue();
            gate.countDown();
            await().atMost(LONG).until(() -> o.status().isFinal());
            assertThat(o.status()).as(String.valueOf(o.error())).isEqualTo(MigrationStatus.COMPLETED);
            PrecopyTest.assertVerified(p);
        }
    }

    @Test
    void aDamagedPacketAppliedWhileMainWaitsForTheLoadThreadsFailsCleanlyAndTheBqlStaysFree() throws Exception {
        // The final state is applied only once mig/dst/main waits for the load threads, which may
        // then apply the damaged packet itself (a step of the device's held load): a clean failure.
        for (int attempt = 1; ; attempt++) {
            if (lateDamagedPacketAttempt(attempt == 3)) {
                return;
            }
        }
    }

    /** One attempt; false when the final state carried no chunk to damage (and {@code last} is false). */
    private boolean lateDamagedPacketAttempt(boolean last) throws Exception {
        try (PrecopyTest.Pair p = PrecopyTest.Pair.of(busyDevice())) {
            p.params(m -> m.maxBandwidth = 0);
            p.cap(Capability.RETURN_PATH);
            multifd(p, 2);
            java.util.concurrent.CountDownLatch gate = new java.util.concurrent.CountDownLatch(1);
            AcceleratorHandlers.of(p.dst(), "acc0").gateFinalStateLoad(gate);
            try (var tamper = org.livemig.testing.DeviceStateTamper.flipping(port(p.listen("tcp:127.0.0.1:0")),
                    276 + 12 + 16 + 100)) {
                Outgoing o = p.migrate(tamper.uri());
                Incoming in = await().atMost(LONG).until(() -> p.dstMig().incoming(), i -> i != null && i.loadThread() != null);
                Thread main = in.loadThread();
                await().atMost(LONG).until(() -> waitsForLoadThreads(main));
                assertThat(in.loadThreads().busy()).as("the device's load is held open").isTrue();
                assertThat(p.dst().mainLoop().call(() -> "answered", 1_000)).isEqualTo("answered");
                gate.countDown();
                await().atMost(LONG).until(() -> o.status().isFinal() && in.status().isFinal());
                if (o.status() == MigrationStatus.COMPLETED && !last) {
                    return false;
                }
                assertThat(o.status()).as("source: %s; destination: %s", o.error(), in.error())
                        .isEqualTo(MigrationStatus.FAILED);
                assertThat(p.src().runState()).as("the source runs on").isEqualTo(RunState.RUNNING);
                assertThat(in.status()).isEqualTo(MigrationStatus.FAILED);
                assertThat(in.loadThreads().failure()).containsPattern(
                        "accelerator 'acc0': chunk at 0x[0-9a-f]+ \\(0x10000 bytes\\) in device-state packet \\d+ is damaged");
                assertThat(in.error()).startsWith(in.loadThreads().failure());
                assertThat(p.dst().bql().tryLock(1_000)).as("nobody kept the BQL").isTrue();
                p.dst().bql().unlock();
                // mig/dst/main ended: it did not stay in the wait.
                await().atMost(LONG).until(() -> !main.isAlive() || !waitsForLoadThreads(main));
                return true;
            }
        }
    }

    /** Whether {@code main} (mig/dst/main) is parked in the load-thread pool's wait. */
    private static boolean waitsForLoadThreads(Thread main) {
        for (StackTraceElement e : main.getStackTrace()) {
            if (e.getClassName().equals(LoadThreads.class.getName()) && e.getMethodName().equals("await")) {
                return true;
            }
        }
        return false;
    }

    /**
     * A machine without accelerators writes exactly the stream it wrote before they existed: the
     * SHA-256 below is of this never-run machine's snapshot as main (90a9581, with its globalstate
     * section) writes it.
     */
    @Test
    void aStreamWithoutAcceleratorsIsByteForByteWhatItWasBefore() throws Exception {
        Machine m = TestMachines.booted(Machine.Config.defaults().withName("h").withRam(8L << 20).withVcpus(2)
                .withWorkload("idle").withFill(Machine.Fill.RANDOM).withBlobSize(8192).withSeed(5), RunState.PAUSED);
        try {
            new Migration(m);
            byte[] b = m.mainLoop().call(() -> {
                org.livemig.stream.MigrationFile f = org.livemig.stream.MigrationFile.toMemory();
                SaveVm.saveSnapshot(m, f, new RamStats());
                return f.toByteArray();
            }, 60_000);
            assertThat(b).hasSize(8415874);
            assertThat(java.util.HexFormat.of().formatHex(java.security.MessageDigest.getInstance("SHA-256").digest(b)))
                    .isEqualTo("88c9dd239e143d1210d8713d3c4d9e674dfaeb5b5a6e7c0c2d879f465d243b56");
        } finally {
            m.close();
        }
    }

    @Test
    void aMachineWithoutAcceleratorsWritesNoNewSection() throws Exception {
        Machine m = TestMachines.booted(TestMachines.small("idle"), RunState.PAUSED);
        try {
            new Migration(m);
            assertThat(m.registry().entries()).noneMatch(e -> e.idstr().endsWith(Accelerator.IDSTR_SUFFIX));
        } finally {
            m.close();
        }
    }
}
