package org.livemig.analyze;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.fail;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.random.RandomGenerator;
import java.util.stream.IntStream;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.livemig.analyze.StreamEvents.RamRecord;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.RamPageRecord;
import org.livemig.stream.SectionHeader;
import org.livemig.stream.StreamFormatException;

/**
 * Hostile input: fixtures mutated with seeded randomness (bit flips, truncation, insertions,
 * absurd lengths written over length fields). Every input must either be read or fail with a
 * {@link StreamFormatException} that names a byte offset inside the input; never another
 * exception type, never an OutOfMemoryError, never a hang (each test has a generous timeout as a
 * hang detector). Both ways of reading run: with the trailer located first (file) and streaming
 * over a plain channel. The seed of every case is in its name and in the failure message.
 */
@Timeout(120)
class HostileInputTest {
    /** Smaller limits than the default keep a mutated stream's worst case small. */
    static final Analyzer.Options OPTIONS = Analyzer.Options.DEFAULT.withLimits(
            Limits.DEFAULT.withMaxRamBytes(64L << 20));

    static final List<String> SOURCES = List.of(
            "pc-16M-paused.mig", "pc-16M-dirtyloop-xbzrle.mig", "pc-16M-pattern-compress.mig",
            "pc-16M-ignore-shared-uuid.mig", "pc-16M-live-tcp-returnpath.mig", "q35-32M-paused.mig");

    static final Map<String, byte[]> CACHE = new ConcurrentHashMap<>();

    static byte[] source(String name) {
        return CACHE.computeIfAbsent(name, n -> n.equals("postcopy") ? postcopy() : Fixtures.bytes(n));
    }

    static byte[] postcopy() {
        try {
            SyntheticStreamsTest.decodePaused();
            return SyntheticStreamsTest.postcopyStream();
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    /** Reads {@code input} both ways and checks the outcome; returns true when it was read. */
    static boolean check(byte[] input, String what) {
        return outcome(input, what) != Outcome.REJECTED;
    }

    enum Outcome { READ, READ_WITH_UNDECODED_SECTIONS, REJECTED }

    /** Reads {@code input} both ways and checks the outcome (the outcome of the read with the trailer). */
    static Outcome outcome(byte[] input, String what) {
        Outcome result = null;
        for (boolean streaming : new boolean[] {false, true}) {
            boolean ok = true;
            boolean undecoded = false;
            try (Analysis a = streaming ? Analyzer.analyze(Fixtures.channel(input), OPTIONS)
                    : Analyzer.analyze(input, OPTIONS)) {
                assertThat(a.stats().bytes).as(what).isLessThanOrEqualTo(input.length);
                undecoded = !a.undecoded().isEmpty();
            } catch (StreamFormatException e) {
                ok = false;
                assertThat(e.offset()).as(what + ": offset of " + e.getMessage()).isBetween(0L, (long) input.length);
                assertThat(e.getMessage()).as(what).contains("at byte offset " + e.offset());
            } catch (Throwable t) {
                fail(what + (streaming ? " (streaming)" : " (with trailer)") + ": " + t, t);
            }
            if (result == null) {
                result = !ok ? Outcome.REJECTED : undecoded ? Outcome.READ_WITH_UNDECODED_SECTIONS : Outcome.READ;
            }
        }
        return result;
    }

    static Stream<Arguments> seeds(int n) {
        List<String> sources = new ArrayList<>(SOURCES);
        sources.add("postcopy");
        return IntStream.range(0, n).mapToObj(i -> Arguments.of(sources.get(i % sources.size()), 0x5EED0000L + i));
    }

    static Stream<Arguments> flipSeeds() {
        return seeds(70);
    }

    static Stream<Arguments> insertSeeds() {
        return seeds(35);
    }

    static Stream<Arguments> lengthSeeds() {
        return seeds(49);
    }

    /** A position biased towards the structure: the first 512 bytes, the device state, or anywhere. */
    static int position(RandomGenerator rnd, byte[] s) {
        int tailStart = Math.max(0, s.length - 140_000);
        return switch (rnd.nextInt(3)) {
            case 0 -> rnd.nextInt(Math.min(512, s.length));
            case 1 -> tailStart + rnd.nextInt(s.length - tailStart);
            default -> rnd.nextInt(s.length);
        };
    }

    static final java.util.concurrent.atomic.AtomicInteger FLIPS_REJECTED = new java.util.concurrent.atomic.AtomicInteger();
    static final java.util.concurrent.atomic.AtomicInteger LENGTHS_REJECTED = new java.util.concurrent.atomic.AtomicInteger();

    /** The mutations must reach the checks: most of them make the stream invalid. */
    @org.junit.jupiter.api.AfterAll
    static void mutationsWereDetected() {
        assertThat(FLIPS_REJECTED.get()).as("bit-flip cases rejected of 70").isGreaterThan(20);
        assertThat(LENGTHS_REJECTED.get()).as("absurd-length cases rejected of 49").isGreaterThan(30);
    }

    @ParameterizedTest(name = "{0} seed {1}")
    @MethodSource("flipSeeds")
    void bitFlips(String fixture, long seed) {
        RandomGenerator rnd = new java.util.SplittableRandom(seed);
        byte[] s = source(fixture).clone();
        int flips = 1 + rnd.nextInt(8);
        for (int i = 0; i < flips; i++) {
            s[position(rnd, s)] ^= (byte) (1 << rnd.nextInt(8));
        }
        if (!check(s, fixture + " seed " + seed + " (" + flips + " flips)")) {
            FLIPS_REJECTED.incrementAndGet();
        }
    }

    @ParameterizedTest(name = "{0} seed {1}")
    @MethodSource("insertSeeds")
    void insertions(String fixture, long seed) {
        RandomGenerator rnd = new java.util.SplittableRandom(seed);
        byte[] s = source(fixture);
        int at = position(rnd, s);
        byte[] ins = new byte[1 + rnd.nextInt(16)];
        rnd.nextBytes(ins);
        byte[] m = new byte[s.length + ins.length];
        System.arraycopy(s, 0, m, 0, at);
        System.arraycopy(ins, 0, m, at, ins.length);
        System.arraycopy(s, at, m, at + ins.length, s.length - at);
        check(m, fixture + " seed " + seed + " (" + ins.length + " bytes inserted at " + at + ")");
    }

    /** Cuts at every byte of the first 400 and at 60 seeded points; a cut before EOF must fail. */
    @Test
    void truncations() {
        RandomGenerator rnd = new java.util.SplittableRandom(0x7255C47L);
        for (String fixture : List.of("pc-16M-paused.mig", "pc-16M-ignore-shared-uuid.mig", "postcopy")) {
            byte[] s = source(fixture);
            long eofAt = eofOffset(s);
            List<Integer> cuts = new ArrayList<>();
            for (int i = 0; i < 400; i++) {
                cuts.add(i);
            }
            for (int i = 0; i < 60; i++) {
                cuts.add(rnd.nextInt(s.length));
            }
            for (int cut : cuts) {
                boolean read = check(java.util.Arrays.copyOf(s, cut), fixture + " cut at " + cut);
                if (cut <= eofAt) {
                    assertThat(read).as(fixture + " cut at " + cut + " before EOF at " + eofAt).isFalse();
                }
            }
        }
    }

    /** The EOF byte: the last byte before the trailer, or the last byte of a stream without one. */
    static long eofOffset(byte[] s) {
        VmDescription d = Analyzer.locateTrailer(s, Limits.DEFAULT);
        return d != null ? d.offset() - 1 : s.length - 1;
    }

    /** Offsets of length fields: configuration name, vmdesc, MEM_SIZE, block lengths, XBZRLE, COMPRESS_PAGE, commands. */
    /** Length fields grouped by kind, at most a few of each. */
    static Map<String, List<int[]>> lengthFieldsByKind(byte[] s) {
        Map<String, List<int[]>> kinds = new java.util.LinkedHashMap<>();
        java.util.function.BiConsumer<String, int[]> add = (k, f) -> {
            List<int[]> l = kinds.computeIfAbsent(k, x -> new ArrayList<>());
            if (l.size() < 4) {
                l.add(f);
            }
        };
        List<int[]> out = new ArrayList<>() {
            @Override
            public boolean add(int[] f) {
                add.accept("f" + f[1], f);
                return true;
            }
        };
        add.accept("configuration name", new int[] {9, 4});
        VmDescription d = Analyzer.locateTrailer(s, Limits.DEFAULT);
        if (d != null) {
            add.accept("vmdesc", new int[] {(int) d.offset() + 1, 4});
        }
        StreamVisitor v = new StreamVisitor() {
            @Override
            public void ramRecord(SectionHeader h, RamRecord r) {
                int at = (int) r.offset() + 8 + (r.block() != null ? 1 + r.block().length() : 0);
                switch (r.kind()) {
                    case MEM_SIZE -> {
                        add.accept("ram total", new int[] {(int) r.offset(), 8});
                        add.accept("block name", new int[] {(int) r.offset() + 8, 1});
                        add.accept("block length", new int[] {(int) r.offset() + 9 + r.blocks().get(0).name().length(), 8});
                    }
                    case XBZRLE -> add.accept("xbzrle", new int[] {at + 1, 2});
                    case COMPRESS_PAGE -> add.accept("compress", new int[] {at, 4});
                    case PAGE, ZERO -> {
                        if (r.block() != null) {
                            add.accept("page block name", new int[] {(int) r.offset() + 8, 1});
                        }
                    }
                    default -> {
                    }
                }
            }

            @Override
            public void command(StreamEvents.Command c) {
                add.accept("command", new int[] {(int) c.offset() + 3, 2});
            }

            @Override
            public void packageStart(StreamEvents.Command c, int blobLength) {
                add.accept("package", new int[] {(int) c.offset() + 5, 4});
            }

            @Override
            public void sectionStart(SectionHeader h) {
                if (h.type() == org.livemig.stream.QemuStream.SECTION_FULL) {
                    add.accept("idstr", new int[] {(int) h.offset() + 5, 1});
                }
            }
        };
        try (StreamReader r = new StreamReader(v, Limits.DEFAULT, null, null, false)) {
            r.read(MigrationFile.ofBytes(s));
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
        return kinds;
    }

    static final long[] ABSURD = {0xFFFFFFFFFFFFFFFFL, 0x7FFFFFFFFFFFFFFFL, 0x8000000000000000L, 0x00FFFFFFFFFFFFFFL,
        0x0100000000000000L, 0L, 0x1000L};

    @ParameterizedTest(name = "{0} seed {1}")
    @MethodSource("lengthSeeds")
    void absurdLengths(String fixture, long seed) {
        RandomGenerator rnd = new java.util.SplittableRandom(seed);
        byte[] original = source(fixture);
        byte[] s = original.clone();
        List<List<int[]>> kinds = new ArrayList<>(lengthFieldsByKind(s).values());
        List<int[]> kind = kinds.get(rnd.nextInt(kinds.size()));
        int[] f = kind.get(rnd.nextInt(kind.size()));
        long v = ABSURD[rnd.nextInt(ABSURD.length)];
        for (int i = 0; i < f[1]; i++) {
            s[f[0] + i] = (byte) (v >>> (8 * (f[1] - 1 - i)));
        }
        String what = fixture + " seed " + seed + " (" + f[1] + "-byte length at " + f[0] + " set to 0x"
                + Long.toHexString(v) + ")";
        Outcome o = outcome(s, what);
        if (o == Outcome.REJECTED) {
            LENGTHS_REJECTED.incrementAndGet();
        } else if (!java.util.Arrays.equals(s, original)) {
            // a wrong section name is tolerated: that section is reported as not decoded
            assertThat(o).as(what).isEqualTo(Outcome.READ_WITH_UNDECODED_SECTIONS);
        }
    }

    @Test
    void everyMutationSourceIsReadIntact() {
        for (String s : SOURCES) {
            assertThat(check(source(s), s)).as(s).isTrue();
        }
        assertThat(check(source("postcopy"), "postcopy")).isTrue();
        assertThat(RamPageRecord.Kind.values()).isNotEmpty();
    }
}
