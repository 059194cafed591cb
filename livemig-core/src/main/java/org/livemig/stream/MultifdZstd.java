package org.livemig.stream;

import com.github.luben.zstd.EndDirective;
import com.github.luben.zstd.ZstdCompressCtx;
import com.github.luben.zstd.ZstdDecompressCtx;
import com.github.luben.zstd.ZstdException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;

/**
 * multifd-compression zstd (QEMU 7.2's multifd-zstd), through zstd-jni: one zstd stream at
 * {@code multifd-zstd-level} per channel, a single frame never ended; a packet's pages go in and
 * the stream is flushed with ZSTD_e_flush after the last (QEMU feeds them one by one with
 * ZSTD_e_continue and flushes with the last; the stream means the same). See {@link MultifdCompression}.
 */
final class MultifdZstd {
    private MultifdZstd() {}

    static final class ZstdEncoder implements MultifdCompression.Encoder {
        private final ZstdCompressCtx ctx;
        private final ByteBuffer staging;
        private final MemorySegment stagingMemory;
        private final ByteBuffer out;
        private final MemorySegment outMemory;

        ZstdEncoder(int level, int pages, int pageSize) {
            if (level < 0 || level > 20) {
                throw new IllegalArgumentException("multifd-zstd-level must be 0..20, not " + level);
            }
            ctx = new ZstdCompressCtx();
            ctx.setLevel(level); // 0: zstd's default level, as QEMU's initCStream(0)
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
            // Copies of the pages (a running guest may change them), all fed in one call that
            // ends in a flush: the same stream as QEMU's page-by-page feeding, with fewer native calls.
            for (int i = 0; i < count; i++) {
                MemorySegment.copy(ram, offsets[i], stagingMemory, (long) i * pageSize, pageSize);
            }
            staging.clear().limit(count * pageSize);
            while (true) {
                if (!out.hasRemaining()) {
                    throw new IllegalStateException("zstd output of a multifd packet exceeds " + out.capacity() + " bytes");
                }
                boolean flushed = ctx.compressDirectByteBufferStream(out, staging, EndDirective.FLUSH);
                if (!staging.hasRemaining() && flushed) {
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
            ctx.close();
        }
    }

    static final class ZstdDecoder implements MultifdCompression.Decoder {
        private final ZstdDecompressCtx ctx = new ZstdDecompressCtx();
        private final ByteBuffer in;
        private final MemorySegment inMemory;
        private final ByteBuffer spill = ByteBuffer.allocateDirect(64);
        private final PageWindows windows = new PageWindows();
        private int failedPage = -1;

        ZstdDecoder(int pages, int pageSize) {
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
            try {
                for (int i = 0; i < count; i++) {
                    failedPage = i;
                    ByteBuffer page = windows.page(ram, offsets[i], pageSize);
                    while (page.hasRemaining()) {
                        int inAt = in.position();
                        int outAt = page.position();
                        ctx.decompressDirectByteBufferStream(page, in);
                        if (in.position() == inAt && page.position() == outAt) {
                            return "packet data ends inside page " + i + " of the packet ("
                                    + (pageSize - page.remaining()) + " of " + pageSize + " bytes)";
                        }
                    }
                }
                failedPage = -1;
                // Whatever the stream still holds must decode to nothing.
                while (true) {
                    int inAt = in.position();
                    spill.clear();
                    ctx.decompressDirectByteBufferStream(spill, in);
                    if (spill.position() > 0) {
                        return "packet data decodes to more than its " + count + " pages";
                    }
                    if (in.position() == inAt) {
                        break;
                    }
                }
            } catch (ZstdException e) {
                return "zstd data is corrupt: " + e.getMessage();
            }
            if (in.hasRemaining()) {
                return in.remaining() + " bytes of packet data left after its " + count + " pages";
            }
            return null;
        }

        @Override
        public void close() {
            ctx.close();
        }
    }
}
