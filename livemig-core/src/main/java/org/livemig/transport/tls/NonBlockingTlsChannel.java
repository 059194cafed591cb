package org.livemig.transport.tls;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ByteChannel;
import java.nio.channels.SocketChannel;
import org.livemig.transport.ChannelSecurity;

/**
 * TLS over a non-blocking socket for an event loop (the QMP server's {@code qmp-io}): reads and
 * writes never block and return 0 when they cannot go on; the handshake advances as the loop
 * reads and flushes. Application data written during the handshake is not taken (0), so callers
 * keep it queued and retry once {@link #pendingOutput()} has been flushed.
 *
 * <p>Threads: one thread only (the event loop's).
 */
public final class NonBlockingTlsChannel implements ByteChannel {
    private final SocketChannel channel;
    private final TlsEngine engine;
    private final ByteBuffer netIn;
    private final ByteBuffer appIn;
    private final ByteBuffer netOut;
    private final ByteBuffer[] one = new ByteBuffer[1];
    private final String peer;

    private NonBlockingTlsChannel(SocketChannel channel, TlsEngine engine, String peer) throws IOException {
        this.channel = channel;
        this.engine = engine;
        this.peer = peer;
        this.netIn = ByteBuffer.allocate(engine.maxRecord() * 2).flip();
        this.appIn = ByteBuffer.allocate(engine.maxPlaintext() + 1024).flip();
        this.netOut = ByteBuffer.allocate(engine.maxRecord() * 2).flip();
        engine.begin();
    }

    /** The server side of a connection accepted on a listener secured by {@code security}. */
    public static NonBlockingTlsChannel server(SocketChannel channel, ChannelSecurity security, String peer) throws IOException {
        if (!(security instanceof TlsChannelSecurity tls)) {
            throw new IllegalArgumentException("not TLS: " + security);
        }
        return new NonBlockingTlsChannel(channel, tls.serverEngine(), peer);
    }

    /** True while the handshake runs. */
    public boolean handshaking() {
        return engine.handshaking();
    }

    @Override
    public int read(ByteBuffer dst) throws IOException {
        try {
            while (true) {
                if (appIn.hasRemaining()) {
                    int n = Math.min(appIn.remaining(), dst.remaining());
                    dst.put(appIn.slice(appIn.position(), n));
                    appIn.position(appIn.position() + n);
                    return n;
                }
                if (netIn.hasRemaining() || engine.hasBufferedPlaintext()) {
                    int before = netIn.remaining();
                    boolean wasHandshaking = engine.handshaking();
                    appIn.compact();
                    int n;
                    try {
                        n = engine.decrypt(netIn, appIn);
                    } finally {
                        appIn.flip();
                    }
                    flush();
                    if (n < 0) {
                        return -1;
                    }
                    if (n > 0 || netIn.remaining() != before || wasHandshaking != engine.handshaking()) {
                        continue;
                    }
                }
                netIn.compact();
                int r;
                try {
                    r = channel.read(netIn);
                } finally {
                    netIn.flip();
                }
                if (r < 0) {
                    return -1;
                }
                if (r == 0) {
                    flush();
                    return 0;
                }
            }
        } catch (IOException e) {
            try {
                flush(); // the alert that tells the peer why
            } catch (IOException | RuntimeException ignored) {
                // the peer is gone; our own error says enough
            }
            throw engine.handshaking() ? engine.explain(e, peer) : e;
        }
    }

    @Override
    public int write(ByteBuffer src) throws IOException {
        if (!flush() || engine.handshaking()) {
            return 0;
        }
        netOut.compact();
        long n;
        try {
            one[0] = src;
            n = engine.encrypt(one, 0, 1, netOut);
        } finally {
            one[0] = null;
            netOut.flip();
        }
        flush();
        return (int) n;
    }

    /**
     * Writes pending handshake messages and records as far as the socket takes them. Returns
     * true when nothing is left.
     */
    public boolean flush() throws IOException {
        while (true) {
            if (engine.wantsWrite() && netOut.remaining() < netOut.capacity() / 2) {
                netOut.compact();
                try {
                    engine.produce(netOut);
                } finally {
                    netOut.flip();
                }
            }
            if (!netOut.hasRemaining()) {
                return !engine.wantsWrite();
            }
            if (channel.write(netOut) == 0) {
                return false;
            }
        }
    }

    /** True when TLS bytes wait to be written (the loop then watches for writability). */
    public boolean pendingOutput() {
        return netOut.hasRemaining() || engine.wantsWrite();
    }

    @Override
    public boolean isOpen() {
        return channel.isOpen();
    }

    @Override
    public void close() throws IOException {
        channel.close();
    }
}
