package org.livemig.monitor;

import java.nio.ByteBuffer;
import java.nio.channels.SelectionKey;
import java.nio.channels.SocketChannel;
import java.util.ArrayDeque;
import java.util.concurrent.locks.ReentrantLock;

import tools.jackson.databind.JsonNode;

/**
 * One QMP connection. Every field is owned by the {@code qmp-io} thread, except the output
 * ({@link #out}, {@link #outBytes} and writes to a plain socket), guarded by {@link #outLock} so
 * that the main loop writes its replies and any thread its events without a hand-off to qmp-io
 * (as QEMU's monitor writes under its mon_lock); {@link #closed} and {@link #commandMode} are
 * read by those threads too.
 */
final class QmpSession {
    /** A parse error waiting in the in-band queue (QEMU answers those in order too). */
    record ParseError(String desc) {
    }

    final long id;
    final SocketChannel channel;
    /** What is read and written: the channel itself, or TLS over it ({@link #tls}). */
    java.nio.channels.ByteChannel io;
    /** The session's TLS, or null on a plain listener. */
    org.livemig.transport.tls.NonBlockingTlsChannel tls;
    SelectionKey key;
    JsonStreamParser parser;

    /**
     * Bytes read but not yet fed to the parser (kept while the session is suspended); in write
     * mode between uses. Its size bounds what is read ahead of a suspended session.
     */
    final ByteBuffer readBuf = ByteBuffer.allocate(8 * 1024);
    /** Guards {@link #out}, {@link #outBytes}, writes to the channel and setting {@link #closed}. */
    final ReentrantLock outLock = new ReentrantLock();
    /** Replies and events not yet written. */
    final ArrayDeque<ByteBuffer> out = new ArrayDeque<>();
    long outBytes;

    /** In-band requests read but not yet dispatched: a {@link JsonNode} or a {@link ParseError}. */
    final ArrayDeque<Object> pending = new ArrayDeque<>();
    /** An in-band command is on the main loop; the next waits for its reply. */
    boolean inFlight;
    /** Reading stopped: the in-band queue is full (QEMU's monitor_suspend). */
    boolean suspended;
    /** Inside {@link QmpServer}'s feed loop (guards against re-entry). */
    boolean feeding;
    /** Capabilities negotiated: commands other than qmp_capabilities allowed, events delivered. */
    volatile boolean commandMode;
    /**
     * Requests wait here (queued, or read while suspended): the end of an in-band command must
     * wake qmp-io to dispatch them. Written by qmp-io after each turn on the session.
     */
    volatile boolean backlog;
    boolean oobEnabled;
    volatile boolean closed;

    QmpSession(long id, SocketChannel channel) {
        this.id = id;
        this.channel = channel;
        this.io = channel;
    }

    @Override
    public String toString() {
        return "QMP session " + id;
    }
}
