package org.livemig.stream;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * One channel's compression stream, packet after packet: what the encoder flushes for a packet
 * decodes to exactly its pages (against the history of the packets before it), and a decoder
 * never writes outside the pages it is given, whatever the data.
 */
class MultifdCompressionTest {
    static final int PAGE = 4096;
    static final int PAGES = MultifdPacket.PAGES_PER_PACKET;

    /** A source "RAM" of compressible, random and zero pages, and a destination RAM of the same size. */
    static MemorySegment ram(SplittableRandom r, int pages) {
        MemorySegment ram = Arena.ofAuto().allocate((long) pages * PAGE, PAGE);
        byte[] page = new byte[PAGE];
        for (int p = 0; p < pages; p++) {
            page = XbzrleCodecTest.change(XbzrleCodecTest.randomPage(r), r);
            MemorySegment.copy(page, 0, ram, ValueLayout.JAVA_BYTE, (long) p * PAGE, PAGE);
        }
        return ram;
    }

    @ParameterizedTest(name = "{0}")
    @EnumSource(value = MultifdCompression.Method.class, names = {"ZLIB", "ZSTD"})
    void packetsDecodeToTheirPagesOnOneStream(MultifdCompression.Method method) {
        long seed = XbzrleCodecTest.BASE_SEED + method.ordinal();
        SplittableRandom r = new SplittableRandom(seed);
        int pages = 1024;
        MemorySegment src = ram(r, pages);
        MemorySegment dst = Arena.ofAuto().allocate((long) pages * PAGE, PAGE);
        try (MultifdCompression.Encoder enc = MultifdCompression.encoder(method, 1, PAGES, PAGE);
             MultifdCompression.Decoder dec = MultifdCompression.decoder(method, PAGES, PAGE)) {
            for (int packet = 0; packet < 40; packet++) {
                int count = packet == 0 ? 1 : 1 + r.nextInt(PAGES);
                long[] offsets = new long[count];
                for (int i = 0; i < count; i++) {
                    offsets[i] = (long) r.nextInt(pages) * PAGE;
                }
                int len = enc.encode(src, offsets, count, PAGE);
                assertThat(len).as("seed %d packet %d", seed, packet).isPositive()
                        .isLessThanOrEqualTo(MultifdCompression.maxPacketData(PAGES, PAGE));
                MemorySegment.copy(enc.output(), 0, dec.input(), 0, len);
                assertThat(dec.decode(len, dst, offsets, count, PAGE)).as("seed %d packet %d", seed, packet).isNull();
                for (int i = 0; i < count; i++) {
                    assertThat(dst.asSlice(offsets[i], PAGE).mismatch(src.asSlice(offsets[i], PAGE)))
                            .as("seed %d packet %d page %d", seed, packet, i).isEqualTo(-1);
                }
            }
            assertThat(enc.encode(src, new long[0], 0, PAGE)).as("no pages, no data").isZero();
        }
    }

    @ParameterizedTest(name = "{0}")
    @EnumSource(value = MultifdCompression.Method.class, names = {"ZLIB", "ZSTD"})
    void wrongCountsAndCutDataAreRefused(MultifdCompression.Method method) {
        SplittableRandom r = new SplittableRandom(XbzrleCodecTest.BASE_SEED);
        MemorySegment src = ram(r, 8);
        long[] offsets = {0, PAGE, 2 * PAGE, 3 * PAGE};
        MemorySegment dst = Arena.ofAuto().allocate(8L * PAGE, PAGE);
        try (MultifdCompression.Encoder enc = MultifdCompression.encoder(method, 3, PAGES, PAGE)) {
            int len = enc.encode(src, offsets, 4, PAGE);
            byte[] data = enc.output().asSlice(0, len).toArray(ValueLayout.JAVA_BYTE);
            try (MultifdCompression.Decoder dec = MultifdCompression.decoder(method, PAGES, PAGE)) {
                MemorySegment.copy(data, 0, dec.input(), ValueLayout.JAVA_BYTE, 0, len);
                assertThat(dec.decode(len, dst, offsets, 3, PAGE)).contains("more than its 3 pages");
            }
            try (MultifdCompression.Decoder dec = MultifdCompression.decoder(method, PAGES, PAGE)) {
                MemorySegment.copy(data, 0, dec.input(), ValueLayout.JAVA_BYTE, 0, len);
                assertThat(dec.decode(len, dst, new long[] {0, PAGE, 2 * PAGE, 3 * PAGE, 4 * PAGE}, 5, PAGE))
                        .contains("page 4");
            }
            try (MultifdCompression.Decoder dec = MultifdCompression.decoder(method, PAGES, PAGE)) {
                MemorySegment.copy(data, 0, dec.input(), ValueLayout.JAVA_BYTE, 0, len / 2);
                assertThat(dec.decode(len / 2, dst, offsets, 4, PAGE)).contains("ends inside page");
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @EnumSource(value = MultifdCompression.Method.class, names = {"ZLIB", "ZSTD"})
    void corruptDataNeverWritesOutsideItsPages(MultifdCompression.Method method) {
        // Pages 1 and 3 of five receive; 0, 2 and 4 are guards.
        SplittableRandom seeds = new SplittableRandom(XbzrleCodecTest.BASE_SEED ^ method.ordinal());
        MemorySegment src = ram(new SplittableRandom(3), 4);
        long[] sent = {0, PAGE};
        long[] into = {PAGE, 3 * PAGE};
        MemorySegment dst = Arena.ofAuto().allocate(5L * PAGE, PAGE);
        for (int n = 0; n < 300; n++) {
            long seed = seeds.nextLong();
            SplittableRandom r = new SplittableRandom(seed);
            byte[] data;
            try (MultifdCompression.Encoder enc = MultifdCompression.encoder(method, 1, PAGES, PAGE)) {
                int len = enc.encode(src, sent, 2, PAGE);
                data = enc.output().asSlice(0, len).toArray(ValueLayout.JAVA_BYTE);
            }
            for (int k = 0, flips = 1 + r.nextInt(4); k < flips; k++) {
                data[r.nextInt(data.length)] ^= (byte) (1 + r.nextInt(255));
            }
            int len = r.nextInt(4) == 0 ? r.nextInt(data.length + 1) : data.length;
            dst.fill((byte) 0x5A);
            try (MultifdCompression.Decoder dec = MultifdCompression.decoder(method, PAGES, PAGE)) {
                MemorySegment.copy(data, 0, dec.input(), ValueLayout.JAVA_BYTE, 0, len);
                dec.decode(len, dst, into, 2, PAGE);
            }
            for (long g : new long[] {0, 2 * PAGE, 4 * PAGE}) {
                assertThat(dst.asSlice(g, PAGE).toArray(ValueLayout.JAVA_BYTE))
                        .as("guard page %d, seed %d", g / PAGE, seed).containsOnly((byte) 0x5A);
            }
        }
    }
}
