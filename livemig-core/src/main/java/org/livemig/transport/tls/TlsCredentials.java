package org.livemig.transport.tls;

import java.security.PrivateKey;
import java.security.cert.X509Certificate;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * The material of one side's TLS credentials, already loaded: X.509 certificates and a key, or
 * pre-shared keys. Immutable; made by the {@code security} package's credential objects.
 */
public sealed interface TlsCredentials permits TlsCredentials.X509, TlsCredentials.Psk {

    TlsEndpoint endpoint();

    /**
     * X.509 credentials.
     *
     * @param trusted    the CA certificates the peer's certificate must chain to
     * @param key        this side's private key, or null (a client without a certificate)
     * @param chain      this side's certificate chain, leaf first; empty with no key
     * @param verifyPeer a client checks the server's certificate and host; a server requires,
     *                   checks and authorizes a client certificate
     */
    record X509(TlsEndpoint endpoint, List<X509Certificate> trusted, PrivateKey key, List<X509Certificate> chain,
                boolean verifyPeer) implements TlsCredentials {
        public X509 {
            Objects.requireNonNull(endpoint, "endpoint");
            trusted = List.copyOf(trusted);
            chain = chain == null ? List.of() : List.copyOf(chain);
            if (endpoint == TlsEndpoint.SERVER && (key == null || chain.isEmpty())) {
                throw new IllegalArgumentException("TLS server credentials need a certificate and its key");
            }
            if ((key == null) != chain.isEmpty()) {
                throw new IllegalArgumentException("a certificate needs its key and a key its certificate");
            }
        }
    }

    /**
     * Pre-shared keys. A client uses the key of {@code username}; a server looks up the
     * client's username among {@code keys}.
     */
    record Psk(TlsEndpoint endpoint, String username, Map<String, byte[]> keys) implements TlsCredentials {
        public Psk {
            Objects.requireNonNull(endpoint, "endpoint");
            Objects.requireNonNull(username, "username");
            keys = Map.copyOf(keys);
            if (endpoint == TlsEndpoint.CLIENT && !keys.containsKey(username)) {
                throw new IllegalArgumentException("no key for username '" + username + "'");
            }
        }

        @Override
        public String toString() {
            return "Psk[" + endpoint + ", username=" + username + ", " + keys.size() + " key(s)]";
        }

    }
}
