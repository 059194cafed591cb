package org.livemig.stream;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.zip.DataFormatException;
import java.util.zip.Deflater;
import java.util.zip.Inflater;

/**
 * QEMU 7.2's COMPRESS_PAGE record (the {@code compress} capability, qemu-stream-format.md §6.4):
 * one page deflated on its own into a complete zlib stream. The one page compressor and
 * decompressor of livemig, shared by the source's compress threads, the destination's decompress
 * threads and the analyzer.
 *
 * <pre>
 * RAM record, flag COMPRESS_PAGE (0x100), after the be64 header and the block name:
 *   +0  be32  length   bytes that follow, 1 .. compressBound(page size)
 *   +4  ...   a zlib stream (RFC 1950 header, deflate, Adler-32) that inflates to exactly one page
 * </pre>
 *
 * <p>{@link Compressor} and {@link Decompressor} each own a zlib stream: one per thread.
 */
public final class CompressedPageCodec {
    /** The be32 length before the data. */
    public static final int PAYLOAD_HEADER_BYTES = 4;

    private CompressedPageCodec() {}

    /** zlib's compressBound(): the most a deflated {@code n} bytes take, and the longest payload accepted. */
    public static int compressBound(int n) {
        return n + (n >>> 12) + (n >>> 14) + (n >>> 25) + 13;
    }

    /**
     * Reads a COMPRESS_PAGE payload's length and checks it.
     *
     * @throws StreamFormatException for 0 or more than compressBound(page size), at the length's offset
     */
    public static int readLength(MigrationFile f, int pageSize) throws IOException {
        long at = f.position();
        long len = Integer.toUnsignedLong(f.getBe32());
        int max = compressBound(pageSize);
        if (len == 0 || len > max) {
            throw new StreamFormatException("compressed page of " + len + " bytes (1 to " + max
                    + " expected for a " + pageSize + "-byte page)", at);
        }
        return (int) len;
    }

    /** Deflates one page at a time (QEMU resets its stream before each page). */
    public static final class Compressor implements AutoCloseable {
        private final Deflater deflater;
        private final byte[] in;

        /** @param level zlib level 0 (stored) to 9 */
        public Compressor(int level, int pageSize) {
            if (level < 0 || level > 9) {
                throw new IllegalArgumentException("zlib level must be 0..9, not " + level);
            }
            this.deflater = new Deflater(level);
            this.in = new byte[pageSize];
        }

        /**
         * Copies the page at {@code offset} of {@code ram} (a guest may be writing it) and deflates
         * the copy into {@code out} at {@code outOffset}, which must have
         * {@link #compressBound} room.
         *
         * @return the length of the zlib stream
         */
        public int compress(MemorySegment ram, long offset, byte[] out, int outOffset) {
            int pageSize = in.length;
            if (out.length - outOffset < compressBound(pageSize)) {
                throw new IllegalArgumentException("output buffer smaller than compressBound(" + pageSize + ")");
            }
            MemorySegment.copy(ram, ValueLayout.JAVA_BYTE, offset, in, 0, pageSize);
            deflater.reset();
            deflater.setInput(in);
            deflater.finish();
            int n = 0;
            while (!deflater.finished()) {
                int k = deflater.deflate(out, outOffset + n, out.length - outOffset - n);
                if (k == 0 && !deflater.finished() && outOffset + n == out.length) {
                    throw new IllegalStateException("a deflated page overflowed compressBound");
                }
                n += k;
            }
            return n;
        }

        @Override
        public void close() {
            deflater.end();
        }
    }

    /** Inflates one page at a time, checking that the stream is exactly one page. */
    public static final class Decompressor implements AutoCloseable {
        private final Inflater inflater = new Inflater();
        private final byte[] page;

        public Decompressor(int pageSize) {
            this.page = new byte[pageSize];
        }

        /**
         * Inflates {@code data[offset..offset+len)} into this decompressor's page buffer; nothing
         * outside it is written. Take the page with {@link #page()}.
         *
         * @return null when it is one whole page, otherwise what is wrong with the data
         */
        public String decompress(byte[] data, int offset, int len) {
            int pageSize = page.length;
            inflater.reset();
            inflater.setInput(data, offset, len);
            int total = 0;
            try {
                while (!inflater.finished()) {
                    int n = inflater.inflate(page, total, pageSize - total);
                    total += n;
                    if (n == 0 && !inflater.finished()) {
                        if (inflater.needsDictionary()) {
                            return "zlib data needs a preset dictionary";
                        }
                        if (total == pageSize) {
                            return "zlib data inflates to more than one " + pageSize + "-byte page";
                        }
                        if (inflater.needsInput()) {
                            return "zlib data ends after " + total + " bytes, before the end of its stream";
                        }
                        return "zlib data makes no progress after " + total + " bytes";
                    }
                }
            } catch (DataFormatException e) {
                return "zlib data is corrupt after " + total + " bytes: " + e.getMessage();
            }
            if (total != pageSize) {
                return "zlib data inflates to " + total + " bytes, not one " + pageSize + "-byte page";
            }
            if (inflater.getRemaining() > 0) {
                return inflater.getRemaining() + " bytes follow the end of the zlib stream";
            }
            return null;
        }

        /** The page the last successful {@link #decompress} produced. */
        public byte[] page() {
            return page;
        }

        @Override
        public void close() {
            inflater.end();
        }
    }
}
