package org.livemig.stream;

import com.github.luben.zstd.EndDirective;
import com.github.luben.zstd.ZstdCompressCtx;
import com.github.luben.zstd.ZstdDecompressCtx;
import com.github.luben.zstd.ZstdException;
import java.nio.ByteBuffer;
import java.util.zip.DataFormatException;

/**
 * multifd-compression zstd (QEMU 7.2's multifd-zstd), through zstd-jni: one zstd stream at
 * {@code multifd-zstd-level} per channel, a single frame never ended; a packet's pages go in and
 * the stream is flushed with ZSTD_e_flush after the last (QEMU feeds them one by one with
 * ZSTD_e_continue and flushes with the last; the stream means the same). See
 * {@link MultifdCompression} and {@link MultifdStreamCodec}.
 */
final class MultifdZstd {
    private MultifdZstd() {}

    static final class ZstdEncoder extends MultifdStreamCodec.Encoder {
        private final ZstdCompressCtx ctx;

        ZstdEncoder(int level, int pages, int pageSize) {
            super(pages, pageSize);
            if (level < 0 || level > 20) {
                throw new IllegalArgumentException("multifd-zstd-level must be 0..20, not " + level);
            }
            ctx = new ZstdCompressCtx();
            ctx.setLevel(level); // 0: zstd's default level, as QEMU's initCStream(0)
        }

        @Override
        void compressAndFlush(ByteBuffer in, ByteBuffer out) {
            while (true) {
                if (!out.hasRemaining()) {
                    throw new IllegalStateException("zstd output of a multifd packet exceeds " + out.capacity() + " bytes");
                }
                boolean flushed = ctx.compressDirectByteBufferStream(out, in, EndDirective.FLUSH);
                if (!in.hasRemaining() && flushed) {
                    return;
                }
            }
        }

        @Override
        public void close() {
            ctx.close();
        }
    }

    static final class ZstdDecoder extends MultifdStreamCodec.Decoder {
        private final ZstdDecompressCtx ctx = new ZstdDecompressCtx();

        ZstdDecoder(int pages, int pageSize) {
            super("zstd", pages, pageSize);
        }

        @Override
        boolean step(ByteBuffer out) throws DataFormatException {
            int inAt = in.position();
            int outAt = out.position();
            try {
                ctx.decompressDirectByteBufferStream(out, in);
            } catch (ZstdException e) {
                throw new DataFormatException(e.getMessage());
            }
            return in.position() != inAt || out.position() != outAt;
        }

        @Override
        String leftOver(int count) {
            return in.hasRemaining() ? in.remaining() + " bytes of packet data left after its " + count + " pages" : null;
        }

        @Override
        public void close() {
            ctx.close();
        }
    }
}
