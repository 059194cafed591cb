package org.livemig.migration;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import java.nio.file.Path;
import java.time.Duration;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.livemig.machine.Machine;
import org.livemig.machine.RunState;
import org.livemig.memory.RamBlock;
import org.livemig.migration.multifd.MultifdReceiver;
import org.livemig.migration.multifd.MultifdSender;

/** Live migrations with the multifd capability: pages on extra channels, zero pages and the rest on the main one. */
class MultifdMigrationTest {
    private static final Duration LONG = Duration.ofSeconds(60);

    @TempDir
    Path dir;

    private static void multifd(Machine m, Migration mig, int channels) throws Exception {
        m.mainLoop().call(() -> {
            mig.setCapability(Capability.MULTIFD, true);
            mig.setParameters(p -> p.multifdChannels = channels);
            return null;
        }, 10_000);
    }

    /**
     * Names of the live threads that start with one of the prefixes, sampled from now (before the
     * migration starts: a fast one could otherwise end before the first sample) until the
     * migration {@code o} will hold has ended.
     */
    private static Set<String> sampleThreads(java.util.concurrent.atomic.AtomicReference<Outgoing> o) {
        Set<String> seen = ConcurrentHashMap.newKeySet();
        Thread.ofPlatform().daemon(true).start(() -> {
            while (o.get() == null || !o.get().status().isFinal()) {
                for (Thread t : Thread.getAllStackTraces().keySet()) {
                    String n = t.getName();
                    if (n.startsWith(MultifdSender.THREAD_PREFIX) || n.startsWith(MultifdReceiver.THREAD_PREFIX)) {
                        seen.add(n);
                    }
                }
                java.util.concurrent.locks.LockSupport.parkNanos(1_000_000);
            }
        });
        return seen;
    }

    @ParameterizedTest(name = "{0}, {1} channels")
    @CsvSource({"tcp, 1", "tcp, 2", "unix, 4"})
    void aRunningGuestMigratesOverMultifdAndVerifies(String transport, int channels) throws Exception {
        Machine.Config cfg = TestMachines.small("ab:20000").withRam(64L << 20).withFill(Machine.Fill.RANDOM);
        try (PrecopyTest.Pair p = PrecopyTest.Pair.of(cfg)) {
            p.params(m -> m.maxBandwidth = 0);
            p.cap(Capability.RETURN_PATH);
            multifd(p.src(), p.srcMig(), channels);
            multifd(p.dst(), p.dstMig(), channels);
            String uri = p.listen(transport.equals("tcp") ? "tcp:127.0.0.1:0" : "unix:" + dir.resolve("m.sock"));
            var started = new java.util.concurrent.atomic.AtomicReference<Outgoing>();
            Set<String> threads = sampleThreads(started);
            Outgoing o = p.migrate(uri);
            started.set(o);
            await().atMost(LONG).until(() -> o.status().isFinal());
            assertThat(o.status()).as(String.valueOf(o.error())).isEqualTo(MigrationStatus.COMPLETED);
            PrecopyTest.assertVerified(p);
            for (int i = 0; i < channels; i++) {
                assertThat(threads).contains(MultifdSender.THREAD_PREFIX + i, MultifdReceiver.THREAD_PREFIX + i);
            }
            assertThat(threads).doesNotContain(MultifdSender.THREAD_PREFIX + channels);
            // Every non-zero page went over the channels: their bytes hold at least the pages.
            long pages = o.ramStats().normalPages.get();
            assertThat(pages).isPositive();
            var srcRam = p.srcMig().queryMigrate().get("ram");
            assertThat(srcRam.get("multifd-bytes").asLong()).isGreaterThanOrEqualTo(pages * RamBlock.PAGE_SIZE);
            assertThat(srcRam.get("transferred").asLong()).isGreaterThan(srcRam.get("multifd-bytes").asLong());
            assertThat(p.dstMig().incoming().ramStats().multifdBytes.get())
                    .isGreaterThanOrEqualTo(pages * RamBlock.PAGE_SIZE);
        }
    }

    @Test
    void aSourceWithMultifdAgainstADestinationWithoutFailsAndKeepsRunning() throws Exception {
        Machine.Config cfg = TestMachines.small("idle").withRam(16L << 20).withFill(Machine.Fill.RANDOM);
        try (PrecopyTest.Pair p = PrecopyTest.Pair.of(cfg)) {
            String before = StateDigest.ram(p.src().mainBlock());
            p.params(m -> m.maxBandwidth = 0);
            multifd(p.src(), p.srcMig(), 2);
            Outgoing o = p.migrate(p.listen("unix:" + dir.resolve("m.sock")));
            await().atMost(LONG).until(() -> o.status().isFinal());
            assertThat(o.status()).isEqualTo(MigrationStatus.FAILED);
            // Which channel notices first depends on when the destination closes its listener:
            // a refused connect, or a broken pipe on a connection nobody reads.
            assertThat(o.error()).containsPattern("multifd channel [01]");
            assertThat(p.src().runState()).isEqualTo(RunState.RUNNING);
            assertThat(p.src().ram().dirtyLogging()).isFalse();
            assertThat(StateDigest.ram(p.src().mainBlock())).isEqualTo(before);
        }
    }

    @Test
    void aDestinationWaitingForChannelsThatNeverComeIsYankable() throws Exception {
        Machine.Config cfg = TestMachines.small("idle").withRam(16L << 20).withFill(Machine.Fill.RANDOM);
        try (PrecopyTest.Pair p = PrecopyTest.Pair.of(cfg)) {
            // 1 MiB/s: the yank comes long before the source's last byte (after it, see
            // Outgoing#failed, the source would keep its guest paused).
            p.params(m -> m.maxBandwidth = 1L << 20);
            // With a return path the source learns of the destination's failure (else it may finish).
            p.cap(Capability.RETURN_PATH);
            multifd(p.dst(), p.dstMig(), 2);
            Outgoing o = p.migrate(p.listen("tcp:127.0.0.1:0"));
            // The source sends every page on its main channel; the destination waits at the first
            // RAM section's end for channels that will not come, and answers its monitor meanwhile.
            Incoming in = await().atMost(LONG).until(() -> p.dstMig().incoming(), i -> i != null && i.loadThread() != null);
            await().atMost(LONG).until(() -> in.loadThread().getState() == Thread.State.TIMED_WAITING
                    || in.status().isFinal());
            assertThat(p.dst().mainLoop().call(() -> "answered", 10_000)).isEqualTo("answered");
            in.shutdown();
            await().atMost(LONG).until(() -> in.status() == MigrationStatus.FAILED);
            assertThat(in.error()).contains("multifd");
            await().atMost(LONG).until(() -> o.status().isFinal());
            assertThat(o.status()).isEqualTo(MigrationStatus.FAILED);
            assertThat(p.src().runState()).isEqualTo(RunState.RUNNING);
        }
    }

    @Test
    void cancelAndYankDuringMultifdLeaveTheSourceRunningAndTheDestinationReady() throws Exception {
        Machine.Config cfg = TestMachines.small("idle").withRam(32L << 20).withFill(Machine.Fill.RANDOM);
        for (boolean yank : new boolean[] {false, true}) {
            try (PrecopyTest.Pair p = PrecopyTest.Pair.of(cfg)) {
                String before = StateDigest.ram(p.src().mainBlock());
                // 32 MiB at 8 MiB/s: the channels are busy when it is cancelled or yanked.
                p.params(m -> m.maxBandwidth = 8L << 20);
                multifd(p.src(), p.srcMig(), 2);
                multifd(p.dst(), p.dstMig(), 2);
                Outgoing o = p.migrate(p.listen("tcp:127.0.0.1:0"));
                await().atMost(LONG).until(() -> o.ramStats().multifdBytes.get() > (1L << 20));
                if (yank) {
                    o.yank();
                } else {
                    p.srcMig().cancel();
                }
                await().atMost(LONG).until(() -> o.status().isFinal());
                assertThat(o.status()).isEqualTo(yank ? MigrationStatus.FAILED : MigrationStatus.CANCELLED);
                assertThat(p.src().runState()).isEqualTo(RunState.RUNNING);
                assertThat(StateDigest.ram(p.src().mainBlock())).isEqualTo(before);
                await().atMost(LONG).until(() -> Thread.getAllStackTraces().keySet().stream()
                        .noneMatch(t -> t.getName().startsWith(MultifdSender.THREAD_PREFIX)));
                // The destination fails and takes a new incoming migration.
                await().atMost(LONG).until(() -> p.dstMig().incoming().status() == MigrationStatus.FAILED);
                migrateAgainAndVerify(p);
            }
        }
    }

    @Test
    void aBadChannelFailsTheDestinationWithItsReasonAndANewMigrationWorks() throws Exception {
        Machine.Config cfg = TestMachines.small("idle").withRam(8L << 20);
        try (PrecopyTest.Pair p = PrecopyTest.Pair.of(cfg)) {
            multifd(p.dst(), p.dstMig(), 2);
            String uri = p.listen("tcp:127.0.0.1:0");
            var addr = org.livemig.transport.MigrationAddress.parse(uri);
            try (var main = org.livemig.transport.Transports.connect(addr, LONG);
                 var channel = org.livemig.transport.Transports.connect(addr, LONG)) {
                // The main stream's magic where a channel's initial packet belongs.
                var f = org.livemig.stream.MigrationFile.forWriting(channel.out());
                f.putBe32(0x5145564D);
                f.putBe32(3);
                f.putBytes(new byte[56]);
                f.flush();
                Incoming in = p.dstMig().incoming();
                await().atMost(LONG).until(() -> in.status() == MigrationStatus.FAILED);
                assertThat(in.error()).contains("initial packet magic 0x5145564d, expected 0x11223344");
            }
            multifd(p.src(), p.srcMig(), 2);
            migrateAgainAndVerify(p);
        }
    }

    /** After a failed migration: the destination listens again, and a multifd migration completes and verifies. */
    private static void migrateAgainAndVerify(PrecopyTest.Pair p) throws Exception {
        p.params(m -> m.maxBandwidth = 0);
        Outgoing again = p.migrate(p.listen("tcp:127.0.0.1:0"));
        await().atMost(LONG).until(() -> again.status().isFinal());
        assertThat(again.status()).as(String.valueOf(again.error())).isEqualTo(MigrationStatus.COMPLETED);
        PrecopyTest.assertVerified(p);
    }

    @Test
    void multifdIsRefusedWithPostcopyAndOverAFile() throws Exception {
        Machine.Config cfg = TestMachines.small("idle").withRam(8L << 20);
        try (PrecopyTest.Pair p = PrecopyTest.Pair.of(cfg)) {
            multifd(p.src(), p.srcMig(), 2);
            assertThatThrownBy(() -> p.migrate("file:" + dir.resolve("out.mig")))
                    .hasMessageContaining("multifd needs a tcp: or unix: address");
            p.cap(Capability.POSTCOPY_RAM);
            assertThatThrownBy(() -> p.migrate("tcp:127.0.0.1:1"))
                    .hasMessageContaining("Postcopy is not yet compatible with multifd");
            assertThatThrownBy(() -> p.params(m -> m.multifdChannels = 0))
                    .hasMessageContaining("multifd_channels");
            assertThatThrownBy(() -> p.params(m -> m.multifdCompression = "lz4"))
                    .hasMessageContaining("Parameter 'multifd-compression' does not accept value 'lz4'");
            assertThat(p.src().runState()).isEqualTo(RunState.RUNNING);
        }
    }
}
