package org.livemig.stream;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.zip.Deflater;
import org.junit.jupiter.api.Test;

/** COMPRESS_PAGE: a page deflated alone, inflated back exactly, and bad data refused with the reason. */
class CompressedPageCodecTest {
    static final int PAGE = 4096;

    static byte[] deflate(byte[] data, int level) {
        Deflater d = new Deflater(level);
        d.setInput(data);
        d.finish();
        byte[] out = new byte[data.length * 2 + 64];
        int n = d.deflate(out);
        d.end();
        return Arrays.copyOf(out, n);
    }

    @Test
    void everyLevelRoundTripsEveryKindOfPage() {
        SplittableRandom seeds = new SplittableRandom(XbzrleCodecTest.BASE_SEED);
        byte[] out = new byte[CompressedPageCodec.compressBound(PAGE)];
        try (CompressedPageCodec.Decompressor inflate = new CompressedPageCodec.Decompressor(PAGE)) {
            for (int level = 0; level <= 9; level++) {
                try (CompressedPageCodec.Compressor deflate = new CompressedPageCodec.Compressor(level, PAGE)) {
                    for (int n = 0; n < 60; n++) {
                        long seed = seeds.nextLong();
                        byte[] page = XbzrleCodecTest.change(XbzrleCodecTest.randomPage(new SplittableRandom(seed)),
                                new SplittableRandom(seed + 1));
                        MemorySegment ram = XbzrleCodecTest.segment(page);
                        int len = deflate.compress(ram, 0, out, 0);
                        assertThat(len).as("level %d seed %d", level, seed).isBetween(1, CompressedPageCodec.compressBound(PAGE));
                        assertThat(inflate.decompress(out, 0, len)).as("level %d seed %d", level, seed).isNull();
                        assertThat(inflate.page()).as("level %d seed %d", level, seed).isEqualTo(page);
                    }
                }
            }
        }
    }

    @Test
    void anythingButExactlyOnePageIsRefused() {
        byte[] data = new byte[PAGE];
        new SplittableRandom(9).nextBytes(data);
        try (CompressedPageCodec.Decompressor c = new CompressedPageCodec.Decompressor(PAGE)) {
            assertThat(c.decompress(deflate(new byte[2 * PAGE], 1), 0, deflate(new byte[2 * PAGE], 1).length))
                    .contains("more than one");
            byte[] small = deflate(new byte[100], 1);
            assertThat(c.decompress(small, 0, small.length)).contains("100 bytes");
            byte[] z = deflate(data, 1);
            assertThat(c.decompress(z, 0, z.length / 2)).contains("ends after");
            assertThat(c.decompress(new byte[] {1, 2, 3, 4}, 0, 4)).contains("corrupt");
            byte[] trailing = Arrays.copyOf(z, z.length + 3);
            assertThat(c.decompress(trailing, 0, trailing.length)).contains("3 bytes follow");
            assertThat(c.decompress(z, 0, z.length)).isNull();
            assertThat(c.page()).isEqualTo(data);
        }
    }

    @Test
    void theLengthIsChecked() throws Exception {
        assertThat(CompressedPageCodec.compressBound(PAGE)).isEqualTo(4096 + 1 + 0 + 0 + 13);
        assertThat(CompressedPageCodec.readLength(MigrationFile.ofBytes(new byte[] {0, 0, 0x10, 0x0E}), PAGE))
                .isEqualTo(4110);
        assertThatThrownBy(() -> CompressedPageCodec.readLength(MigrationFile.ofBytes(new byte[] {0, 0, 0x10, 0x0F}), PAGE))
                .isInstanceOf(StreamFormatException.class).hasMessageContaining("4111 bytes");
        assertThatThrownBy(() -> CompressedPageCodec.readLength(MigrationFile.ofBytes(new byte[] {0, 0, 0, 0}), PAGE))
                .isInstanceOf(StreamFormatException.class).hasMessageContaining("0 bytes");
        assertThatThrownBy(() -> CompressedPageCodec.readLength(MigrationFile.ofBytes(new byte[] {(byte) 0xFF, 0, 0, 0}), PAGE))
                .isInstanceOf(StreamFormatException.class).hasMessageContaining("4278190080 bytes");
    }
}
