package org.livemig.transport;

import java.io.IOException;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.WritableByteChannel;

/**
 * One established migration connection: a byte stream each way ({@code file:} and {@code exec:}
 * carry one direction only; the other fails every call with a clear {@link IOException}).
 *
 * <p>Threads: one thread may read {@link #in()} while another writes {@link #out()} (the main
 * stream and the return path). {@link #shutdown()} and {@link #description()} may be called
 * from any thread. Closing {@code in()} or {@code out()} closes the whole connection, as
 * {@link #close()} does; a caller that wants to keep the other direction must not close either
 * channel and close the connection instead.
 *
 * <p>For {@code tcp:}, {@code unix:} and a writing {@code file:} connection, {@code out()} is the
 * underlying {@link java.nio.channels.GatheringByteChannel} itself, so vectored writes reach the
 * kernel as one call.
 */
public interface MigrationConnection extends AutoCloseable {

    /** The incoming byte stream. After {@link #shutdown()} a read fails (never returns -1). */
    ReadableByteChannel in();

    /** The outgoing byte stream. */
    WritableByteChannel out();

    /**
     * Unblocks any thread blocked reading or writing this connection, from any thread, without
     * releasing its resources (QEMU's yank / channel shutdown). Idempotent; later reads and
     * writes fail with an {@link IOException}. {@link #close()} is still needed.
     */
    void shutdown();

    /**
     * The file a {@code file:} connection reads or writes, positioned at the stream's current
     * byte (mapped-ram writes and reads RAM pages at fixed offsets of it, beside the stream);
     * null for every other transport, and for a connection wrapped by another.
     */
    default java.nio.channels.FileChannel fileChannel() {
        return null;
    }

    /** Where this connection goes, for logs and errors, e.g. {@code tcp:127.0.0.1:4444 <- 127.0.0.1:51234}. */
    String description();

    /** Releases the connection. Idempotent. Called by the owner once no thread uses it any more. */
    @Override
    void close() throws IOException;
}
