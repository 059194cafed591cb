package org.livemig.security;

import java.nio.file.Files;
import java.nio.file.Path;
import java.security.PrivateKey;
import java.security.cert.X509Certificate;
import java.util.List;
import org.livemig.transport.tls.TlsCredentials;
import org.livemig.transport.tls.TlsEndpoint;

/**
 * QEMU's {@code tls-creds-x509}: a directory with QEMU's file names, read when the object is
 * made. Always {@code ca-cert.pem}; a server {@code server-cert.pem} and {@code server-key.pem};
 * a client {@code client-cert.pem} and {@code client-key.pem} if it has them. An optional
 * {@code dh-params.pem} is accepted and not read: the JDK picks its own (RFC 7919) groups.
 * {@code verify-peer} (default on): a client checks the server's certificate and host, a server
 * requires and checks a client certificate.
 */
public record TlsCredsX509(String id, TlsEndpoint endpoint, Path dir, boolean verifyPeer, TlsCredentials.X509 credentials)
        implements SecurityObject {
    public static final String TYPE = "tls-creds-x509";
    public static final String CA_CERT = "ca-cert.pem";
    public static final String SERVER_CERT = "server-cert.pem";
    public static final String SERVER_KEY = "server-key.pem";
    public static final String CLIENT_CERT = "client-cert.pem";
    public static final String CLIENT_KEY = "client-key.pem";
    public static final String DH_PARAMS = "dh-params.pem";

    @Override
    public String type() {
        return TYPE;
    }

    /** Reads the directory's files; errors as QEMU's ("Unable to access credentials PATH: ..."). */
    static TlsCredsX509 load(String id, TlsEndpoint endpoint, Path dir, boolean verifyPeer) throws ObjectException {
        List<X509Certificate> ca = CredentialFiles.certificates(dir.resolve(CA_CERT));
        PrivateKey key = null;
        List<X509Certificate> chain = List.of();
        if (endpoint == TlsEndpoint.SERVER) {
            chain = CredentialFiles.certificates(dir.resolve(SERVER_CERT));
            key = CredentialFiles.privateKey(dir.resolve(SERVER_KEY));
        } else if (Files.exists(dir.resolve(CLIENT_CERT)) || Files.exists(dir.resolve(CLIENT_KEY))) {
            chain = CredentialFiles.certificates(dir.resolve(CLIENT_CERT));
            key = CredentialFiles.privateKey(dir.resolve(CLIENT_KEY));
        }
        try {
            return new TlsCredsX509(id, endpoint, dir, verifyPeer, new TlsCredentials.X509(endpoint, ca, key, chain, verifyPeer));
        } catch (IllegalArgumentException e) {
            throw new ObjectException(e.getMessage(), e);
        }
    }
}
