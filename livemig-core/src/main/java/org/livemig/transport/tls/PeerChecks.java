package org.livemig.transport.tls;

import java.net.Socket;
import java.security.cert.CertificateExpiredException;
import java.security.cert.CertificateException;
import java.security.cert.CertificateNotYetValidException;
import java.security.cert.X509Certificate;
import java.util.function.Predicate;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.X509ExtendedTrustManager;
import javax.security.auth.x500.X500Principal;

/**
 * The checks QEMU makes on a peer's certificate, inside the handshake so that a refusal goes to
 * the peer as an alert: the chain must lead to a trusted CA; a client then checks the server's
 * certificate against the host it connected to (the engine's peer host: the address's host or
 * tls-hostname, none over a unix socket); a server checks the client's distinguished name
 * against tls-authz. With {@code verify-peer=off} a client accepts any server.
 */
final class PeerChecks extends X509ExtendedTrustManager {
    private final X509ExtendedTrustManager pkix;
    private final boolean verifyPeer;
    /** tls-authz on a server: allowed distinguished names (RFC 2253), or null for everyone. */
    private final Predicate<String> authz;

    PeerChecks(X509ExtendedTrustManager pkix, boolean verifyPeer, Predicate<String> authz) {
        this.pkix = pkix;
        this.verifyPeer = verifyPeer;
        this.authz = authz;
    }

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType, SSLEngine engine) throws CertificateException {
        if (!verifyPeer) {
            return;
        }
        trusted(chain, () -> pkix.checkServerTrusted(chain, authType, engine));
        String host = engine.getPeerHost();
        if (host == null || host.isEmpty()) {
            throw new PeerCheckFailed(TlsHandshakeException.Reason.NO_HOSTNAME, "No hostname for certificate validation", null);
        }
        if (!HostnameCheck.matches(chain[0], host)) {
            throw new PeerCheckFailed(TlsHandshakeException.Reason.HOST_MISMATCH,
                    "Certificate does not match the hostname " + host, null);
        }
    }

    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType, SSLEngine engine) throws CertificateException {
        trusted(chain, () -> pkix.checkClientTrusted(chain, authType, engine));
        String dn = chain[0].getSubjectX500Principal().getName(X500Principal.RFC2253);
        if (authz != null && !authz.test(dn)) {
            throw new PeerCheckFailed(TlsHandshakeException.Reason.REJECTED_CLIENT,
                    "TLS x509 authz check for " + dn + " is denied", null);
        }
    }

    private interface Check {
        void run() throws CertificateException;
    }

    private static void trusted(X509Certificate[] chain, Check pkixCheck) throws CertificateException {
        try {
            pkixCheck.run();
        } catch (CertificateException e) {
            Throwable c = e;
            while (c != null) {
                if (c instanceof CertificateExpiredException) {
                    throw new PeerCheckFailed(TlsHandshakeException.Reason.UNTRUSTED_CERTIFICATE, "The certificate has expired", e);
                }
                if (c instanceof CertificateNotYetValidException) {
                    throw new PeerCheckFailed(TlsHandshakeException.Reason.UNTRUSTED_CERTIFICATE, "The certificate is not yet activated", e);
                }
                c = c.getCause();
            }
            throw new PeerCheckFailed(TlsHandshakeException.Reason.UNTRUSTED_CERTIFICATE,
                    "The certificate hasn't got a known issuer (" + chain[0].getSubjectX500Principal().getName(X500Principal.RFC2253)
                            + ", issued by " + chain[0].getIssuerX500Principal().getName(X500Principal.RFC2253) + ")", e);
        }
    }

    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType, Socket socket) throws CertificateException {
        throw new CertificateException("livemig's TLS runs over SSLEngine only");
    }

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType, Socket socket) throws CertificateException {
        throw new CertificateException("livemig's TLS runs over SSLEngine only");
    }

    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType) throws CertificateException {
        throw new CertificateException("livemig's TLS runs over SSLEngine only");
    }

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType) throws CertificateException {
        throw new CertificateException("livemig's TLS runs over SSLEngine only");
    }

    /**
     * None named: a server then sends no certificate_authorities list, and a GnuTLS client (QEMU)
     * sends its certificate (with the JDK's list it sent none). The chain is checked all the same.
     */
    @Override
    public X509Certificate[] getAcceptedIssuers() {
        return new X509Certificate[0];
    }
}
