package org.livemig.bench.micro;

import java.nio.ByteBuffer;
import java.nio.channels.GatheringByteChannel;
import java.nio.channels.ReadableByteChannel;

/**
 * In-memory stand-ins for a socket, so that a benchmark measures the codec and one copy of its
 * bytes (as into a socket's send buffer), not the kernel: {@link Sink} copies what is written into
 * a ring it reuses, {@link Replay} reads the same bytes over and over.
 */
final class Wire {
    private Wire() {}

    /** Copies every byte written into a direct ring buffer (a socket's send buffer, without the kernel). */
    static final class Sink implements GatheringByteChannel {
        private final ByteBuffer ring;

        Sink(int capacity) {
            ring = ByteBuffer.allocateDirect(capacity);
        }

        @Override
        public int write(ByteBuffer src) {
            int n = src.remaining();
            while (src.hasRemaining()) {
                if (!ring.hasRemaining()) {
                    ring.clear();
                }
                int k = Math.min(ring.remaining(), src.remaining());
                ring.put(ring.position(), src, src.position(), k);
                ring.position(ring.position() + k);
                src.position(src.position() + k);
            }
            return n;
        }

        @Override
        public long write(ByteBuffer[] srcs, int offset, int length) {
            long n = 0;
            for (int i = offset; i < offset + length; i++) {
                n += write(srcs[i]);
            }
            return n;
        }

        @Override
        public long write(ByteBuffer[] srcs) {
            return write(srcs, 0, srcs.length);
        }

        @Override
        public boolean isOpen() {
            return true;
        }

        @Override
        public void close() {
        }
    }

    /** Reads {@code bytes} again and again: a stream of one record group repeated. */
    static final class Replay implements ReadableByteChannel {
        private final byte[] bytes;
        private int at;

        Replay(byte[] bytes) {
            this.bytes = bytes;
        }

        @Override
        public int read(ByteBuffer dst) {
            int n = 0;
            while (dst.hasRemaining()) {
                int k = Math.min(dst.remaining(), bytes.length - at);
                dst.put(bytes, at, k);
                at = (at + k) % bytes.length;
                n += k;
            }
            return n;
        }

        @Override
        public boolean isOpen() {
            return true;
        }

        @Override
        public void close() {
        }
    }
}
