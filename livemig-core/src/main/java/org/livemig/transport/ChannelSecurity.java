package org.livemig.transport;

import java.io.IOException;

/**
 * What a migration does to each connection it makes or accepts: nothing ({@link #PLAIN}), or a
 * TLS handshake ({@code transport.tls.TlsChannelSecurity}, made from the {@code tls-creds},
 * {@code tls-hostname} and {@code tls-authz} parameters when a migration starts). The one seam
 * through which every migration channel passes: the main stream with its return path, the
 * postcopy preempt channel, each multifd channel and the connections of a postcopy recovery.
 *
 * <p>Both methods are called without the BQL and block on IO (the handshake), bounded by the
 * implementation's handshake timeout. On failure they close the plain connection and throw an
 * {@link IOException} naming the cause.
 */
public interface ChannelSecurity {

    /** No security: connections are used as they are. */
    ChannelSecurity PLAIN = new ChannelSecurity() {
        @Override
        public MigrationConnection client(MigrationConnection plain, MigrationAddress to) {
            return plain;
        }

        @Override
        public MigrationConnection server(MigrationConnection accepted) {
            return accepted;
        }

        @Override
        public boolean isPlain() {
            return true;
        }

        @Override
        public String toString() {
            return "plain";
        }
    };

    /**
     * The source's side: secures a connection it made to {@code to} (whose host, for
     * {@code tcp:}, is the name the peer's certificate must match unless overridden).
     */
    MigrationConnection client(MigrationConnection plain, MigrationAddress to) throws IOException;

    /** The destination's side: secures a connection it accepted. */
    MigrationConnection server(MigrationConnection accepted) throws IOException;

    /** True for {@link #PLAIN}. */
    boolean isPlain();

    /**
     * The source's migration failed with {@code failure}: what the peer said about it, if this
     * security knows more (a TLS 1.3 server refuses a client's certificate after the client's
     * handshake is over, so the client learns why only from an alert read later). Returns
     * {@code failure} itself when there is nothing to add. Called without the BQL; may wait up
     * to a few seconds for the peer's verdict on a connection that is failing anyway.
     */
    default Throwable explain(Throwable failure) {
        return failure;
    }
}
