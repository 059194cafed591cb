package org.livemig.security;

import java.nio.file.Path;
import java.util.Map;
import org.livemig.transport.tls.TlsCredentials;
import org.livemig.transport.tls.TlsEndpoint;

/**
 * QEMU's {@code tls-creds-psk}: a directory with {@code keys.psk} ({@code username:hexkey}
 * lines). A client uses the key of {@code username} (default {@code qemu}, as QEMU); a server
 * takes any username in the file.
 */
public record TlsCredsPsk(String id, TlsEndpoint endpoint, Path dir, String username, TlsCredentials.Psk credentials)
        implements SecurityObject {
    public static final String TYPE = "tls-creds-psk";
    public static final String KEYS_FILE = "keys.psk";
    public static final String DEFAULT_USERNAME = "qemu";

    @Override
    public String type() {
        return TYPE;
    }

    static TlsCredsPsk load(String id, TlsEndpoint endpoint, Path dir, String username) throws ObjectException {
        Path file = dir.resolve(KEYS_FILE);
        Map<String, byte[]> keys = CredentialFiles.pskKeys(file);
        String user = username == null ? DEFAULT_USERNAME : username;
        if (endpoint == TlsEndpoint.CLIENT && !keys.containsKey(user)) {
            throw new ObjectException("Username '" + user + "' not found in " + file);
        }
        return new TlsCredsPsk(id, endpoint, dir, user, new TlsCredentials.Psk(endpoint, user, keys));
    }
}
