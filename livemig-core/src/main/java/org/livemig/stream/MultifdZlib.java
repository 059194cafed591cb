package org.livemig.stream;

import java.nio.ByteBuffer;
import java.util.zip.DataFormatException;
import java.util.zip.Deflater;
import java.util.zip.Inflater;

/**
 * multifd-compression zlib (QEMU 7.2's multifd-zlib): one zlib stream (RFC 1950, at
 * {@code multifd-zlib-level}) per channel; a packet's pages go in and the stream is flushed with
 * Z_SYNC_FLUSH after the last (QEMU feeds them one by one without a flush and flushes with the
 * last; the stream means the same). See {@link MultifdCompression} and {@link MultifdStreamCodec}.
 */
final class MultifdZlib {
    private MultifdZlib() {}

    static final class ZlibEncoder extends MultifdStreamCodec.Encoder {
        private final Deflater deflater;

        ZlibEncoder(int level, int pages, int pageSize) {
            super(pages, pageSize);
            if (level < 0 || level > 9) {
                throw new IllegalArgumentException("multifd-zlib-level must be 0..9, not " + level);
            }
            deflater = new Deflater(level);
        }

        @Override
        void compressAndFlush(ByteBuffer in, ByteBuffer out) {
            deflater.setInput(in);
            while (true) {
                if (!out.hasRemaining()) {
                    throw new IllegalStateException("zlib output of a multifd packet exceeds " + out.capacity() + " bytes");
                }
                deflater.deflate(out, Deflater.SYNC_FLUSH);
                // A flush is complete only when it returned with output space to spare.
                if (deflater.needsInput() && out.hasRemaining()) {
                    return;
                }
            }
        }

        @Override
        public void close() {
            deflater.end();
        }
    }

    static final class ZlibDecoder extends MultifdStreamCodec.Decoder {
        private final Inflater inflater = new Inflater();

        ZlibDecoder(int pages, int pageSize) {
            super("zlib", pages, pageSize);
        }

        @Override
        void begin() {
            inflater.setInput(in);
        }

        @Override
        boolean step(ByteBuffer out) throws DataFormatException {
            if (inflater.finished()) {
                return false;
            }
            long read = inflater.getBytesRead();
            int n = inflater.inflate(out);
            return n > 0 || inflater.getBytesRead() != read;
        }

        @Override
        String stuck(int page, int got, int pageSize) {
            if (inflater.finished()) {
                return "the channel's zlib stream ended inside page " + page + " of the packet (" + got + " of "
                        + pageSize + " bytes)";
            }
            if (inflater.needsDictionary()) {
                return "zlib data needs a preset dictionary";
            }
            return super.stuck(page, got, pageSize);
        }

        @Override
        String leftOver(int count) {
            if (inflater.finished()) {
                return "the channel's zlib stream ended (a multifd stream is only ever flushed)";
            }
            if (inflater.getRemaining() > 0) {
                return inflater.getRemaining() + " bytes of packet data left after its " + count + " pages";
            }
            return null;
        }

        @Override
        public void close() {
            inflater.end();
        }
    }
}
