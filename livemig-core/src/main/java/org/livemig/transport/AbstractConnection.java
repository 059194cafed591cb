package org.livemig.transport;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.GatheringByteChannel;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.ScatteringByteChannel;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * What every transport's connection shares: the description, the shutdown and closed flags, a
 * reader that reports a shutdown as an error rather than as end of stream, and the stand-in for
 * the missing direction of a one-way transport.
 *
 * <p>Threads: the flags are atomics set once from any thread; everything else is read-only after
 * construction.
 */
abstract class AbstractConnection implements MigrationConnection {
    private final String description;
    private final AtomicBoolean shutdown = new AtomicBoolean();
    private final AtomicBoolean closed = new AtomicBoolean();

    AbstractConnection(String description) {
        this.description = description;
    }

    @Override
    public final String description() {
        return description;
    }

    @Override
    public String toString() {
        return description;
    }

    final boolean isShutdown() {
        return shutdown.get();
    }

    @Override
    public final void shutdown() {
        if (shutdown.compareAndSet(false, true)) {
            doShutdown();
        }
    }

    /** Unblocks blocked readers and writers. Called once, from any thread. */
    abstract void doShutdown();

    @Override
    public final void close() throws IOException {
        if (closed.compareAndSet(false, true)) {
            doClose();
        }
    }

    /** Releases the resources. Called once. */
    abstract void doClose() throws IOException;

    final IOException shutdownError(Throwable cause) {
        return new IOException("migration connection " + description + " was shut down", cause);
    }

    /** The incoming channel of this connection, failing after shutdown instead of reporting end of stream. */
    final ReadableByteChannel input(ReadableByteChannel raw) {
        return raw instanceof ScatteringByteChannel sc ? new ScatteringInput(sc) : new Input(raw);
    }

    /** A channel for a direction this transport does not carry: every read and write fails with {@code why}. */
    final OneWay missingDirection(String why) {
        return new OneWay(why);
    }

    private class Input implements ReadableByteChannel {
        private final ReadableByteChannel raw;

        Input(ReadableByteChannel raw) {
            this.raw = raw;
        }

        @Override
        public int read(ByteBuffer dst) throws IOException {
            if (isShutdown()) {
                throw shutdownError(null);
            }
            int n;
            try {
                n = raw.read(dst);
            } catch (IOException e) {
                if (isShutdown()) {
                    throw shutdownError(e);
                }
                throw e;
            }
            if (n < 0 && isShutdown()) {
                throw shutdownError(null);
            }
            return n;
        }

        @Override
        public boolean isOpen() {
            return raw.isOpen();
        }

        @Override
        public void close() throws IOException {
            AbstractConnection.this.close();
        }
    }

    /** {@link Input} over a channel that reads into several buffers at once (TCP, Unix sockets): multifd reads pages straight into RAM. */
    private final class ScatteringInput extends Input implements ScatteringByteChannel {
        private final ScatteringByteChannel raw;

        ScatteringInput(ScatteringByteChannel raw) {
            super(raw);
            this.raw = raw;
        }

        @Override
        public long read(ByteBuffer[] dsts, int offset, int length) throws IOException {
            if (isShutdown()) {
                throw shutdownError(null);
            }
            long n;
            try {
                n = raw.read(dsts, offset, length);
            } catch (IOException e) {
                if (isShutdown()) {
                    throw shutdownError(e);
                }
                throw e;
            }
            if (n < 0 && isShutdown()) {
                throw shutdownError(null);
            }
            return n;
        }

        @Override
        public long read(ByteBuffer[] dsts) throws IOException {
            return read(dsts, 0, dsts.length);
        }
    }

    final class OneWay implements ReadableByteChannel, GatheringByteChannel {
        private final String why;

        OneWay(String why) {
            this.why = why;
        }

        private IOException fail() throws IOException {
            if (closed.get()) {
                throw new ClosedChannelException();
            }
            return new IOException(why);
        }

        @Override
        public int read(ByteBuffer dst) throws IOException {
            throw fail();
        }

        @Override
        public int write(ByteBuffer src) throws IOException {
            throw fail();
        }

        @Override
        public long write(ByteBuffer[] srcs, int offset, int length) throws IOException {
            throw fail();
        }

        @Override
        public long write(ByteBuffer[] srcs) throws IOException {
            throw fail();
        }

        @Override
        public boolean isOpen() {
            return !closed.get();
        }

        @Override
        public void close() throws IOException {
            AbstractConnection.this.close();
        }
    }
}
