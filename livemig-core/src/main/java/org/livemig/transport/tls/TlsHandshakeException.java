package org.livemig.transport.tls;

import java.io.IOException;

/**
 * A TLS session that could not be set up, or was refused by the peer, with the cause named
 * ({@link #reason()}) so that both sides of a migration report what went wrong. Messages follow
 * QEMU's where QEMU has one ("Certificate does not match the hostname ...").
 */
public final class TlsHandshakeException extends IOException {
    private static final long serialVersionUID = 1L;

    /** Why a handshake failed. */
    public enum Reason {
        /** The peer's certificate does not chain to a trusted CA. */
        UNTRUSTED_CERTIFICATE,
        /** The server's certificate is not for the host connected to (or tls-hostname). */
        HOST_MISMATCH,
        /** There is no host to check the server's certificate against (unix: without tls-hostname). */
        NO_HOSTNAME,
        /** The server refused the client: its name failed tls-authz, or its certificate failed checks. */
        REJECTED_CLIENT,
        /** The server requires a client certificate and none came. */
        NO_CLIENT_CERTIFICATE,
        /** The pre-shared keys (or usernames) of the two sides differ. */
        PSK_MISMATCH,
        /** The handshake did not complete in time. */
        TIMEOUT,
        /** The peer closed the connection or spoke something other than TLS. */
        PROTOCOL,
        /** The credentials cannot be used here (wrong endpoint, no such object). */
        CONFIGURATION
    }

    private final Reason reason;

    public TlsHandshakeException(Reason reason, String message, Throwable cause) {
        super(message, cause);
        this.reason = reason;
    }

    public Reason reason() {
        return reason;
    }
}
