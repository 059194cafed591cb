package org.livemig.transport;

import java.io.IOException;

/**
 * The destination's end of a transport, bound (or checked) when made by
 * {@link Transports#listen}, so address errors surface before anything waits for a peer.
 *
 * <p>Threads: {@link #accept()} is called by the thread waiting for the source; {@link #close()}
 * may be called from any other thread and makes a blocked {@code accept()} throw.
 * {@code tcp:} and {@code unix:} listeners accept any number of connections (multifd, postcopy
 * preempt); {@code file:} and {@code exec:} listeners give exactly one.
 */
public interface MigrationListener extends AutoCloseable {

    /** The address bound; a {@code tcp:} port 0 is resolved to the port really bound. */
    MigrationAddress boundAddress();

    /**
     * Blocks until a peer connects ({@code file:} opens the file for reading; {@code exec:} starts
     * the command and reads its standard output).
     *
     * @throws IOException if the listener is or becomes closed, or the peer cannot be accepted
     */
    MigrationConnection accept() throws IOException;

    /** Stops listening; a {@code unix:} listener removes the socket file it created. Idempotent. */
    @Override
    void close() throws IOException;
}
