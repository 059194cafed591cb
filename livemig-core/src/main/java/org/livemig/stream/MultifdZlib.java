package org.livemig.stream;

import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.util.zip.DataFormatException;
import java.util.zip.Deflater;
import java.util.zip.Inflater;

/**
 * multifd-compression zlib (QEMU 7.2's multifd-zlib): one zlib stream (RFC 1950, at
 * {@code multifd-zlib-level}) per channel; a packet's pages go in and the stream is flushed with
 * Z_SYNC_FLUSH after the last (QEMU feeds them one by one without a flush and flushes with the
 * last; the stream means the same). See {@link MultifdCompression}.
 */
final class MultifdZlib {
    private MultifdZlib() {}

    static final class ZlibEncoder implements MultifdCompression.Encoder {
        private final Deflater deflater;
        private final ByteBuffer staging;
        private final MemorySegment stagingMemory;
        private final ByteBuffer out;
        private final MemorySegment outMemory;

        ZlibEncoder(int level, int pages, int pageSize) {
            if (level < 0 || level > 9) {
                throw new IllegalArgumentException("multifd-zlib-level must be 0..9, not " + level);
            }
            deflater = new Deflater(level);
            staging = ByteBuffer.allocateDirect(pages * pageSize);
            stagingMemory = MemorySegment.ofBuffer(staging);
            out = ByteBuffer.allocateDirect(MultifdCompression.maxPacketData(pages, pageSize));
            outMemory = MemorySegment.ofBuffer(out);
        }

        @Override
        public int encode(MemorySegment ram, long[] offsets, int count, int pageSize) {
            out.clear();
            if (count == 0) {
                return 0;
            }
            // A copy: zlib may read its input more than once, and a running guest may change the
            // pages. All of them go in at once (one call, one flush at the end): the same stream
            // as QEMU's page-by-page feeding, with fewer native calls.
            for (int i = 0; i < count; i++) {
                MemorySegment.copy(ram, offsets[i], stagingMemory, (long) i * pageSize, pageSize);
            }
            staging.clear().limit(count * pageSize);
            deflater.setInput(staging);
            while (true) {
                if (!out.hasRemaining()) {
                    throw new IllegalStateException("zlib output of a multifd packet exceeds " + out.capacity() + " bytes");
                }
                deflater.deflate(out, Deflater.SYNC_FLUSH);
                // A flush is complete only when it returned with output space to spare.
                if (deflater.needsInput() && out.hasRemaining()) {
                    break;
                }
            }
            return out.position();
        }

        @Override
        public MemorySegment output() {
            return outMemory;
        }

        @Override
        public void close() {
            deflater.end();
        }
    }

    static final class ZlibDecoder implements MultifdCompression.Decoder {
        private final Inflater inflater = new Inflater();
        private final ByteBuffer in;
        private final MemorySegment inMemory;
        private final ByteBuffer spill = ByteBuffer.allocateDirect(64);
        private final PageWindows windows = new PageWindows();
        private int failedPage = -1;

        ZlibDecoder(int pages, int pageSize) {
            in = ByteBuffer.allocateDirect(MultifdCompression.maxPacketData(pages, pageSize));
            inMemory = MemorySegment.ofBuffer(in);
        }

        @Override
        public MemorySegment input() {
            return inMemory;
        }

        @Override
        public int failedPage() {
            return failedPage;
        }

        @Override
        public String decode(int len, MemorySegment ram, long[] offsets, int count, int pageSize) {
            failedPage = -1;
            in.clear().limit(len);
            inflater.setInput(in);
            try {
                for (int i = 0; i < count; i++) {
                    failedPage = i;
                    ByteBuffer page = windows.page(ram, offsets[i], pageSize);
                    while (page.hasRemaining()) {
                        long read = inflater.getBytesRead();
                        int n = inflater.inflate(page);
                        if (n == 0 && inflater.getBytesRead() == read) {
                            return stuck(i, pageSize - page.remaining(), pageSize);
                        }
                    }
                }
                failedPage = -1;
                // What is left is the flush's empty block: it must inflate to nothing.
                while (inflater.getRemaining() > 0 && !inflater.finished()) {
                    long read = inflater.getBytesRead();
                    spill.clear();
                    int n = inflater.inflate(spill);
                    if (n > 0) {
                        return "packet data inflates to more than its " + count + " pages";
                    }
                    if (inflater.getBytesRead() == read) {
                        break;
                    }
                }
            } catch (DataFormatException e) {
                return "zlib data is corrupt: " + e.getMessage();
            }
            if (inflater.finished()) {
                return "the channel's zlib stream ended (a multifd stream is only ever flushed)";
            }
            if (inflater.getRemaining() > 0) {
                return inflater.getRemaining() + " bytes of packet data left after its " + count + " pages";
            }
            return null;
        }

        private String stuck(int page, int got, int pageSize) {
            if (inflater.finished()) {
                return "the channel's zlib stream ended inside page " + page + " of the packet (" + got + " of "
                        + pageSize + " bytes)";
            }
            if (inflater.needsDictionary()) {
                return "zlib data needs a preset dictionary";
            }
            return "packet data ends inside page " + page + " of the packet (" + got + " of " + pageSize + " bytes)";
        }

        @Override
        public void close() {
            inflater.end();
        }
    }
}
