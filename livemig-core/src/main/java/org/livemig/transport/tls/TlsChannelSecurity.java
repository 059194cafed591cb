package org.livemig.transport.tls;

import java.io.IOException;
import java.lang.System.Logger.Level;
import java.security.GeneralSecurityException;
import java.net.Socket;
import java.security.KeyStore;
import java.security.Principal;
import java.security.PrivateKey;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.function.Predicate;
import javax.net.ssl.KeyManager;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.TrustManager;
import javax.net.ssl.TrustManagerFactory;
import javax.net.ssl.X509ExtendedKeyManager;
import javax.net.ssl.X509ExtendedTrustManager;
import org.livemig.transport.ChannelSecurity;
import org.livemig.transport.MigrationAddress;
import org.livemig.transport.MigrationConnection;

/**
 * TLS on every connection of a migration, as QEMU's {@code tls-creds}, {@code tls-hostname} and
 * {@code tls-authz} ask: X.509 through the JDK's TLS (1.3 first, 1.2 accepted), pre-shared keys
 * through Bouncy Castle's. Made once when a migration starts; each {@link #client} or
 * {@link #server} call runs one handshake, bounded by the handshake timeout.
 *
 * <p>The client checks the server's certificate against the host it connected to ({@code tcp:}'s
 * host), or {@code tls-hostname} when set; over {@code unix:} or {@code exec:} there is no host,
 * so X.509 fails unless {@code tls-hostname} is set (QEMU's behaviour). A server with
 * {@code verify-peer} requires a client certificate from its CA, and with {@code tls-authz} a
 * distinguished name the authorization allows.
 *
 * <p>Immutable and thread-safe: multifd channels handshake from several threads.
 */
public final class TlsChannelSecurity implements ChannelSecurity {
    private static final System.Logger LOG = System.getLogger(TlsChannelSecurity.class.getName());
    /** As long as a connect may take (the source's connect timeout). */
    public static final Duration DEFAULT_HANDSHAKE_TIMEOUT = Duration.ofSeconds(10);
    private static final String[] PROTOCOLS = {"TLSv1.3", "TLSv1.2"};
    /** AES-128-GCM first: the fastest suite with AES-NI, and what QEMU's peers accept. */
    private static final String FIRST_SUITE = "TLS_AES_128_GCM_SHA256";

    static {
        // No session tickets: resuming is of no use to a migration, and a ticket the server sends
        // after the handshake sits unread on a channel only ever written (multifd), so that
        // closing it resets the connection and the peer may lose the end of the stream. A client
        // that does not offer psk_key_exchange_modes gets none (RFC 8446, 4.6.1). Read by the
        // JDK once, when its TLS is first used; livemig's processes use TLS for nothing else.
        // A server that ignores the extension sends none to any client, QEMU's GnuTLS included
        // (which otherwise closed its main channel over an unread ticket: a reset here).
        for (String side : new String[] {"client", "server"}) {
            if (System.getProperty("jdk.tls." + side + ".disableExtensions") == null) {
                System.setProperty("jdk.tls." + side + ".disableExtensions", "psk_key_exchange_modes");
            }
        }
    }

    private final TlsCredentials credentials;
    /** The last client connection made, asked for the peer's verdict when a later one fails unexplained. */
    private final java.util.concurrent.atomic.AtomicReference<TlsConnection> lastClient = new java.util.concurrent.atomic.AtomicReference<>();
    private final String hostname;
    private final Predicate<String> authz;
    private final long timeoutMillis;
    /** X.509 only. */
    private final SSLContext context;

    private TlsChannelSecurity(TlsCredentials credentials, String hostname, Predicate<String> authz, Duration timeout)
            throws IOException {
        this.credentials = Objects.requireNonNull(credentials, "credentials");
        this.hostname = hostname == null || hostname.isEmpty() ? null : hostname;
        this.authz = authz;
        this.timeoutMillis = timeout.toMillis();
        this.context = credentials instanceof TlsCredentials.X509 x ? context(x, authz) : null;
    }

    /**
     * @param hostname tls-hostname: the name the server's certificate must carry instead of the
     *                 connected host; null or empty for none
     * @param authz    tls-authz on a server: which client distinguished names (RFC 2253) may
     *                 connect; null allows any the CA signed
     */
    public static TlsChannelSecurity of(TlsCredentials credentials, String hostname, Predicate<String> authz,
            Duration handshakeTimeout) throws IOException {
        return new TlsChannelSecurity(credentials, hostname, authz, handshakeTimeout);
    }

    public TlsCredentials credentials() {
        return credentials;
    }

    /** A client engine for a connection to {@code to} (its tcp: host is checked unless tls-hostname overrides it). */
    TlsEngine clientEngine(MigrationAddress to) throws IOException {
        checkEndpoint(TlsEndpoint.CLIENT);
        return switch (credentials) {
            case TlsCredentials.X509 x -> {
                String host = hostname != null ? hostname
                        : to instanceof MigrationAddress.Tcp t && !t.host().isEmpty() ? t.host() : null;
                int port = to instanceof MigrationAddress.Tcp t ? t.port() : -1;
                SSLEngine e = host == null ? context.createSSLEngine() : context.createSSLEngine(host, port);
                e.setUseClientMode(true);
                configure(e);
                yield new JdkTlsEngine(e);
            }
            case TlsCredentials.Psk p -> PskTlsEngine.of(p);
        };
    }

    /** A server engine for one accepted connection. */
    TlsEngine serverEngine() throws IOException {
        checkEndpoint(TlsEndpoint.SERVER);
        return switch (credentials) {
            case TlsCredentials.X509 x -> {
                SSLEngine e = context.createSSLEngine();
                e.setUseClientMode(false);
                configure(e);
                if (x.verifyPeer()) {
                    e.setNeedClientAuth(true);
                }
                yield new JdkTlsEngine(e);
            }
            case TlsCredentials.Psk p -> PskTlsEngine.of(p);
        };
    }

    @Override
    public MigrationConnection client(MigrationConnection plain, MigrationAddress to) throws IOException {
        TlsEngine engine;
        try {
            engine = clientEngine(to);
        } catch (IOException | RuntimeException e) {
            closeQuietly(plain);
            throw e;
        }
        TlsConnection c;
        try {
            c = TlsConnection.handshake(plain, engine, timeoutMillis);
        } catch (TlsHandshakeException e) {
            TlsConnection earlier = lastClient.get();
            if (e.reason() == TlsHandshakeException.Reason.PROTOCOL && earlier != null) {
                TlsHandshakeException verdict = earlier.peerVerdict(2000);
                if (verdict != null) {
                    verdict.addSuppressed(e);
                    throw verdict;
                }
            }
            throw e;
        }
        lastClient.set(c);
        LOG.log(Level.DEBUG, () -> c.description() + ": " + c.negotiated());
        return c;
    }

    @Override
    public MigrationConnection server(MigrationConnection accepted) throws IOException {
        TlsEngine engine;
        try {
            engine = serverEngine();
        } catch (IOException | RuntimeException e) {
            closeQuietly(accepted);
            throw e;
        }
        TlsConnection c = TlsConnection.handshake(accepted, engine, timeoutMillis);
        LOG.log(Level.DEBUG, () -> c.description() + ": " + c.negotiated());
        return c;
    }

    @Override
    public boolean isPlain() {
        return false;
    }

    @Override
    public Throwable explain(Throwable failure) {
        if (failure instanceof TlsHandshakeException t && t.reason() != TlsHandshakeException.Reason.PROTOCOL) {
            return failure;
        }
        TlsConnection earlier = lastClient.get();
        TlsHandshakeException verdict = earlier == null ? null : earlier.peerVerdict(2000);
        if (verdict == null) {
            return failure;
        }
        verdict.addSuppressed(failure);
        return verdict;
    }

    @Override
    public String toString() {
        return "TLS (" + credentials.getClass().getSimpleName().toLowerCase(java.util.Locale.ROOT) + ", "
                + credentials.endpoint().qemuName() + (hostname != null ? ", hostname " + hostname : "")
                + (authz != null ? ", authz" : "") + ")";
    }

    private void checkEndpoint(TlsEndpoint want) throws TlsHandshakeException {
        if (credentials.endpoint() != want) {
            throw new TlsHandshakeException(TlsHandshakeException.Reason.CONFIGURATION,
                    "Expected TLS credentials for a " + want.qemuName() + " endpoint", null);
        }
    }

    private static void configure(SSLEngine e) {
        SSLParameters p = e.getSSLParameters();
        p.setProtocols(PROTOCOLS);
        List<String> suites = new ArrayList<>();
        suites.add(FIRST_SUITE);
        for (String s : e.getEnabledCipherSuites()) {
            if (!s.equals(FIRST_SUITE)) {
                suites.add(s);
            }
        }
        p.setCipherSuites(suites.toArray(String[]::new));
        e.setSSLParameters(p);
    }

    private static SSLContext context(TlsCredentials.X509 x, Predicate<String> authz) throws IOException {
        try {
            KeyStore trust = KeyStore.getInstance("PKCS12");
            trust.load(null, null);
            int i = 0;
            for (X509Certificate ca : x.trusted()) {
                trust.setCertificateEntry("ca" + i++, ca);
            }
            if (x.trusted().isEmpty()) {
                throw new IOException("no CA certificate to check peers against");
            }
            TrustManagerFactory tmf = TrustManagerFactory.getInstance("PKIX");
            tmf.init(trust);
            X509ExtendedTrustManager pkix = null;
            for (TrustManager tm : tmf.getTrustManagers()) {
                if (tm instanceof X509ExtendedTrustManager e) {
                    pkix = e;
                }
            }
            if (pkix == null) {
                throw new IOException("the JDK has no X.509 trust manager");
            }
            SSLContext ctx = SSLContext.getInstance("TLS");
            // The key as it is: a PKCS#12 key store would encrypt it and the key manager decrypt
            // it, 10,000 rounds of PBKDF2 each way, in every TLS migration's setup.
            KeyManager[] kms = x.key() == null ? new KeyManager[0]
                    : new KeyManager[] {new OwnKey(x.key(), x.chain().toArray(X509Certificate[]::new))};
            ctx.init(kms, new TrustManager[] {new PeerChecks(pkix, x.verifyPeer(), authz)}, null);
            return ctx;
        } catch (GeneralSecurityException e) {
            throw new IOException("cannot use the X.509 credentials: " + e.getMessage(), e);
        }
    }

    /**
     * This side's one key and certificate chain, offered for the key types it has and, when the
     * peer names the CAs it takes, only if the chain has one of them as an issuer (as the JDK's
     * SunX509 key manager does).
     */
    private static final class OwnKey extends X509ExtendedKeyManager {
        private static final String ALIAS = "self";
        private final PrivateKey key;
        private final X509Certificate[] chain;

        OwnKey(PrivateKey key, X509Certificate[] chain) {
            this.key = key;
            this.chain = chain.clone();
        }

        private String alias(String keyType, Principal[] issuers) {
            if (keyType == null || !keyType.equals(key.getAlgorithm())) {
                return null;
            }
            if (issuers == null || issuers.length == 0) {
                return ALIAS;
            }
            for (X509Certificate c : chain) {
                for (Principal p : issuers) {
                    if (c.getIssuerX500Principal().equals(p)) {
                        return ALIAS;
                    }
                }
            }
            return null;
        }

        private String alias(String[] keyTypes, Principal[] issuers) {
            for (String t : keyTypes == null ? new String[0] : keyTypes) {
                if (alias(t, issuers) != null) {
                    return ALIAS;
                }
            }
            return null;
        }

        @Override
        public String[] getClientAliases(String keyType, Principal[] issuers) {
            return alias(keyType, issuers) == null ? null : new String[] {ALIAS};
        }

        @Override
        public String chooseClientAlias(String[] keyType, Principal[] issuers, Socket socket) {
            return alias(keyType, issuers);
        }

        @Override
        public String chooseEngineClientAlias(String[] keyType, Principal[] issuers, SSLEngine engine) {
            return alias(keyType, issuers);
        }

        @Override
        public String[] getServerAliases(String keyType, Principal[] issuers) {
            return alias(keyType, issuers) == null ? null : new String[] {ALIAS};
        }

        @Override
        public String chooseServerAlias(String keyType, Principal[] issuers, Socket socket) {
            return alias(keyType, issuers);
        }

        @Override
        public String chooseEngineServerAlias(String keyType, Principal[] issuers, SSLEngine engine) {
            return alias(keyType, issuers);
        }

        @Override
        public X509Certificate[] getCertificateChain(String alias) {
            return ALIAS.equals(alias) ? chain.clone() : null;
        }

        @Override
        public PrivateKey getPrivateKey(String alias) {
            return ALIAS.equals(alias) ? key : null;
        }
    }

    private static void closeQuietly(MigrationConnection c) {
        try {
            c.close();
        } catch (IOException ignored) {
            // already failing with a better error
        }
    }
}
