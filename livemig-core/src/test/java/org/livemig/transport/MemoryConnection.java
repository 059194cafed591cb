package org.livemig.transport;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.GatheringByteChannel;
import java.nio.channels.ReadableByteChannel;
import java.util.ArrayList;
import java.util.List;

/**
 * An in-memory connection for fault tests: {@code in()} serves a fixed byte array (at most
 * {@code maxRead} bytes per read), {@code out()} records every byte and the size of every call.
 */
final class MemoryConnection implements MigrationConnection {
    final byte[] incoming;
    final int maxRead;
    int readPos;
    final ByteArrayOutputStream written = new ByteArrayOutputStream();
    /** Bytes passed in each single write call. */
    final List<Long> singleWrites = new ArrayList<>();
    /** Bytes passed in each gathering write call. */
    final List<Long> gatheringWrites = new ArrayList<>();
    volatile int shutdowns;
    volatile boolean closed;

    MemoryConnection(byte[] incoming, int maxRead) {
        this.incoming = incoming;
        this.maxRead = maxRead;
    }

    byte[] written() {
        return written.toByteArray();
    }

    private final ReadableByteChannel in = new ReadableByteChannel() {
        @Override
        public int read(ByteBuffer dst) throws IOException {
            if (shutdowns > 0) {
                throw new IOException("memory connection shut down");
            }
            if (readPos == incoming.length) {
                return -1;
            }
            int n = Math.min(Math.min(maxRead, dst.remaining()), incoming.length - readPos);
            dst.put(incoming, readPos, n);
            readPos += n;
            return n;
        }

        @Override
        public boolean isOpen() {
            return !closed;
        }

        @Override
        public void close() {
            closed = true;
        }
    };

    private final GatheringByteChannel out = new GatheringByteChannel() {
        private int copy(ByteBuffer src) throws IOException {
            if (shutdowns > 0) {
                throw new IOException("memory connection shut down");
            }
            int n = src.remaining();
            byte[] b = new byte[n];
            src.get(b);
            written.write(b, 0, n);
            return n;
        }

        @Override
        public int write(ByteBuffer src) throws IOException {
            singleWrites.add((long) src.remaining());
            return copy(src);
        }

        @Override
        public long write(ByteBuffer[] srcs, int offset, int length) throws IOException {
            long n = 0;
            for (int i = offset; i < offset + length; i++) {
                n += copy(srcs[i]);
            }
            gatheringWrites.add(n);
            return n;
        }

        @Override
        public long write(ByteBuffer[] srcs) throws IOException {
            return write(srcs, 0, srcs.length);
        }

        @Override
        public boolean isOpen() {
            return !closed;
        }

        @Override
        public void close() {
            closed = true;
        }
    };

    @Override
    public ReadableByteChannel in() {
        return in;
    }

    @Override
    public GatheringByteChannel out() {
        return out;
    }

    @Override
    public void shutdown() {
        shutdowns++;
    }

    @Override
    public String description() {
        return "memory";
    }

    @Override
    public void close() {
        closed = true;
    }
}
