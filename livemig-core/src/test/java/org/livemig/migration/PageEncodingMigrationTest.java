package org.livemig.migration;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.livemig.machine.Machine;
import org.livemig.machine.RunState;
import org.livemig.memory.RamBlock;
import tools.jackson.databind.JsonNode;

/**
 * livemig to livemig with the page encodings of QEMU 7.2: xbzrle on a guest that keeps dirtying
 * memory, multifd-compression zlib and zstd over tcp and unix, the compress capability on
 * several threads, and zero-page-detection none. Every migration ends with the A-B check and the
 * destination's RAM and devices equal to the source's.
 */
class PageEncodingMigrationTest {
    private static final Duration LONG = Duration.ofSeconds(90);

    @TempDir
    Path dir;

    private static void on(Machine m, Migration mig, Consumer<MigrationParameters> params, Capability... caps)
            throws Exception {
        m.mainLoop().call(() -> {
            Map<Capability, Boolean> set = new java.util.EnumMap<>(Capability.class);
            for (Capability c : caps) {
                set.put(c, true);
            }
            mig.setCapabilities(set);
            mig.setParameters(params);
            return null;
        }, 10_000);
    }

    /** Names of live threads starting with one of {@code prefixes}, sampled until {@code o} ends. */
    /** Names of threads with these prefixes seen until both sides' migrations have ended. */
    private static Set<String> sampleThreads(PrecopyTest.Pair pair, Outgoing o, String... prefixes) {
        Set<String> seen = ConcurrentHashMap.newKeySet();
        long deadline = System.nanoTime() + LONG.toNanos();
        Thread.ofPlatform().daemon(true).start(() -> {
            while (System.nanoTime() < deadline && (!o.status().isFinal() || pair.dstMig().incoming() == null
                    || !pair.dstMig().incoming().status().isFinal())) {
                for (Thread t : Thread.getAllStackTraces().keySet()) {
                    for (String p : prefixes) {
                        if (t.getName().startsWith(p)) {
                            seen.add(t.getName());
                        }
                    }
                }
                java.util.concurrent.locks.LockSupport.parkNanos(2_000_000);
            }
        });
        return seen;
    }

    private static Outgoing completed(PrecopyTest.Pair p, Outgoing o) throws Exception {
        await().atMost(LONG).until(() -> o.status().isFinal());
        assertThat(o.status()).as(String.valueOf(o.error())).isEqualTo(MigrationStatus.COMPLETED);
        PrecopyTest.assertVerified(p);
        return o;
    }

    @Test
    void xbzrleMakesADirtyingGuestConvergeWithCacheHitsAndTheAbPropertyHolds() throws Exception {
        // ab:20000 rewrites the first byte of each of 7,936 pages 2.5 times a second: 78 MiB/s of
        // dirty pages against a 24 MiB/s link. Whole pages could never catch up; XBZRLE deltas of
        // a byte can.
        Machine.Config cfg = TestMachines.small("ab:20000").withRam(32L << 20).withFill(Machine.Fill.MIXED);
        try (PrecopyTest.Pair p = PrecopyTest.Pair.of(cfg)) {
            on(p.src(), p.srcMig(), m -> {
                m.maxBandwidth = 24L << 20;
                m.xbzrleCacheSize = 16L << 20;
            }, Capability.XBZRLE, Capability.RETURN_PATH);
            Outgoing o = p.migrate(p.listen("tcp:127.0.0.1:0"));
            // As QEMU allows: a new cache size while it runs (a new, empty cache from the next page on).
            await().atMost(LONG).until(() -> o.ramStats().dirtySyncCount.get() >= 1 || o.status().isFinal());
            p.params(m -> m.xbzrleCacheSize = 32L << 20);
            completed(p, o);
            JsonNode x = p.srcMig().queryMigrate().get("xbzrle-cache");
            assertThat(x).as("query-migrate has xbzrle-cache with the xbzrle capability").isNotNull();
            assertThat(x.get("cache-size").asLong()).isEqualTo(32L << 20);
            assertThat(x.get("pages").asLong()).as("cache hits: pages sent as deltas").isPositive();
            assertThat(x.get("cache-miss").asLong()).as("pages that entered the cache").isPositive();
            assertThat(x.get("bytes").asLong()).isPositive();
            assertThat(x.get("encoding-rate").isNumber()).isTrue();
            assertThat(x.get("cache-miss-rate").isNumber()).isTrue();
            assertThat(x.get("overflow").asLong()).isGreaterThanOrEqualTo(0);
            assertThat(o.passes()).as("converged after several passes").isGreaterThanOrEqualTo(3);
            // The deltas are small: what went in all is far less than the pages it stands for.
            long hits = o.ramStats().xbzrle.pages.get();
            assertThat(o.ramStats().xbzrle.bytes.get()).isLessThan(hits * RamBlock.PAGE_SIZE / 20);
        }
    }

    @ParameterizedTest(name = "{0} over {1}")
    @CsvSource({"zlib, tcp", "zlib, unix", "zstd, tcp", "zstd, unix"})
    void multifdCompressionMovesADirtyingGuestAndVerifies(String method, String transport) throws Exception {
        // ab:4000 dirties 16 MiB/s, well within what zlib level 1 compresses on two shared cores.
        Machine.Config cfg = TestMachines.small("ab:4000").withRam(32L << 20).withFill(Machine.Fill.MIXED);
        try (PrecopyTest.Pair p = PrecopyTest.Pair.of(cfg)) {
            Consumer<MigrationParameters> params = m -> {
                m.maxBandwidth = 0;
                m.multifdChannels = 2;
                m.multifdCompression = method;
                m.multifdZlibLevel = 1;
                m.multifdZstdLevel = 1;
            };
            on(p.src(), p.srcMig(), params, Capability.MULTIFD, Capability.RETURN_PATH);
            on(p.dst(), p.dstMig(), params, Capability.MULTIFD);
            String uri = p.listen(transport.equals("tcp") ? "tcp:127.0.0.1:0" : "unix:" + dir.resolve("m.sock"));
            Outgoing o = p.migrate(uri);
            Set<String> threads = sampleThreads(p, o, "mig/src/send_", "mig/dst/recv_");
            completed(p, o);
            assertThat(threads).contains("mig/src/send_0", "mig/src/send_1", "mig/dst/recv_0", "mig/dst/recv_1");
            long normal = o.ramStats().normalPages.get();
            long multifdBytes = o.ramStats().multifdBytes.get();
            assertThat(normal).isPositive();
            assertThat(multifdBytes).as("compressed: the channels carried less than the pages")
                    .isLessThan(normal * RamBlock.PAGE_SIZE * 3 / 4);
            // The channel threads found the zero pages (mig/src/main no longer looks): they came back as
            // ZERO records (the guest soon writes the first byte of those in its range).
            assertThat(o.ramStats().zeroPages.get()).isPositive();
            assertThat(p.dstMig().incoming().ramStats().multifdBytes.get()).isEqualTo(multifdBytes);
        }
    }

    @Test
    void aCompressedMultifdSourceAgainstAnUncompressedDestinationFailsAndKeepsRunning() throws Exception {
        Machine.Config cfg = TestMachines.small("idle").withRam(16L << 20).withFill(Machine.Fill.TEXT);
        try (PrecopyTest.Pair p = PrecopyTest.Pair.of(cfg)) {
            String before = StateDigest.ram(p.src().mainBlock());
            on(p.src(), p.srcMig(), m -> {
                m.maxBandwidth = 0;
                m.multifdCompression = "zstd";
            }, Capability.MULTIFD, Capability.RETURN_PATH);
            on(p.dst(), p.dstMig(), m -> { }, Capability.MULTIFD);
            Outgoing o = p.migrate(p.listen("tcp:127.0.0.1:0"));
            await().atMost(LONG).until(() -> o.status().isFinal());
            assertThat(o.status()).isEqualTo(MigrationStatus.FAILED);
            Incoming in = p.dstMig().incoming();
            await().atMost(LONG).until(() -> in.status() == MigrationStatus.FAILED);
            assertThat(in.error()).contains("flags received 0x4 flags expected 0x0 (multifd-compression none here)");
            assertThat(p.src().runState()).isEqualTo(RunState.RUNNING);
            assertThat(StateDigest.ram(p.src().mainBlock())).isEqualTo(before);
        }
    }

    @ParameterizedTest(name = "compress-wait-thread {0}")
    @CsvSource({"true", "false"})
    void compressOnSeveralThreadsMovesADirtyingGuestAndVerifies(boolean wait) throws Exception {
        Machine.Config cfg = TestMachines.small("ab:5000").withRam(32L << 20).withFill(Machine.Fill.MIXED);
        try (PrecopyTest.Pair p = PrecopyTest.Pair.of(cfg)) {
            on(p.src(), p.srcMig(), m -> {
                m.maxBandwidth = 0;
                m.compressThreads = 3;
                m.compressLevel = 1;
                m.compressWaitThread = wait;
            }, Capability.COMPRESS, Capability.RETURN_PATH);
            on(p.dst(), p.dstMig(), m -> m.decompressThreads = 2, Capability.COMPRESS);
            Outgoing o = p.migrate(p.listen("tcp:127.0.0.1:0"));
            Set<String> threads = sampleThreads(p, o, "mig/src/compress_", "mig/dst/decompress_");
            completed(p, o);
            assertThat(threads).contains("mig/src/compress_0", "mig/src/compress_2", "mig/dst/decompress_0",
                    "mig/dst/decompress_1").doesNotContain("mig/src/compress_3", "mig/dst/decompress_2");
            JsonNode c = p.srcMig().queryMigrate().get("compression");
            assertThat(c).as("query-migrate has compression with the capability").isNotNull();
            long pages = c.get("pages").asLong();
            if (wait) {
                assertThat(pages).as("compressed pages").isGreaterThan((16L << 20) / RamBlock.PAGE_SIZE);
                assertThat(c.get("busy").asLong()).isZero();
            } else {
                assertThat(pages + c.get("busy").asLong()).as("compressed, or sent plain when all were busy")
                        .isGreaterThan((16L << 20) / RamBlock.PAGE_SIZE);
            }
            assertThat(c.get("compressed-size").asLong()).isLessThan(pages * RamBlock.PAGE_SIZE * 3 / 4);
            assertThat(c.get("compression-rate").asDouble()).isGreaterThan(1.3);
        }
    }

    @Test
    void cancellingACompressOrXbzrleMigrationLeavesTheSourceRunningAndItsThreadsEnd() throws Exception {
        Machine.Config cfg = TestMachines.small("ab:2000").withRam(32L << 20).withFill(Machine.Fill.TEXT);
        for (Capability cap : new Capability[] {Capability.COMPRESS, Capability.XBZRLE}) {
            try (PrecopyTest.Pair p = PrecopyTest.Pair.of(cfg)) {
                // 4 MiB/s: still sending when cancelled (and, for xbzrle, past its first pass)
                on(p.src(), p.srcMig(), m -> m.maxBandwidth = 4L << 20, cap);
                on(p.dst(), p.dstMig(), m -> { }, cap);
                Outgoing o = p.migrate(p.listen("tcp:127.0.0.1:0"));
                await().atMost(LONG).until(() -> o.ramStats().transferred.get() > (2L << 20));
                p.srcMig().cancel();
                await().atMost(LONG).until(() -> o.status().isFinal());
                assertThat(o.status()).as(cap.qemuName()).isEqualTo(MigrationStatus.CANCELLED);
                assertThat(p.src().runState()).isEqualTo(RunState.RUNNING);
                assertThat(p.src().ram().dirtyLogging()).isFalse();
                await().atMost(LONG).until(() -> Thread.getAllStackTraces().keySet().stream()
                        .noneMatch(t -> t.getName().startsWith("mig/src/compress_")));
                Incoming in = p.dstMig().incoming();
                await().atMost(LONG).until(() -> in.status() == MigrationStatus.FAILED);
                await().atMost(LONG).until(() -> Thread.getAllStackTraces().keySet().stream()
                        .noneMatch(t -> t.getName().startsWith("mig/dst/decompress_")));
            }
        }
    }

    @Test
    void compressedPagesNeedTheCapabilityOnTheDestinationAsInQemu() throws Exception {
        Machine.Config cfg = TestMachines.small("idle").withRam(16L << 20).withFill(Machine.Fill.TEXT);
        try (PrecopyTest.Pair p = PrecopyTest.Pair.of(cfg)) {
            String before = StateDigest.ram(p.src().mainBlock());
            on(p.src(), p.srcMig(), m -> m.maxBandwidth = 0, Capability.COMPRESS, Capability.RETURN_PATH);
            Outgoing o = p.migrate(p.listen("tcp:127.0.0.1:0"));
            await().atMost(LONG).until(() -> o.status().isFinal());
            assertThat(o.status()).isEqualTo(MigrationStatus.FAILED);
            Incoming in = p.dstMig().incoming();
            await().atMost(LONG).until(() -> in.status() == MigrationStatus.FAILED);
            assertThat(in.error()).containsPattern("unexpected compressed page 0x[0-9a-f]+ of block 'pc.ram'")
                    .contains("at byte offset");
            assertThat(p.src().runState()).isEqualTo(RunState.RUNNING);
            assertThat(StateDigest.ram(p.src().mainBlock())).isEqualTo(before);
        }
    }

    @ParameterizedTest(name = "multifd {0}")
    @CsvSource({"false", "true"})
    void withZeroPageDetectionLegacyZeroPagesGoAsZeroRecords(boolean multifd) throws Exception {
        // A fifth of MIXED RAM is zero pages; with multifd the channels find them, not mig/src/main.
        Machine.Config cfg = TestMachines.small("idle").withRam(16L << 20).withFill(Machine.Fill.MIXED);
        try (PrecopyTest.Pair p = PrecopyTest.Pair.of(cfg)) {
            Capability[] caps = multifd ? new Capability[] {Capability.MULTIFD, Capability.RETURN_PATH}
                    : new Capability[] {Capability.RETURN_PATH};
            on(p.src(), p.srcMig(), m -> m.maxBandwidth = 0, caps);
            if (multifd) {
                on(p.dst(), p.dstMig(), m -> { }, Capability.MULTIFD);
            }
            completed(p, p.migrate(p.listen("tcp:127.0.0.1:0")));
            JsonNode ram = p.srcMig().queryMigrate().get("ram");
            long pages = (16L << 20) / RamBlock.PAGE_SIZE;
            assertThat(ram.get("duplicate").asLong()).isBetween(pages * 15 / 100, pages * 25 / 100 + 64);
            assertThat(ram.get("duplicate").asLong() + ram.get("normal").asLong()).isGreaterThanOrEqualTo(pages);
            assertThat(p.srcMig().parameters().zeroPageDetection).isEqualTo("legacy");
        }
    }

    @ParameterizedTest(name = "multifd {0}")
    @CsvSource({"false", "true"})
    void withZeroPageDetectionNoneZeroPagesGoAsNormalPages(boolean multifd) throws Exception {
        // Never-written RAM: all zero, which the first pass would otherwise send unscanned as ZERO records.
        Machine.Config cfg = TestMachines.small("idle").withRam(16L << 20).withFill(Machine.Fill.ZERO);
        try (PrecopyTest.Pair p = PrecopyTest.Pair.of(cfg)) {
            Consumer<MigrationParameters> params = m -> {
                m.maxBandwidth = 0;
                m.zeroPageDetection = "none";
            };
            Capability[] caps = multifd ? new Capability[] {Capability.MULTIFD, Capability.RETURN_PATH}
                    : new Capability[] {Capability.RETURN_PATH};
            on(p.src(), p.srcMig(), params, caps);
            if (multifd) {
                on(p.dst(), p.dstMig(), m -> { }, Capability.MULTIFD);
            }
            Outgoing o = completed(p, p.migrate(p.listen("tcp:127.0.0.1:0")));
            JsonNode ram = p.srcMig().queryMigrate().get("ram");
            assertThat(ram.get("duplicate").asLong()).as("no ZERO record").isZero();
            assertThat(ram.get("normal").asLong()).as("every page of every block went whole")
                    .isGreaterThanOrEqualTo((16L << 20) / RamBlock.PAGE_SIZE);
            assertThat(p.srcMig().parameters().zeroPageDetection).isEqualTo("none");
            assertThat(o.ramStats().transferred.get()).isGreaterThan(16L << 20);
        }
    }
}
