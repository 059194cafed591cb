package org.livemig.analyze;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.FieldSource;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.RamPageRecord;
import org.livemig.stream.SectionHeader;

/**
 * Byte-exact round trip: a fixture is decoded by {@link StreamReader} and written back by
 * {@link StreamRewriter} from the decoded form (section headers from their fields, device
 * sections re-encoded from their decoded values, RAM records with the same order, flags and page
 * contents, commands from their payloads); the bytes must equal the fixture's.
 *
 * <p>Every fixture round-trips this way. pc-16M-paused, q35-32M-paused, pc-16M-pattern-memfile,
 * pc-16M-ignore-shared-uuid (configuration subsections, per-block addresses) and
 * pc-16M-live-tcp-returnpath (OPEN_RETURN_PATH and PING commands) need nothing more.
 * pc-16M-dirtyloop-xbzrle and pc-16M-pattern-compress need the rewriter to re-encode their pages
 * ({@link StreamRewriter#reencode}): an XBZRLE delta is not a function of the decoded page alone
 * but of the page the destination held before, and a COMPRESS_PAGE payload depends on the source's
 * zlib level. With a copy of the destination's RAM and level 1 (the compress-level the fixture
 * was made with, QEMU's default), all 6273 deltas and all 304 zlib streams come out as QEMU wrote
 * them. A different zlib build or level on the source would make the compressed fixture differ;
 * that is why copying the payloads through is also tested ({@link #encodedPayloadsCarriedThrough}).
 */
class RoundTripTest {
    static final List<String> EXACT = List.of(
            "pc-16M-paused.mig",
            "q35-32M-paused.mig",
            "pc-16M-pattern-memfile.mig",
            "pc-16M-ignore-shared-uuid.mig",
            "pc-16M-live-tcp-returnpath.mig");

    static final List<String> ENCODED = List.of("pc-16M-dirtyloop-xbzrle.mig", "pc-16M-pattern-compress.mig");

    /**
     * Decodes with the trailer known up front (so every device section is decoded as it is read,
     * never carried as raw bytes: asserted) and writes the decoded form back.
     */
    static byte[] rewrite(byte[] stream, boolean plainPages) throws Exception {
        return rewrite(stream, plainPages, false);
    }

    static byte[] rewrite(byte[] stream, boolean plainPages, boolean reencode) throws Exception {
        MigrationFile out = MigrationFile.toMemory();
        StreamRewriter w = new StreamRewriter(out, org.livemig.stream.QemuStream.TARGET_PAGE_SIZE);
        if (plainPages) {
            w.reencodePages();
        }
        if (reencode) {
            w.reencode(1);
        }
        int[] decoded = new int[2];
        StreamVisitor check = new StreamVisitor() {
            @Override
            public void deviceSection(SectionHeader h, StreamEvents.DeviceBody body) {
                decoded[body instanceof StreamEvents.Decoded ? 0 : 1]++;
            }
        };
        VmDescription trailer = Analyzer.locateTrailer(stream, Limits.DEFAULT);
        assertThat(trailer).isNotNull();
        try (StreamReader r = new StreamReader(StreamVisitor.tee(check, w), Limits.DEFAULT, trailer, null, true)) {
            r.read(MigrationFile.ofBytes(stream));
        }
        assertThat(decoded[0]).as("device sections decoded").isGreaterThan(20);
        assertThat(decoded[1]).as("device sections carried raw").isZero();
        return out.toByteArray();
    }

    /** Decodes without any description and writes back (device sections carried as split bytes). */
    static byte[] rewriteRaw(byte[] stream) throws Exception {
        MigrationFile out = MigrationFile.toMemory();
        try (StreamReader r = new StreamReader(new StreamRewriter(out, org.livemig.stream.QemuStream.TARGET_PAGE_SIZE), Limits.DEFAULT, null, null,
                true)) {
            r.read(MigrationFile.ofBytes(stream));
        }
        return out.toByteArray();
    }

    @ParameterizedTest
    @FieldSource("EXACT")
    void decodedFormWritesTheSameBytes(String fixture) throws Exception {
        byte[] original = Fixtures.bytes(fixture);
        byte[] again = rewrite(original, false);
        assertThat(again.length).isEqualTo(original.length);
        assertThat(java.util.Arrays.mismatch(again, original)).as("first differing byte").isEqualTo(-1);
    }

    @ParameterizedTest
    @FieldSource("ENCODED")
    void pagesReencodedFromTheDecodedFormWriteTheSameBytes(String fixture) throws Exception {
        byte[] original = Fixtures.bytes(fixture);
        byte[] again = rewrite(original, false, true);
        assertThat(again.length).isEqualTo(original.length);
        assertThat(java.util.Arrays.mismatch(again, original)).as("first differing byte").isEqualTo(-1);
    }

    @ParameterizedTest
    @FieldSource("EXACT")
    void reencodingChangesNothingWithoutEncodedPages(String fixture) throws Exception {
        byte[] original = Fixtures.bytes(fixture);
        assertThat(java.util.Arrays.mismatch(rewrite(original, false, true), original)).isEqualTo(-1);
    }

    @ParameterizedTest
    @FieldSource("ENCODED")
    void encodedPayloadsCarriedThrough(String fixture) throws Exception {
        byte[] original = Fixtures.bytes(fixture);
        assertThat(java.util.Arrays.mismatch(rewrite(original, false), original)).isEqualTo(-1);
    }

    @ParameterizedTest
    @FieldSource("ENCODED")
    void pagesReencodedAsPlainDecodeToTheSameRam(String fixture) throws Exception {
        byte[] original = Fixtures.bytes(fixture);
        byte[] plain = rewrite(original, true);
        assertThat(plain).isNotEqualTo(original);
        try (Analysis a = Analyzer.analyze(original, Analyzer.Options.DEFAULT);
             Analysis b = Analyzer.analyze(plain, Analyzer.Options.DEFAULT)) {
            assertThat(b.stats().ram(RamPageRecord.Kind.XBZRLE)).isZero();
            assertThat(b.stats().ram(RamPageRecord.Kind.COMPRESS_PAGE)).isZero();
            assertThat(b.state()).isEqualTo(a.state());
            for (RamImage.Block blk : a.ram().blocks().values()) {
                int len = (int) blk.usedLength();
                assertThat(b.ram().read(blk.name(), 0, len)).as(blk.name())
                        .isEqualTo(a.ram().read(blk.name(), 0, len));
            }
        }
    }

    @Test
    void rewrittenStreamIsReadAgainWithEqualState() throws Exception {
        byte[] original = Fixtures.bytes("q35-32M-paused.mig");
        try (Analysis a = Analyzer.analyze(rewrite(original, false), Analyzer.Options.DEFAULT)) {
            assertThat(a.undecoded()).isEmpty();
            assertThat(a.state()).isEqualTo(Json.MAPPER.readTree(Fixtures.bytes("q35-32M-paused.mig.state.json")));
        }
    }
}
