package org.livemig.stream;

import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.util.zip.DataFormatException;

/**
 * What multifd's zlib and zstd codecs share: a channel keeps one compression stream, a packet's
 * pages go in together and the stream is flushed after the last. The encoder copies the pages
 * first (a running guest may change them while the codec reads); the decoder inflates straight
 * into each page of guest RAM and then checks that the flush left nothing over. Subclasses
 * supply the codec's calls; the checks and their messages are here, once.
 */
final class MultifdStreamCodec {
    private MultifdStreamCodec() {}

    /** The encoding half: staging copy, one compress-and-flush call sequence, the output. */
    abstract static class Encoder implements MultifdCompression.Encoder {
        private final ByteBuffer staging;
        private final MemorySegment stagingMemory;
        private final ByteBuffer out;
        private final MemorySegment outMemory;

        Encoder(int pages, int pageSize) {
            staging = ByteBuffer.allocateDirect(pages * pageSize);
            stagingMemory = MemorySegment.ofBuffer(staging);
            out = ByteBuffer.allocateDirect(MultifdCompression.maxPacketData(pages, pageSize));
            outMemory = MemorySegment.ofBuffer(out);
        }

        /** Compresses what remains of {@code in} into {@code out} and flushes the stream. */
        abstract void compressAndFlush(ByteBuffer in, ByteBuffer out);

        @Override
        public final int encode(MemorySegment ram, long[] offsets, int count, int pageSize) {
            out.clear();
            if (count == 0) {
                return 0;
            }
            // All pages in one call and one flush at the end: the same stream as QEMU's
            // page-by-page feeding, with fewer native calls.
            for (int i = 0; i < count; i++) {
                MemorySegment.copy(ram, offsets[i], stagingMemory, (long) i * pageSize, pageSize);
            }
            staging.clear().limit(count * pageSize);
            compressAndFlush(staging, out);
            return out.position();
        }

        @Override
        public final MemorySegment output() {
            return outMemory;
        }
    }

    /** The decoding half: the packet's data in {@link #input()}, inflated page by page. */
    abstract static class Decoder implements MultifdCompression.Decoder {
        private final String codec;
        final ByteBuffer in;
        private final MemorySegment inMemory;
        private final ByteBuffer spill = ByteBuffer.allocateDirect(64);
        private final PageWindows windows = new PageWindows();
        private int failedPage = -1;

        Decoder(String codec, int pages, int pageSize) {
            this.codec = codec;
            in = ByteBuffer.allocateDirect(MultifdCompression.maxPacketData(pages, pageSize));
            inMemory = MemorySegment.ofBuffer(in);
        }

        /** Starts a packet of {@code in}'s remaining bytes. */
        void begin() {}

        /** Decodes from {@code in} into {@code out}; true when it consumed input or produced output. */
        abstract boolean step(ByteBuffer out) throws DataFormatException;

        /** Why decoding stopped short inside a page (the codec may know better than "data ends"). */
        String stuck(int page, int got, int pageSize) {
            return "packet data ends inside page " + page + " of the packet (" + got + " of " + pageSize + " bytes)";
        }

        /** After the pages and the flush: what is wrong with the stream's state, or null. */
        abstract String leftOver(int count);

        @Override
        public final MemorySegment input() {
            return inMemory;
        }

        @Override
        public final int failedPage() {
            return failedPage;
        }

        @Override
        public final String decode(int len, MemorySegment ram, long[] offsets, int count, int pageSize) {
            failedPage = -1;
            in.clear().limit(len);
            begin();
            try {
                for (int i = 0; i < count; i++) {
                    failedPage = i;
                    ByteBuffer page = windows.page(ram, offsets[i], pageSize);
                    while (page.hasRemaining()) {
                        if (!step(page)) {
                            return stuck(i, pageSize - page.remaining(), pageSize);
                        }
                    }
                }
                failedPage = -1;
                // What is left is the flush: it must decode to nothing.
                while (true) {
                    spill.clear();
                    boolean progress = step(spill);
                    if (spill.position() > 0) {
                        return "packet data decodes to more than its " + count + " pages";
                    }
                    if (!progress) {
                        break;
                    }
                }
            } catch (DataFormatException e) {
                return codec + " data is corrupt: " + e.getMessage();
            }
            return leftOver(count);
        }
    }
}
