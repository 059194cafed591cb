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
 * The RAM section's decoding on the destination: whatever mix of page, zero, XBZRLE and
 * compressed records arrives, in whatever pieces the channel hands them over, guest RAM ends up
 * as the records say; and a bad XBZRLE or compressed record fails with its offset and page,
 * writing nothing outside its page.
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

        /** An XBZRLE record changing a few bytes of the page as the destination holds it. */
        void xbzrle(int block, long page, Random rnd) throws IOException {
            byte[] old = java.util.Arrays.copyOfRange(expected[block], (int) (page * PAGE), (int) ((page + 1) * PAGE));
            byte[] cur = old.clone();
            for (int k = 0, n = 1 + rnd.nextInt(40); k < n; k++) {
                cur[rnd.nextInt(PAGE)] ^= (byte) (1 + rnd.nextInt(255));
            }
            byte[] delta = new byte[PAGE];
            int len = org.livemig.stream.XbzrleCodec.encode(MemorySegment.ofArray(old), 0, MemorySegment.ofArray(cur), 0,
                    PAGE, delta, PAGE - 1);
            if (len <= 0) {
                return;
            }
            header(block, page, RamPageRecord.FLAG_XBZRLE);
            org.livemig.stream.XbzrleCodec.putPayload(out, delta, len);
            System.arraycopy(cur, 0, expected[block], (int) (page * PAGE), PAGE);
        }

        /** A COMPRESS_PAGE record of a half-random page. */
        void compressed(int block, long page, Random rnd) throws IOException {
            byte[] data = new byte[PAGE];
            for (int i = 0; i < PAGE / 2; i++) {
                data[i] = (byte) rnd.nextInt(16);
            }
            header(block, page, RamPageRecord.FLAG_COMPRESS_PAGE);
            byte[] z = new byte[org.livemig.stream.CompressedPageCodec.compressBound(PAGE)];
            int len;
            try (var c = new org.livemig.stream.CompressedPageCodec.Compressor(1, PAGE)) {
                len = c.compress(MemorySegment.ofArray(data), 0, z, 0);
            }
            out.putBe32(len);
            out.putBytes(z, 0, len);
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
                            if (kind < 4) {
                                s.zero(b, q);
                            } else if (kind < 6) {
                                s.page(b, q, rnd);
                            } else if (kind < 7) {
                                s.xbzrle(b, q, rnd);
                            } else if (kind < 9) {
                                s.compressed(b, q, rnd);
                            } else {
                                s.fill(b, q, rnd.nextInt(256));
                            }
                        }
                        p += run + (rnd.nextInt(4) == 0 ? 1 + rnd.nextInt(6) : 0);
                    }
                }
                if (pass < passes - 1) {
                    // A pass is a section of its own, as every source makes it (a page comes at
                    // most once in a section: the compressed ones are only waited for at its end).
                    s.out.putBe64(RamPageRecord.FLAG_EOS);
                }
            }
            byte[] stream = s.finish();

            RamStats stats = new RamStats();
            RamLoader loader = new RamLoader(ram, stats);
            org.livemig.migration.ram.EncodedPageLoader encoded = new org.livemig.migration.ram.EncodedPageLoader();
            encoded.acceptCompressedPages(1 + rnd.nextInt(3));
            loader.useEncodedPages(encoded);
            MigrationFile in = MigrationFile.forReading(inPieces(stream, rnd, rnd.nextBoolean() ? 64 : 70_000));
            try {
                for (int pass = 0; pass < passes; pass++) {
                    loader.load(in, QemuStream.RAM_SECTION_VERSION);
                }
            } finally {
                encoded.close();
            }

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

    /** A stream of one record for page 3 of vga.vram (its header, then {@code payload}), and EOS. */
    private static byte[] oneRecord(int flag, byte[] payload, boolean eos) throws IOException {
        MigrationFile out = MigrationFile.toMemory();
        out.putBe64((3L * PAGE) | flag);
        out.putCountedString(NAMES[1]);
        out.putBytes(payload);
        if (eos) {
            out.putBe64(RamPageRecord.FLAG_EOS);
        }
        return out.toByteArray();
    }

    /** Loads {@code stream} into RAM whose vga.vram pages all hold 0x5A; returns the error. */
    private static StreamFormatException loadBad(byte[] stream, boolean compress) throws Exception {
        try (GuestRam ram = ram()) {
            ram.block(NAMES[1]).memory().fill((byte) 0x5A);
            ram.markWritten();
            RamLoader loader = new RamLoader(ram, new RamStats());
            org.livemig.migration.ram.EncodedPageLoader encoded = new org.livemig.migration.ram.EncodedPageLoader();
            if (compress) {
                encoded.acceptCompressedPages(2);
            }
            loader.useEncodedPages(encoded);
            try {
                Throwable t = org.assertj.core.api.Assertions.catchThrowable(
                        () -> loader.load(MigrationFile.ofBytes(stream), QemuStream.RAM_SECTION_VERSION));
                assertThat(t).isInstanceOf(StreamFormatException.class);
                // Nothing outside page 3 was written; page 3 at most by the runs before a bad one.
                byte[] vram = contents(ram.block(NAMES[1]));
                for (int i = 0; i < vram.length; i++) {
                    if (i / PAGE != 3 && vram[i] != 0x5A) {
                        throw new AssertionError("byte " + i + " outside the record's page was written");
                    }
                }
                return (StreamFormatException) t;
            } finally {
                encoded.close();
            }
        }
    }

    private static final int RECORD_AT = 0;

    @Test
    void aBadXbzrleRecordFailsWithItsOffsetAndPageAndWritesNothingOutsideIt() throws Exception {
        // a changed run that goes past the page's end
        StreamFormatException e = loadBad(oneRecord(RamPageRecord.FLAG_XBZRLE,
                new byte[] {1, 0, 4, (byte) 0xFF, 0x1F, 2, 9}, true), false);
        assertThat(e.getMessage()).contains("XBZRLE record for page 0x3000 of block 'vga.vram'")
                .contains("past the end of the 4096-byte page");
        assertThat(e.offset()).isEqualTo(RECORD_AT);
        // cut inside the delta
        e = loadBad(oneRecord(RamPageRecord.FLAG_XBZRLE, new byte[] {1, 0, 10, 0, 1}, false), false);
        assertThat(e.getMessage()).contains("truncated");
        // a delta longer than a page
        e = loadBad(oneRecord(RamPageRecord.FLAG_XBZRLE, new byte[] {1, 0x10, 1}, false), false);
        assertThat(e.getMessage()).contains("XBZRLE delta of 4097 bytes is longer than a 4096-byte page");
        // another encoding
        e = loadBad(oneRecord(RamPageRecord.FLAG_XBZRLE, new byte[] {2, 0, 3, 0, 1, 7}, true), false);
        assertThat(e.getMessage()).contains("encoding 2");
    }

    @Test
    void aBadCompressedRecordFailsWithItsOffsetAndPageAndLeavesThePageAlone() throws Exception {
        byte[] z = new byte[org.livemig.stream.CompressedPageCodec.compressBound(PAGE)];
        int len;
        try (var c = new org.livemig.stream.CompressedPageCodec.Compressor(1, PAGE)) {
            len = c.compress(MemorySegment.ofArray(new byte[PAGE]), 0, z, 0);
        }
        byte[] corrupt = java.util.Arrays.copyOf(z, len);
        corrupt[len / 2] ^= 0x55;
        corrupt[len - 1] ^= 0x55; // the Adler-32 too
        ByteBuffer payload = ByteBuffer.allocate(4 + len).putInt(len).put(corrupt);
        StreamFormatException e = loadBad(oneRecord(RamPageRecord.FLAG_COMPRESS_PAGE, payload.array(), true), true);
        assertThat(e.getMessage()).contains("compressed page 0x3000 of block 'vga.vram'");
        assertThat(e.offset()).isEqualTo(RECORD_AT);
        // cut inside the data
        ByteBuffer cut = ByteBuffer.allocate(4 + len / 2).putInt(len).put(z, 0, len / 2);
        e = loadBad(oneRecord(RamPageRecord.FLAG_COMPRESS_PAGE, cut.array(), false), true);
        assertThat(e.getMessage()).contains("truncated");
        // a length beyond compressBound, and one of 0
        e = loadBad(oneRecord(RamPageRecord.FLAG_COMPRESS_PAGE, new byte[] {0, 1, 0, 0}, false), true);
        assertThat(e.getMessage()).contains("compressed page of 65536 bytes");
        e = loadBad(oneRecord(RamPageRecord.FLAG_COMPRESS_PAGE, new byte[] {0, 0, 0, 0}, false), true);
        assertThat(e.getMessage()).contains("compressed page of 0 bytes");
        // without the compress capability, as QEMU
        ByteBuffer good = ByteBuffer.allocate(4 + len).putInt(len).put(z, 0, len);
        e = loadBad(oneRecord(RamPageRecord.FLAG_COMPRESS_PAGE, good.array(), true), false);
        assertThat(e.getMessage()).contains("unexpected compressed page 0x3000 of block 'vga.vram'");
    }
}
