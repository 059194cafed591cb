package org.livemig.stream;

import static org.assertj.core.api.Assertions.assertThat;

import com.code_intelligence.jazzer.junit.FuzzTest;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIfSystemProperty;

/**
 * Jazzer fuzz target over the page decoders a destination runs on what a source sends: XBZRLE
 * deltas (and their record payload), COMPRESS_PAGE zlib streams, and multifd zlib and zstd packet
 * data. Any input must decode or be refused with a message (or a {@link StreamFormatException} for
 * a payload); any other throwable, a write outside the pages given, or a page of another size is
 * a finding.
 *
 * <p>Input: byte 0 picks the decoder (low two bits), byte 1 the page count of a multifd packet
 * (1 to 8); the rest is the data. Without {@code JAZZER_FUZZ=1} the seed corpus in
 * {@code PageDecodersFuzzTestInputs/fuzzDecoders} (valid data of each kind, written by
 * {@link #writeSeeds}) runs as a regression test; with it, Jazzer fuzzes for {@code maxDuration}.
 */
class PageDecodersFuzzTest {
    static final int PAGE = 4096;
    /** Eight pages that receive, each between two guard pages. */
    static final int SLOTS = 8;
    private static final byte GUARD = 0x5A;
    private static final Arena ARENA = Arena.ofAuto();
    private static final MemorySegment RAM = ARENA.allocate((2L * SLOTS + 1) * PAGE, PAGE);
    private static final MemorySegment GUARD_PAGE = ARENA.allocate(PAGE).fill(GUARD);
    private static final long[] OFFSETS = new long[SLOTS];

    static {
        for (int i = 0; i < SLOTS; i++) {
            OFFSETS[i] = (2L * i + 1) * PAGE;
        }
    }

    private static final CompressedPageCodec.Decompressor INFLATE = new CompressedPageCodec.Decompressor(PAGE);

    @FuzzTest(maxDuration = "90s")
    void fuzzDecoders(byte[] input) throws IOException {
        if (input.length < 2) {
            return;
        }
        int kind = input[0] & 3;
        int count = 1 + (input[1] & 7);
        byte[] data = Arrays.copyOfRange(input, 2, input.length);
        RAM.fill(GUARD);
        switch (kind) {
            case 0 -> {
                XbzrleCodec.decode(data, data.length, RAM, OFFSETS[0], PAGE);
                try {
                    byte[] into = new byte[PAGE];
                    int len = XbzrleCodec.readPayload(MigrationFile.ofBytes(data), into, PAGE);
                    if (len < 0 || len > PAGE) {
                        throw new AssertionError("payload length " + len);
                    }
                } catch (StreamFormatException e) {
                    // refused, with its offset
                }
            }
            case 1 -> {
                String err = INFLATE.decompress(data, 0, data.length);
                if (err == null && INFLATE.page().length != PAGE) {
                    throw new AssertionError("a page of " + INFLATE.page().length + " bytes");
                }
            }
            default -> {
                MultifdCompression.Method m = kind == 2 ? MultifdCompression.Method.ZLIB : MultifdCompression.Method.ZSTD;
                try (MultifdCompression.Decoder dec = MultifdCompression.decoder(m, 128, PAGE)) {
                    int len = (int) Math.min(data.length, dec.input().byteSize());
                    MemorySegment.copy(data, 0, dec.input(), ValueLayout.JAVA_BYTE, 0, len);
                    String err = dec.decode(len, RAM, OFFSETS, count, PAGE);
                    if (err != null && (dec.failedPage() < -1 || dec.failedPage() >= count)) {
                        throw new AssertionError("failed page " + dec.failedPage() + " of " + count);
                    }
                }
            }
        }
        for (int i = 0; i <= SLOTS; i++) {
            if (RAM.asSlice(2L * i * PAGE, PAGE).mismatch(GUARD_PAGE) >= 0) {
                throw new AssertionError("guard page " + i + " written by decoder " + kind);
            }
        }
    }

    /** Valid inputs of every kind: what the fuzzer starts from. */
    static List<byte[]> seeds() {
        List<byte[]> seeds = new ArrayList<>();
        MemorySegment old = ARENA.allocate(PAGE);
        MemorySegment cur = ARENA.allocate(PAGE);
        for (int i = 0; i < PAGE; i++) {
            cur.set(ValueLayout.JAVA_BYTE, i, (byte) (i % 7 == 0 ? i : 0));
        }
        byte[] delta = new byte[PAGE];
        int n = XbzrleCodec.encode(old, 0, cur, 0, PAGE, delta, PAGE - 1);
        seeds.add(concat(new byte[] {0, 0}, Arrays.copyOf(delta, n)));
        byte[] payload = new byte[3 + 5];
        payload[0] = 1;
        payload[2] = 5;
        System.arraycopy(new byte[] {0, 1, 0x75, 2, 9}, 0, payload, 3, 5);
        seeds.add(concat(new byte[] {0, 0}, payload));
        byte[] z = new byte[CompressedPageCodec.compressBound(PAGE)];
        try (CompressedPageCodec.Compressor c = new CompressedPageCodec.Compressor(1, PAGE)) {
            seeds.add(concat(new byte[] {1, 0}, Arrays.copyOf(z, c.compress(cur, 0, z, 0))));
        }
        MemorySegment src = ARENA.allocate(3L * PAGE);
        src.asSlice(0, PAGE).copyFrom(cur);
        src.asSlice(2 * PAGE, PAGE).fill((byte) 'x');
        for (MultifdCompression.Method m : List.of(MultifdCompression.Method.ZLIB, MultifdCompression.Method.ZSTD)) {
            try (MultifdCompression.Encoder e = MultifdCompression.encoder(m, 1, 128, PAGE)) {
                int len = e.encode(src, new long[] {0, PAGE, 2 * PAGE}, 3, PAGE);
                seeds.add(concat(new byte[] {(byte) (m == MultifdCompression.Method.ZLIB ? 2 : 3), 2},
                        e.output().asSlice(0, len).toArray(ValueLayout.JAVA_BYTE)));
            }
        }
        return seeds;
    }

    private static byte[] concat(byte[] a, byte[] b) {
        byte[] r = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, r, a.length, b.length);
        return r;
    }

    @Test
    void seedsDecodeWhole() throws IOException {
        for (byte[] s : seeds()) {
            fuzzDecoders(s); // no finding
        }
        byte[] xbzrle = seeds().get(0);
        RAM.fill(GUARD);
        assertThat(XbzrleCodec.decode(Arrays.copyOfRange(xbzrle, 2, xbzrle.length), xbzrle.length - 2, RAM.fill((byte) 0),
                OFFSETS[0], PAGE)).isNull();
        for (byte[] s : seeds().subList(3, 5)) {
            MultifdCompression.Method m = s[0] == 2 ? MultifdCompression.Method.ZLIB : MultifdCompression.Method.ZSTD;
            try (MultifdCompression.Decoder dec = MultifdCompression.decoder(m, 128, PAGE)) {
                MemorySegment.copy(s, 2, dec.input(), ValueLayout.JAVA_BYTE, 0, s.length - 2);
                assertThat(dec.decode(s.length - 2, RAM, OFFSETS, 3, PAGE)).as(m.toString()).isNull();
                assertThat(RAM.get(ValueLayout.JAVA_BYTE, OFFSETS[2])).isEqualTo((byte) 'x');
            }
        }
    }

    /**
     * Writes {@link #seeds} into the corpus: run with
     * {@code -Dlivemig.writeSeeds=src/test/resources/org/livemig/stream/PageDecodersFuzzTestInputs/fuzzDecoders}.
     */
    @Test
    @EnabledIfSystemProperty(named = "livemig.writeSeeds", matches = ".+")
    void writeSeeds() throws IOException {
        Path dir = Path.of(System.getProperty("livemig.writeSeeds"));
        Files.createDirectories(dir);
        String[] names = {"xbzrle-delta", "xbzrle-payload", "compress-page", "multifd-zlib", "multifd-zstd"};
        List<byte[]> seeds = seeds();
        for (int i = 0; i < seeds.size(); i++) {
            Files.write(dir.resolve("seed-" + names[i]), seeds.get(i));
        }
    }
}
