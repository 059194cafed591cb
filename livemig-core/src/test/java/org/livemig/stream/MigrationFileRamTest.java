package org.livemig.stream;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.management.ManagementFactory;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.livemig.memory.NativeMemory;

/** Page payloads queued from RAM ({@code putRam}) and read into RAM ({@code readInto} at an offset). */
class MigrationFileRamTest {
    private static final int PAGE = 4096;

    private static MemorySegment randomPages(Arena arena, int pages, long seed) {
        MemorySegment m = arena.allocate((long) pages * PAGE, PAGE);
        SplittableRandom r = new SplittableRandom(seed);
        for (long i = 0; i < m.byteSize() / 8; i++) {
            m.setAtIndex(ValueLayout.JAVA_LONG, i, r.nextLong());
        }
        return m;
    }

    @Test
    void pagesQueuedFromRamGoOutInOrderBetweenTheirHeadersThroughPartialWrites() throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            int pages = 3000; // several flushes of 1024 iov entries
            MemorySegment ram = randomPages(arena, pages, 1);
            RecordingSink sink = new RecordingSink(true, 10_000); // every gathering write is partial
            MigrationFile f = MigrationFile.forWriting(sink);
            SplittableRandom order = new SplittableRandom(2);
            long[] sent = new long[pages];
            for (int i = 0; i < pages; i++) {
                sent[i] = order.nextInt(pages);
                f.putBe64(sent[i]);
                f.putRam(ram, sent[i] * PAGE, PAGE);
            }
            f.flush();

            ByteBuffer out = ByteBuffer.wrap(sink.bytes.toByteArray());
            assertThat(out.remaining()).isEqualTo(pages * (8 + PAGE));
            assertThat(f.position()).isEqualTo(pages * (8L + PAGE));
            for (int i = 0; i < pages; i++) {
                assertThat(out.getLong()).isEqualTo(sent[i]);
                byte[] payload = new byte[PAGE];
                out.get(payload);
                assertThat(MemorySegment.ofArray(payload).mismatch(ram.asSlice(sent[i] * PAGE, PAGE)))
                        .as("page %d of record %d", sent[i], i).isEqualTo(-1);
            }
        }
    }

    @Test
    void pagesEitherSideOfAndAcrossAGibibyteBoundaryOfABigSegment() throws IOException {
        long gib = 1L << 30;
        try (Arena arena = Arena.ofShared()) {
            // Mapped, not touched: only the pages written below are ever faulted in.
            MemorySegment ram = NativeMemory.mapAnonymous(gib + 2 * PAGE, false, arena);
            long[] offsets = {gib - PAGE, gib - 100, gib, 0};
            for (long off = gib - PAGE; off < gib + 2 * PAGE; off++) {
                ram.set(ValueLayout.JAVA_BYTE, off, (byte) (off * 7 + 3));
            }
            ram.set(ValueLayout.JAVA_BYTE, 0, (byte) 42);
            RecordingSink sink = new RecordingSink(true, Integer.MAX_VALUE);
            MigrationFile f = MigrationFile.forWriting(sink);
            for (long off : offsets) {
                f.putRam(ram, off, PAGE);
            }
            f.flush();
            byte[] out = sink.bytes.toByteArray();
            assertThat(out).hasSize(offsets.length * PAGE);
            for (int i = 0; i < offsets.length; i++) {
                assertThat(MemorySegment.ofArray(out).asSlice((long) i * PAGE, PAGE).mismatch(ram.asSlice(offsets[i], PAGE)))
                        .as("page at 0x%x", offsets[i]).isEqualTo(-1);
            }
        }
    }

    @Test
    void queuingPageRecordsAllocatesNothingOnceWarm() throws IOException {
        var threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        try (Arena arena = Arena.ofConfined()) {
            int pages = 256;
            MemorySegment ram = randomPages(arena, pages, 3);
            MigrationFile f = MigrationFile.forWriting(new RecordingSink(false, Integer.MAX_VALUE));
            for (int i = 0; i < 5000; i++) { // every iov slot has its views now
                f.putBe64(i);
                f.putRam(ram, (long) (i % pages) * PAGE, PAGE);
            }
            f.flush();
            long before = threads.getCurrentThreadAllocatedBytes();
            for (int i = 0; i < 20_000; i++) {
                f.putBe64(i);
                f.putRam(ram, (long) (i % pages) * PAGE, PAGE);
            }
            f.flush();
            long allocated = threads.getCurrentThreadAllocatedBytes() - before;
            // A new buffer per header and per page would be over 2 MB here.
            assertThat(allocated).as("bytes allocated for 20,000 page records").isLessThan(16 * 1024);
        }
    }

    @Test
    void readsPagesIntoRamAtTheirOffsetsWhateverIsBuffered() throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            int pages = 600; // more than the read buffer: some pages straddle a refill
            MemorySegment src = randomPages(arena, pages, 4);
            ByteArrayOutputStream stream = new ByteArrayOutputStream();
            byte[] all = src.toArray(ValueLayout.JAVA_BYTE);
            stream.write(new byte[] {1, 2, 3}); // misaligns the pages in the read buffer
            stream.write(all);
            byte[] big = new byte[3 << 20]; // a large read: straight from the channel
            new SplittableRandom(5).nextBytes(big);
            stream.write(big);
            MigrationFile f = MigrationFile.forReading(Channels.newChannel(new java.io.ByteArrayInputStream(stream.toByteArray())));
            MemorySegment dst = arena.allocate((long) (pages + 1) * PAGE + big.length, PAGE);

            assertThat(f.getByte()).isEqualTo(1);
            f.skip(2);
            for (int p = pages - 1; p >= 0; p--) { // into RAM in reverse page order
                f.readInto(dst, (long) p * PAGE, PAGE);
            }
            f.readInto(dst, (long) (pages + 1) * PAGE, big.length);

            for (int p = 0; p < pages; p++) { // the k-th page of the stream went to page pages-1-k
                assertThat(dst.asSlice((long) p * PAGE, PAGE).mismatch(src.asSlice((long) (pages - 1 - p) * PAGE, PAGE)))
                        .as("page %d", p).isEqualTo(-1);
            }
            assertThat(dst.asSlice((long) (pages + 1) * PAGE, big.length).mismatch(MemorySegment.ofArray(big))).isEqualTo(-1);
            assertThat(f.position()).isEqualTo(3L + all.length + big.length);
            assertThat(f.atEof()).isTrue();
        }
    }
}
