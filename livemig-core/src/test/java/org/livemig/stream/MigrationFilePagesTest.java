package org.livemig.stream;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.ScatteringByteChannel;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * {@code bufferUpTo}, {@code peekBe32} and {@code readPages}: a multifd packet's pages read straight into RAM;
 * and adjacent pages queued with {@code putRam} written as one range.
 */
class MigrationFilePagesTest {
    private static final int PAGE = 4096;

    /** A scattering channel over bytes that hands out at most {@code maxPerRead} bytes a call and counts what it gave. */
    private static final class Source implements ScatteringByteChannel {
        final byte[] data;
        final int maxPerRead;
        int at;
        int scatteringReads;

        Source(byte[] data, int maxPerRead) {
            this.data = data;
            this.maxPerRead = maxPerRead;
        }

        @Override
        public long read(ByteBuffer[] dsts, int offset, int length) {
            if (at == data.length) {
                return -1;
            }
            scatteringReads++;
            long n = 0;
            for (int i = offset; i < offset + length && n < maxPerRead && at < data.length; i++) {
                int take = (int) Math.min(Math.min(dsts[i].remaining(), maxPerRead - n), data.length - at);
                dsts[i].put(data, at, take);
                at += take;
                n += take;
            }
            return n;
        }

        @Override
        public long read(ByteBuffer[] dsts) {
            return read(dsts, 0, dsts.length);
        }

        @Override
        public int read(ByteBuffer dst) {
            if (at == data.length) {
                return -1;
            }
            int take = Math.min(Math.min(dst.remaining(), maxPerRead), data.length - at);
            dst.put(data, at, take);
            at += take;
            return take;
        }

        @Override
        public boolean isOpen() {
            return true;
        }

        @Override
        public void close() {}
    }

    /** A header of 16 bytes, then the pages of {@code offsets} (some adjacent), then a trailer. */
    private static byte[] stream(byte[][] pages) {
        ByteBuffer b = ByteBuffer.allocate(16 + pages.length * PAGE + 8);
        b.putInt(0x11223344).putInt(1).putInt(7).putInt(128);
        for (byte[] p : pages) {
            b.put(p);
        }
        b.putLong(0x0102030405060708L);
        return b.array();
    }

    private static void check(ReadableByteChannel ch, byte[][] pages, long[] offsets, boolean scattered, Source src)
            throws IOException {
        MigrationFile f = MigrationFile.forReading(ch);
        assertThat(f.bufferUpTo(16)).isEqualTo(16);
        if (scattered) {
            assertThat(src.at).as("nothing read past the header").isEqualTo(16);
        }
        assertThat(f.peekBe32(8)).isEqualTo(7);
        assertThat(f.peekBe32(12)).isEqualTo(128);
        assertThat(f.getBe32()).isEqualTo(0x11223344);
        f.skip(12);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment ram = arena.allocate(64L * PAGE, PAGE);
            f.readPages(ram, offsets, offsets.length, PAGE);
            for (int i = 0; i < offsets.length; i++) {
                byte[] got = ram.asSlice(offsets[i], PAGE).toArray(ValueLayout.JAVA_BYTE);
                assertThat(got).as("page %d", i).isEqualTo(pages[i]);
            }
            assertThat(ram.get(ValueLayout.JAVA_BYTE, 5L * PAGE)).as("a page not in the list stays untouched").isZero();
        }
        assertThat(f.position()).isEqualTo(16L + offsets.length * PAGE);
        assertThat(f.getBe64()).isEqualTo(0x0102030405060708L);
        assertThat(f.atEof()).isTrue();
    }

    @Test
    void pagesGoStraightIntoRamWithFewScatteringReads() throws IOException {
        SplittableRandom r = new SplittableRandom(3);
        long[] offsets = {0, PAGE, 2L * PAGE, 9L * PAGE, 3L * PAGE, 40L * PAGE, 41L * PAGE};
        byte[][] pages = new byte[offsets.length][PAGE];
        for (byte[] p : pages) {
            r.nextBytes(p);
        }
        Source src = new Source(stream(pages), Integer.MAX_VALUE);
        check(src, pages, offsets, true, src);
        assertThat(src.scatteringReads).as("all the pages in one scattering read").isEqualTo(1);
    }

    @Test
    void shortReadsAndBufferedPagesAreTakenInOrder() throws IOException {
        SplittableRandom r = new SplittableRandom(4);
        long[] offsets = {PAGE, 2L * PAGE, 7L * PAGE, 8L * PAGE, 9L * PAGE, 30L * PAGE};
        byte[][] pages = new byte[offsets.length][PAGE];
        for (byte[] p : pages) {
            r.nextBytes(p);
        }
        // Reads of 1000 bytes: ranges end mid-page and the scattering read resumes there.
        Source src = new Source(stream(pages), 1000);
        check(src, pages, offsets, true, src);
        // A plain channel (no scattering): page by page through the buffer, which holds them all.
        Source plain = new Source(stream(pages), Integer.MAX_VALUE);
        ReadableByteChannel nonScattering = new ReadableByteChannel() {
            @Override
            public int read(ByteBuffer dst) {
                return plain.read(dst);
            }

            @Override
            public boolean isOpen() {
                return true;
            }

            @Override
            public void close() {}
        };
        check(nonScattering, pages, offsets, false, plain);
    }

    @Test
    void truncatedPagesAreAnErrorNamingWhatIsMissing() throws IOException {
        byte[] full = stream(new byte[][] {new byte[PAGE], new byte[PAGE]});
        byte[] cut = java.util.Arrays.copyOf(full, 16 + PAGE + 100);
        MigrationFile f = MigrationFile.forReading(new Source(cut, Integer.MAX_VALUE));
        assertThat(f.bufferUpTo(16)).isEqualTo(16);
        f.skip(16);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment ram = arena.allocate(4L * PAGE, PAGE);
            assertThatThrownBy(() -> f.readPages(ram, new long[] {0, 2L * PAGE}, 2, PAGE))
                    .isInstanceOf(StreamFormatException.class)
                    .hasMessageContaining("stream truncated");
        }
        MigrationFile empty = MigrationFile.forReading(new Source(new byte[0], 16));
        assertThat(empty.bufferUpTo(16)).as("end of stream at a boundary").isZero();
        MigrationFile shortOne = MigrationFile.forReading(new Source(new byte[5], 16));
        assertThat(shortOne.bufferUpTo(16)).isEqualTo(5);
        assertThatThrownBy(() -> shortOne.peekBe32(4)).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("only 5 bytes buffered");
    }

    @Test
    void adjacentPagesGoToTheKernelAsOneRange() throws IOException {
        RecordingSink sink = new RecordingSink();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment ram = arena.allocate(16L * PAGE, PAGE);
            for (long i = 0; i < ram.byteSize(); i++) {
                ram.set(ValueLayout.JAVA_BYTE, i, (byte) (i * 31 + i / PAGE));
            }
            MigrationFile f = MigrationFile.forWriting(sink);
            f.putBe32(0xCAFE);
            long[] offsets = {0, PAGE, 2L * PAGE, 3L * PAGE, 7L * PAGE, 8L * PAGE, 3L * PAGE};
            for (long off : offsets) {
                f.putRam(ram, off, PAGE);
            }
            f.putBe32(0xBEEF);
            f.putRam(ram, 9L * PAGE, PAGE);
            f.flush();
            // header, pages 0-3, pages 7-8, page 3 again (not adjacent), trailer, page 9 (after a header: its own)
            assertThat(sink.buffersPerWrite).containsExactly(6);
            ByteBuffer expect = ByteBuffer.allocate(4 + 8 * PAGE + 4);
            expect.putInt(0xCAFE);
            for (long off : offsets) {
                expect.put(ram.asSlice(off, PAGE).toArray(ValueLayout.JAVA_BYTE));
            }
            expect.putInt(0xBEEF);
            expect.put(ram.asSlice(9L * PAGE, PAGE).toArray(ValueLayout.JAVA_BYTE));
            assertThat(sink.bytes.toByteArray()).isEqualTo(expect.array());
            assertThat(f.position()).isEqualTo(expect.capacity());
        }
    }
}
