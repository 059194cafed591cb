package org.livemig.transport.tls;

import java.io.IOException;
import java.nio.ByteBuffer;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLEngineResult;
import javax.net.ssl.SSLException;

/**
 * X.509 TLS through the JDK's {@link SSLEngine}. Writes encrypt straight from the caller's
 * buffers (guest RAM slices among them) into the outgoing record buffer: {@code wrap} gathers
 * its sources, so there is no copy of ours in between. Reads decrypt into the caller's buffer
 * when it has room for a whole record.
 */
final class JdkTlsEngine extends TlsEngine {
    private static final ByteBuffer EMPTY = ByteBuffer.allocate(0);

    private final SSLEngine engine;
    private final boolean client;

    JdkTlsEngine(SSLEngine engine) {
        this.engine = engine;
        this.client = engine.getUseClientMode();
    }

    @Override
    void begin() throws IOException {
        engine.beginHandshake();
    }

    @Override
    boolean handshaking() {
        SSLEngineResult.HandshakeStatus s = engine.getHandshakeStatus();
        return s != SSLEngineResult.HandshakeStatus.NOT_HANDSHAKING && s != SSLEngineResult.HandshakeStatus.FINISHED;
    }

    @Override
    boolean wantsWrite() {
        return engine.getHandshakeStatus() == SSLEngineResult.HandshakeStatus.NEED_WRAP;
    }

    @Override
    void produce(ByteBuffer net) throws IOException {
        while (engine.getHandshakeStatus() == SSLEngineResult.HandshakeStatus.NEED_WRAP) {
            SSLEngineResult r = engine.wrap(EMPTY, net);
            runTasks();
            if (r.getStatus() != SSLEngineResult.Status.OK || r.bytesProduced() == 0) {
                return; // buffer full (caller flushes and comes back), or closed
            }
        }
    }

    @Override
    long encrypt(ByteBuffer[] srcs, int offset, int length, ByteBuffer net) throws IOException {
        long taken = 0;
        int max = maxRecord();
        int plain = maxPlaintext();
        int first = offset;
        int end = offset + length;
        while (net.remaining() >= max) {
            // Hand wrap only the buffers one record takes: it scans all it is given, and a
            // flush of pages is hundreds of small buffers.
            while (first < end && !srcs[first].hasRemaining()) {
                first++;
            }
            if (first == end) {
                break;
            }
            int last = first;
            long window = 0;
            while (last < end && window < plain) {
                window += srcs[last++].remaining();
            }
            SSLEngineResult r = engine.wrap(srcs, first, last - first, net);
            if (r.getStatus() != SSLEngineResult.Status.OK) {
                if (r.getStatus() == SSLEngineResult.Status.CLOSED) {
                    throw new SSLException("TLS session closed");
                }
                break;
            }
            runTasks();
            taken += r.bytesConsumed();
            if (r.bytesConsumed() == 0) {
                break;
            }
        }
        return taken;
    }

    @Override
    int decrypt(ByteBuffer net, ByteBuffer app) throws IOException {
        int produced = 0;
        while (net.hasRemaining()) {
            SSLEngineResult r = engine.unwrap(net, app);
            runTasks();
            switch (r.getStatus()) {
                case OK -> produced += r.bytesProduced();
                case CLOSED -> {
                    return produced > 0 ? produced : -1;
                }
                default -> {
                    return produced; // an incomplete record, or app full
                }
            }
            if (r.bytesConsumed() == 0 || engine.getHandshakeStatus() == SSLEngineResult.HandshakeStatus.NEED_WRAP
                    || app.remaining() < maxPlaintext()) {
                return produced;
            }
        }
        return produced;
    }

    private void runTasks() {
        Runnable task;
        while ((task = engine.getDelegatedTask()) != null) {
            task.run();
        }
    }

    @Override
    boolean hasBufferedPlaintext() {
        return false; // unwrap hands out whole records only
    }

    @Override
    int maxRecord() {
        return engine.getSession().getPacketBufferSize();
    }

    @Override
    int maxPlaintext() {
        return engine.getSession().getApplicationBufferSize();
    }

    @Override
    String negotiated() {
        return engine.getSession().getProtocol() + " " + engine.getSession().getCipherSuite();
    }

    @Override
    TlsHandshakeException explain(IOException e, String peer) {
        for (Throwable c = e; c != null; c = c.getCause()) {
            if (c instanceof PeerCheckFailed f) {
                return new TlsHandshakeException(f.reason, f.getMessage(), e);
            }
        }
        String m = String.valueOf(e.getMessage());
        String alert = TlsAlerts.received(m);
        if (alert != null) {
            return TlsAlerts.fromPeer(alert, client, false, peer, e);
        }
        if (!client && (m.contains("client certificate chain") || m.contains("null cert chain"))) {
            return new TlsHandshakeException(TlsHandshakeException.Reason.NO_CLIENT_CERTIFICATE,
                    "No certificate peers: the client sent no certificate and verify-peer requires one", e);
        }
        return new TlsHandshakeException(TlsHandshakeException.Reason.PROTOCOL, "TLS handshake failed: " + m, e);
    }
}
