package org.livemig.relay;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.WritableByteChannel;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A readable channel that writes every chunk it reads from {@code source} to each sink before
 * returning it, so the sinks get exactly the source's bytes as soon as they arrive, whatever the
 * reader on top does with them (it may block for more without holding anything back).
 *
 * <p>Holding back ({@code holdBack}), a chunk is forwarded only when the reader asks for more
 * (or at {@link #flushPending()}), so that what the reader decoded from it can still decide what
 * of it passes: a reader that buffers only what it needs has then seen every record ending in
 * the chunk before the chunk is forwarded (how a relay cuts exactly at a section header).
 *
 * <p>Not thread-safe: one reading thread. {@link #bytes()} may be read from any thread.
 */
final class ForwardingChannel implements ReadableByteChannel {
    private final ReadableByteChannel source;
    private final List<WritableByteChannel> sinks;
    private final AtomicLong bytes = new AtomicLong();
    private final Runnable onProgress;
    private final boolean holdBack;
    private ByteBuffer pending;
    /** Reused for held-back chunks (one at a time). */
    private ByteBuffer holdBuffer;
    private boolean eof;

    ForwardingChannel(ReadableByteChannel source, List<WritableByteChannel> sinks, Runnable onProgress) {
        this(source, sinks, onProgress, false);
    }

    ForwardingChannel(ReadableByteChannel source, List<WritableByteChannel> sinks, Runnable onProgress,
                      boolean holdBack) {
        this.source = source;
        this.sinks = List.copyOf(sinks);
        this.onProgress = onProgress;
        this.holdBack = holdBack;
    }

    /** Forwards the chunk held back, if any. */
    void flushPending() throws IOException {
        if (pending != null) {
            ByteBuffer p = pending;
            pending = null;
            forward(p);
        }
    }

    private void forward(ByteBuffer chunk) throws IOException {
        for (WritableByteChannel sink : sinks) {
            ByteBuffer c = chunk.duplicate();
            while (c.hasRemaining()) {
                sink.write(c);
            }
        }
    }

    @Override
    public int read(ByteBuffer dst) throws IOException {
        flushPending();
        int start = dst.position();
        int n = source.read(dst);
        if (n < 0) {
            eof = true;
            return n;
        }
        if (n > 0) {
            ByteBuffer chunk = dst.duplicate().position(start).limit(start + n);
            if (holdBack) {
                // One buffer, grown as needed: flushPending() empties it before the next read.
                if (holdBuffer == null || holdBuffer.capacity() < n) {
                    holdBuffer = ByteBuffer.allocate(Math.max(n, 64 * 1024));
                }
                pending = holdBuffer.clear().put(chunk).flip();
            } else {
                forward(chunk);
            }
            bytes.addAndGet(n);
            onProgress.run();
        }
        return n;
    }

    /** Reads and forwards everything left, without decoding it. */
    void drain() throws IOException {
        ByteBuffer buf = ByteBuffer.allocate(64 * 1024);
        while (read(buf.clear()) >= 0) {
            // forwarded by read
        }
    }

    /**
     * The decoder reading on top failed with {@code failure}. If the source had ended, the stream
     * stopped in the middle of a record: thrown, prefixed with {@code endedMidRecord}. Otherwise
     * the rest is forwarded undecoded and the decoder's message is returned, for the report.
     */
    String forwardRestUndecoded(IOException failure, String endedMidRecord) throws IOException {
        if (eof) {
            throw new IOException(endedMidRecord + ": " + failure.getMessage(), failure);
        }
        drain();
        return failure.getMessage();
    }

    /** Bytes read from the source and forwarded so far. */
    long bytes() {
        return bytes.get();
    }

    @Override
    public boolean isOpen() {
        return source.isOpen();
    }

    /** Does not close the source: the connection's owner does. */
    @Override
    public void close() {
    }
}
