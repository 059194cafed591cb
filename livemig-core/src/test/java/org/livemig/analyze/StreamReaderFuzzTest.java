package org.livemig.analyze;

import static org.assertj.core.api.Assertions.assertThat;

import com.code_intelligence.jazzer.junit.FuzzTest;
import java.io.IOException;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.livemig.stream.RamPageRecord;
import org.livemig.stream.StreamFormatException;

/**
 * Jazzer fuzz target over the stream reader. Any input must be read or rejected with a
 * {@link StreamFormatException} whose offset lies inside the input; any other throwable (including
 * an OutOfMemoryError or an assertion) is a finding.
 *
 * <p>Without {@code JAZZER_FUZZ=1} the seed corpus in
 * {@code StreamReaderFuzzTestInputs/fuzzReader} (every fixture reduced to a few KiB, and small
 * structured seeds holding every record kind, both made by {@link FuzzSeedGenerator}, plus any
 * crashing inputs found earlier) runs as a regression test. The fixtures are reduced because
 * whole 300 KiB streams slow the instrumented fuzzer down to a few dozen executions a second.
 * With it, Jazzer fuzzes for {@code maxDuration}:
 * {@code JAZZER_FUZZ=1 mvn -pl livemig-core verify -Dtest=StreamReaderFuzzTest}.
 */
class StreamReaderFuzzTest {
    /** Tight limits so that the worst input stays cheap. */
    static final Limits LIMITS = new Limits(4 << 20, 4 << 20, 1 << 20, 1 << 20, 100_000, 16, 256, 64, 1024,
            32L << 20);
    static final Analyzer.Options OPTIONS = Analyzer.Options.DEFAULT.withLimits(LIMITS);

    @FuzzTest(maxDuration = "3m")
    void fuzzReader(byte[] data) throws IOException {
        read(data, false);
        read(data, true);
    }

    private static void read(byte[] data, boolean streaming) throws IOException {
        try (Analysis a = streaming ? Analyzer.analyze(Fixtures.channel(data), OPTIONS)
                : Analyzer.analyze(data, OPTIONS)) {
            if (a.stats().bytes > data.length) {
                throw new AssertionError("read " + a.stats().bytes + " bytes of " + data.length);
            }
            a.state();
        } catch (StreamFormatException e) {
            if (e.offset() < 0 || e.offset() > data.length || !e.getMessage().contains("at byte offset")) {
                throw new AssertionError("format error without a valid offset: " + e.getMessage(), e);
            }
        }
    }

    @Test
    void reducedFixturesAreValidStreams() throws Exception {
        for (String f : Fixtures.ALL) {
            byte[] r = FuzzSeedGenerator.reduce(Fixtures.bytes(f), 12);
            assertThat(r.length).as(f).isLessThan(40_000);
            try (Analysis a = Analyzer.analyze(r, OPTIONS)) {
                assertThat(a.undecoded()).as(f).isEmpty();
                assertThat(a.state().size()).as(f).isGreaterThanOrEqualTo(FuzzSeedGenerator.DEVICES.size());
            }
        }
    }

    @Test
    void structuredSeedsAreValidStreams() throws Exception {
        List<byte[]> seeds = FuzzSeedGenerator.seeds();
        assertThat(seeds).hasSize(4);
        for (byte[] s : seeds) {
            try (Analysis a = Analyzer.analyze(s, OPTIONS)) {
                assertThat(a.stats().bytes).isEqualTo(s.length);
                assertThat(a.state().size()).isGreaterThanOrEqualTo(7);
            }
        }
        try (Analysis a = Analyzer.analyze(seeds.get(0), OPTIONS)) {
            assertThat(a.undecoded()).isEmpty();
            assertThat(a.stats().ram(RamPageRecord.Kind.XBZRLE)).isEqualTo(1);
            assertThat(a.stats().ram(RamPageRecord.Kind.COMPRESS_PAGE)).isEqualTo(1);
            // page 1 of pc.ram: the PAGE (i*3+3), then the XBZRLE delta changed bytes 0 and 128..129
            byte[] p = a.ram().read("pc.ram", 0x1000, 4096);
            assertThat(p[0]).isEqualTo((byte) 0x75);
            assertThat(p[1]).isEqualTo((byte) 6);
            assertThat(p[128]).isEqualTo((byte) 0x11);
            assertThat(p[129]).isEqualTo((byte) 0x15);
            assertThat(a.ram().read("pc.ram", 0x2000, 4)).containsOnly(7);
            assertThat(a.ram().read("pc.bios", 0x1000, 2)).containsExactly(5, 10);
        }
    }
}
