package org.livemig.transport.tls;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Vector;
import org.bouncycastle.tls.AlertDescription;
import org.bouncycastle.tls.BasicTlsPSKExternal;
import org.bouncycastle.tls.BasicTlsPSKIdentity;
import org.bouncycastle.tls.CipherSuite;
import org.bouncycastle.tls.PRFAlgorithm;
import org.bouncycastle.tls.PSKTlsClient;
import org.bouncycastle.tls.PSKTlsServer;
import org.bouncycastle.tls.ProtocolVersion;
import org.bouncycastle.tls.PskIdentity;
import org.bouncycastle.tls.TlsAuthentication;
import org.bouncycastle.tls.TlsClientProtocol;
import org.bouncycastle.tls.TlsFatalAlert;
import org.bouncycastle.tls.TlsFatalAlertReceived;
import org.bouncycastle.tls.TlsPSKExternal;
import org.bouncycastle.tls.TlsPSKIdentityManager;
import org.bouncycastle.tls.TlsProtocol;
import org.bouncycastle.tls.TlsServerProtocol;
import org.bouncycastle.tls.TlsUtils;
import org.bouncycastle.tls.crypto.TlsCrypto;

/**
 * TLS with pre-shared keys (QEMU's {@code tls-creds-psk}) through Bouncy Castle's TLS protocol
 * in its non-blocking mode; the JDK's TLS has no PSK key exchange. Interoperates with QEMU 7.2
 * (GnuTLS 3.7), which negotiates TLS 1.3 with an external PSK (identity = username, HKDF-SHA256,
 * psk_dhe_ke) and offers TLS 1.2 PSK suites as well. Only SHA-256 suites are offered, since
 * GnuTLS binds an external PSK to SHA-256, and AES-GCM only: ChaCha20 (which GnuTLS prefers
 * without AES-NI) is not in the JDK provider that does the record encryption here.
 *
 * <p>Bouncy Castle's protocol object is not thread-safe: every call into it holds this engine's
 * lock (briefly; no IO happens under it). Its API takes byte arrays, so each record costs a copy
 * in and out beside the encryption.
 */
final class PskTlsEngine extends TlsEngine {
    /** One crypto for every session: the JDK's JCA providers (AES-GCM intrinsics), BC's protocol code. */
    private static final TlsCrypto CRYPTO = JdkGcmTlsCrypto.create(new SecureRandom());
    private static final int[] SUITES = {
        CipherSuite.TLS_AES_128_GCM_SHA256,
        CipherSuite.TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256,
        CipherSuite.TLS_DHE_PSK_WITH_AES_128_GCM_SHA256,
        CipherSuite.TLS_PSK_WITH_AES_128_GCM_SHA256,
    };
    private static final int MAX_PLAINTEXT = 1 << 14;
    /** Header, inner content type, tag, and room for TLS 1.2 CBC padding and MAC. */
    private static final int MAX_RECORD = MAX_PLAINTEXT + 5 + 256;

    private final TlsProtocol protocol;
    private final boolean client;
    private final Object lock = new Object();
    private final byte[] in = new byte[64 << 10];
    private final byte[] out = new byte[MAX_PLAINTEXT];
    private volatile boolean done;
    /** Server: the usernames the client offered; whether one had a key here. */
    private final List<String> offered = new ArrayList<>();
    private volatile boolean keyFound;
    private final PSKTlsClient pskClient;
    private final PSKTlsServer pskServer;

    private PskTlsEngine(TlsCredentials.Psk creds) {
        this.client = creds.endpoint() == TlsEndpoint.CLIENT;
        if (client) {
            byte[] identity = creds.username().getBytes(StandardCharsets.UTF_8);
            byte[] key = creds.keys().get(creds.username());
            protocol = new TlsClientProtocol();
            pskServer = null;
            pskClient = new PSKTlsClient(CRYPTO, new BasicTlsPSKIdentity(identity, key)) {
                @Override
                protected ProtocolVersion[] getSupportedVersions() {
                    return ProtocolVersion.TLSv13.downTo(ProtocolVersion.TLSv12);
                }

                @Override
                protected int[] getSupportedCipherSuites() {
                    return TlsUtils.getSupportedCipherSuites(getCrypto(), SUITES);
                }

                @Override
                public Vector<TlsPSKExternal> getExternalPSKs() {
                    Vector<TlsPSKExternal> v = new Vector<>();
                    v.add(new BasicTlsPSKExternal(identity, getCrypto().createSecret(key), PRFAlgorithm.tls13_hkdf_sha256));
                    return v;
                }

                @Override
                public TlsAuthentication getAuthentication() throws IOException {
                    throw new TlsFatalAlert(AlertDescription.handshake_failure,
                            "the server asked for certificates; this side has a pre-shared key only");
                }

                @Override
                public void notifyHandshakeComplete() throws IOException {
                    super.notifyHandshakeComplete();
                    done = true;
                }
            };
        } else {
            Map<String, byte[]> keys = creds.keys();
            protocol = new TlsServerProtocol();
            pskClient = null;
            pskServer = new PSKTlsServer(CRYPTO, new TlsPSKIdentityManager() {
                @Override
                public byte[] getHint() {
                    return null;
                }

                @Override
                public byte[] getPSK(byte[] identity) {
                    return lookUp(keys, identity);
                }
            }) {
                @Override
                protected ProtocolVersion[] getSupportedVersions() {
                    return ProtocolVersion.TLSv13.downTo(ProtocolVersion.TLSv12);
                }

                @Override
                protected int[] getSupportedCipherSuites() {
                    return TlsUtils.getSupportedCipherSuites(getCrypto(), SUITES);
                }

                @Override
                protected boolean preferLocalCipherSuites() {
                    return true;
                }

                @Override
                public TlsPSKExternal getExternalPSK(@SuppressWarnings("rawtypes") Vector identities) {
                    for (Object o : identities) {
                        PskIdentity id = (PskIdentity) o;
                        byte[] key = lookUp(keys, id.getIdentity());
                        if (key != null) {
                            return new BasicTlsPSKExternal(id.getIdentity(), getCrypto().createSecret(key),
                                    PRFAlgorithm.tls13_hkdf_sha256);
                        }
                    }
                    return null;
                }

                @Override
                public void notifyHandshakeComplete() throws IOException {
                    super.notifyHandshakeComplete();
                    done = true;
                }
            };
        }
    }

    static PskTlsEngine of(TlsCredentials.Psk creds) {
        return new PskTlsEngine(creds);
    }

    private byte[] lookUp(Map<String, byte[]> keys, byte[] identity) {
        String name = new String(identity, StandardCharsets.UTF_8);
        synchronized (offered) {
            offered.add(name);
        }
        byte[] key = keys.get(name);
        if (key != null) {
            keyFound = true;
        }
        return key;
    }

    @Override
    void begin() throws IOException {
        synchronized (lock) {
            if (client) {
                ((TlsClientProtocol) protocol).connect(pskClient);
            } else {
                ((TlsServerProtocol) protocol).accept(pskServer);
            }
        }
    }

    @Override
    boolean handshaking() {
        return !done;
    }

    @Override
    boolean wantsWrite() {
        synchronized (lock) {
            return protocol.getAvailableOutputBytes() > 0;
        }
    }

    @Override
    void produce(ByteBuffer net) {
        synchronized (lock) {
            int n = Math.min(protocol.getAvailableOutputBytes(), net.remaining());
            if (n > 0) {
                protocol.readOutput(net, n);
            }
        }
    }

    @Override
    long encrypt(ByteBuffer[] srcs, int offset, int length, ByteBuffer net) throws IOException {
        long taken = 0;
        int i = offset;
        synchronized (lock) {
            while (net.remaining() - protocol.getAvailableOutputBytes() >= MAX_RECORD) {
                while (i < offset + length && !srcs[i].hasRemaining()) {
                    i++;
                }
                if (i == offset + length) {
                    break;
                }
                // Whole records from as many buffers as fill one: a flush of pages alternates
                // 8-byte headers and 4 KiB pages, and each record costs a cipher set-up.
                int filled = 0;
                while (filled < MAX_PLAINTEXT && i < offset + length) {
                    int chunk = Math.min(srcs[i].remaining(), MAX_PLAINTEXT - filled);
                    srcs[i].get(out, filled, chunk);
                    filled += chunk;
                    if (!srcs[i].hasRemaining()) {
                        i++;
                    }
                }
                protocol.writeApplicationData(out, 0, filled);
                taken += filled;
            }
            int n = Math.min(protocol.getAvailableOutputBytes(), net.remaining());
            if (n > 0) {
                protocol.readOutput(net, n);
            }
        }
        return taken;
    }

    @Override
    int decrypt(ByteBuffer net, ByteBuffer app) throws IOException {
        synchronized (lock) {
            while (protocol.getAvailableInputBytes() == 0 && net.hasRemaining()) {
                int n = Math.min(net.remaining(), in.length);
                if (net.hasArray()) {
                    // offerInput copies what it keeps: no copy of ours in between
                    int at = net.position();
                    net.position(at + n);
                    protocol.offerInput(net.array(), net.arrayOffset() + at, n);
                } else {
                    net.get(in, 0, n);
                    protocol.offerInput(in, 0, n);
                }
            }
            int avail = protocol.getAvailableInputBytes();
            if (avail > 0) {
                return protocol.readInput(app, Math.min(avail, app.remaining()));
            }
            return protocol.isClosed() && done ? -1 : 0;
        }
    }

    @Override
    boolean hasBufferedPlaintext() {
        synchronized (lock) {
            // offerInput decrypts every whole record it is given; readInput takes what fits
            return protocol.getAvailableInputBytes() > 0;
        }
    }

    @Override
    int maxRecord() {
        return MAX_RECORD;
    }

    @Override
    int maxPlaintext() {
        return MAX_PLAINTEXT;
    }

    @Override
    String negotiated() {
        return "TLS-PSK (Bouncy Castle)";
    }

    @Override
    TlsHandshakeException explain(IOException e, String peer) {
        if (e instanceof TlsFatalAlertReceived r) {
            return TlsAlerts.fromPeer(AlertDescription.getName(r.getAlertDescription()), client, true, peer, e);
        }
        if (!client) {
            List<String> names;
            synchronized (offered) {
                names = List.copyOf(offered);
            }
            if (!names.isEmpty() && !keyFound) {
                return new TlsHandshakeException(TlsHandshakeException.Reason.PSK_MISMATCH,
                        "TLS handshake failed: PSK mismatch: no pre-shared key for username " + names + " from " + peer, e);
            }
            if (keyFound && e instanceof TlsFatalAlert a && (a.getAlertDescription() == AlertDescription.decrypt_error
                    || a.getAlertDescription() == AlertDescription.bad_record_mac)) {
                return new TlsHandshakeException(TlsHandshakeException.Reason.PSK_MISMATCH,
                        "TLS handshake failed: PSK mismatch: the pre-shared key of username " + names + " from " + peer
                                + " differs from this side's", e);
            }
        } else if (e instanceof TlsFatalAlert a && (a.getAlertDescription() == AlertDescription.decrypt_error
                || a.getAlertDescription() == AlertDescription.bad_record_mac)) {
            return new TlsHandshakeException(TlsHandshakeException.Reason.PSK_MISMATCH,
                    "TLS handshake failed: PSK mismatch: the server's pre-shared key differs from this side's ("
                            + e.getMessage() + ")", e);
        }
        return new TlsHandshakeException(TlsHandshakeException.Reason.PROTOCOL, "TLS handshake failed: " + e.getMessage(), e);
    }
}
