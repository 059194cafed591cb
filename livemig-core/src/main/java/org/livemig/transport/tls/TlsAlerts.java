package org.livemig.transport.tls;

import java.io.IOException;
import java.util.Locale;

/** What a fatal alert from the peer means for a migration, named for the operator. */
final class TlsAlerts {
    private TlsAlerts() {}

    /** The alert's name in a JDK or Bouncy Castle message ("Received fatal alert: bad_certificate"), or null. */
    static String received(String message) {
        String m = message.toLowerCase(Locale.ROOT);
        int i = m.indexOf("received fatal alert: ");
        if (i >= 0) {
            String rest = m.substring(i + "received fatal alert: ".length()).trim();
            int end = 0;
            while (end < rest.length() && (Character.isLetterOrDigit(rest.charAt(end)) || rest.charAt(end) == '_')) {
                end++;
            }
            return rest.substring(0, end);
        }
        return null;
    }

    /**
     * The failure a fatal {@code alert} from the peer stands for.
     *
     * @param client whether this side is the client
     * @param psk    whether the session uses pre-shared keys
     */
    static TlsHandshakeException fromPeer(String alert, boolean client, boolean psk, String peer, IOException cause) {
        String tail = " (TLS alert " + alert + " from " + peer + ")";
        if (psk && (alert.equals("decrypt_error") || alert.equals("illegal_parameter") || alert.equals("unknown_psk_identity")
                || alert.equals("handshake_failure") || alert.equals("bad_record_mac"))) {
            return new TlsHandshakeException(TlsHandshakeException.Reason.PSK_MISMATCH,
                    "TLS handshake failed: PSK mismatch: the peer refused this side's pre-shared key or username" + tail, cause);
        }
        if (client && alert.equals("certificate_required")) {
            return new TlsHandshakeException(TlsHandshakeException.Reason.NO_CLIENT_CERTIFICATE,
                    "TLS handshake failed: the server requires a client certificate and this side has none" + tail, cause);
        }
        if (alert.equals("bad_certificate") || alert.equals("certificate_unknown") || alert.equals("access_denied")
                || alert.equals("unsupported_certificate") || alert.equals("unknown_ca") || alert.equals("certificate_expired")) {
            return client
                    ? new TlsHandshakeException(TlsHandshakeException.Reason.REJECTED_CLIENT,
                            "TLS handshake failed: the server rejected this client's certificate (untrusted, or denied by tls-authz)" + tail, cause)
                    : new TlsHandshakeException(TlsHandshakeException.Reason.UNTRUSTED_CERTIFICATE,
                            "TLS handshake failed: the client rejected this server's certificate (untrusted, or not for the host it connected to)" + tail, cause);
        }
        return new TlsHandshakeException(TlsHandshakeException.Reason.PROTOCOL, "TLS handshake failed" + tail, cause);
    }
}
