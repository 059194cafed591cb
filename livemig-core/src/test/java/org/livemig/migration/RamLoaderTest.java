package org.livemig.migration;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.channels.ReadableByteChannel;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.livemig.memory.GuestRam;
import org.livemig.memory.RamBlock;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.QemuStream;
import org.livemig.stream.RamPageRecord;
import org.livemig.stream.StreamFormatException;

/**
 * The RAM section's decoding on the destination: whatever mix of page and zero records arrives,
 * in whatever pieces the channel hands them over, guest RAM ends up as the records say.
 */
class RamLoaderTest {
    private static final int PAGE = RamBlock.PAGE_SIZE;
    private static final String[] NAMES = {"pc.ram", "vga.vram"};
    private static final long[] PAGES = {300, 40};

    /** A stream of RAM records, with the expected contents of each block kept alongside. */
    private static final class Stream {
        final MigrationFile out = MigrationFile.toMemory();
        final byte[][] expected;
        String last;

        Stream(byte[][] start) {
            expected = new byte[start.length][];
            for (int i = 0; i < start.length; i++) {
                expected[i] = start[i].clone();
            }
        }

        private void header(int block, long page, int flag) throws IOException {
            boolean cont = NAMES[block].equals(last);
            out.putBe64((page * PAGE) | flag | (cont ? RamPageRecord.FLAG_CONTINUE : 0));
            if (!cont) {
                out.putCountedString(NAMES[block]);
            }
            last = NAMES[block];
        }

        void zero(int block, long page) throws IOException {
            header(block, page, RamPageRecord.FLAG_ZERO);
            out.putByte(0);
            java.util.Arrays.fill(expected[block], (int) (page * PAGE), (int) ((page + 1) * PAGE), (byte) 0);
        }

        void fill(int block, long page, int value) throws IOException {
            header(block, page, RamPageRecord.FLAG_ZERO);
            out.putByte(value);
            java.util.Arrays.fill(expected[block], (int) (page * PAGE), (int) ((page + 1) * PAGE), (byte) value);
        }

        void page(int block, long page, Random rnd) throws IOException {
            header(block, page, RamPageRecord.FLAG_PAGE);
            byte[] data = new byte[PAGE];
            rnd.nextBytes(data);
            data[rnd.nextInt(PAGE)] = 1; // never all zero
            out.putBytes(data);
            System.arraycopy(data, 0, expected[block], (int) (page * PAGE), PAGE);
        }

        byte[] finish() throws IOException {
            out.putBe64(RamPageRecord.FLAG_EOS);
            return out.toByteArray();
        }
    }

    /** A channel that hands the bytes over in pieces of random size (records split anywhere). */
    private static ReadableByteChannel inPieces(byte[] bytes, Random rnd, int maxPiece) {
        ByteBuffer src = ByteBuffer.wrap(bytes);
        return new ReadableByteChannel() {
            @Override
            public int read(ByteBuffer dst) {
                if (!src.hasRemaining()) {
                    return -1;
                }
                int n = Math.min(Math.min(dst.remaining(), src.remaining()), 1 + rnd.nextInt(maxPiece));
                ByteBuffer piece = src.slice(src.position(), n);
                dst.put(piece);
                src.position(src.position() + n);
                return n;
            }

            @Override
            public boolean isOpen() {
                return true;
            }

            @Override
            public void close() {}
        };
    }

    private static GuestRam ram() {
        GuestRam ram = new GuestRam();
        for (int i = 0; i < NAMES.length; i++) {
            ram.addBlock(NAMES[i], PAGES[i] * PAGE, false);
        }
        return ram;
    }

    private static byte[] contents(RamBlock b) {
        return b.memory().toArray(ValueLayout.JAVA_BYTE);
    }

    @Test
    void anyMixOfZeroAndPageRecordsLeavesRamAsTheRecordsSay() throws Exception {
        for (long seed = 1; seed <= 60; seed++) {
            Random rnd = new Random(seed);
            GuestRam ram = ram();
            List<RamBlock> blocks = ram.blocks();
            boolean startDirty = seed % 3 != 0; // a third of the runs start on pristine RAM
            byte[][] start = new byte[blocks.size()][];
            for (int i = 0; i < blocks.size(); i++) {
                start[i] = new byte[(int) (PAGES[i] * PAGE)];
                if (startDirty) {
                    for (long p = 0; p < PAGES[i]; p++) {
                        if (rnd.nextInt(3) == 0) {
                            start[i][(int) (p * PAGE + rnd.nextInt(PAGE))] = (byte) (1 + rnd.nextInt(255));
                        }
                    }
                    MemorySegment.copy(MemorySegment.ofArray(start[i]), 0, blocks.get(i).memory(), 0, start[i].length);
                    ram.markWritten();
                }
            }
            assertThat(ram.isPristine()).isEqualTo(!startDirty);

            // Passes as a source makes them: runs of consecutive pages, each page a zero, a
            // fill or a data record; later passes revisit pages (data then zero, and back).
            Stream s = new Stream(start);
            int passes = 1 + rnd.nextInt(3);
            for (int pass = 0; pass < passes; pass++) {
                for (int b = 0; b < NAMES.length; b++) {
                    long p = rnd.nextInt(5);
                    while (p < PAGES[b]) {
                        int run = 1 + rnd.nextInt(rnd.nextBoolean() ? 4 : 120);
                        int kind = rnd.nextInt(10);
                        for (long q = p; q < Math.min(PAGES[b], p + run); q++) {
                            if (kind < 6) {
                                s.zero(b, q);
                            } else if (kind < 9) {
                                s.page(b, q, rnd);
                            } else {
                                s.fill(b, q, rnd.nextInt(256));
                            }
                        }
                        p += run + (rnd.nextInt(4) == 0 ? 1 + rnd.nextInt(6) : 0);
                    }
                }
            }
            byte[] stream = s.finish();

            RamStats stats = new RamStats();
            RamLoader loader = new RamLoader(ram, stats);
            MigrationFile in = MigrationFile.forReading(inPieces(stream, rnd, rnd.nextBoolean() ? 64 : 70_000));
            loader.load(in, QemuStream.RAM_SECTION_VERSION);

            assertThat(in.position()).as("seed %d: the whole section read", seed).isEqualTo(stream.length);
            for (int b = 0; b < NAMES.length; b++) {
                byte[] got = contents(blocks.get(b));
                int at = java.util.Arrays.mismatch(got, s.expected[b]);
                assertThat(at).as("seed %d: first wrong byte of block %s (page %d)", seed, NAMES[b], at / PAGE)
                        .isEqualTo(-1);
            }
            ram.close();
        }
    }

    @Test
    void aZeroRunThatContinuesPastTheEndOfItsBlockIsRefusedWithItsOffset() throws Exception {
        GuestRam ram = ram();
        MigrationFile out = MigrationFile.toMemory();
        long pages = PAGES[1];
        for (long p = pages - 3; p <= pages; p++) { // the last record is one page past the end
            out.putBe64((p * PAGE) | RamPageRecord.FLAG_ZERO | (p == pages - 3 ? 0 : RamPageRecord.FLAG_CONTINUE));
            if (p == pages - 3) {
                out.putCountedString(NAMES[1]);
            }
            out.putByte(0);
        }
        out.putBe64(RamPageRecord.FLAG_EOS);
        byte[] stream = out.toByteArray();
        long badAt = 9 + 1 + NAMES[1].getBytes(StandardCharsets.US_ASCII).length + 2 * 9;

        RamLoader loader = new RamLoader(ram, new RamStats());
        assertThatThrownBy(() -> loader.load(MigrationFile.ofBytes(stream), QemuStream.RAM_SECTION_VERSION))
                .isInstanceOf(StreamFormatException.class)
                .hasMessageContaining("outside block 'vga.vram'")
                .satisfies(e -> assertThat(((StreamFormatException) e).offset()).isEqualTo(badAt));
        ram.close();
    }
}
