package org.livemig.transport.tls;

import java.security.cert.CertificateException;

/** A peer certificate check of livemig's own failed, with the reason and QEMU's message. */
final class PeerCheckFailed extends CertificateException {
    private static final long serialVersionUID = 1L;
    final TlsHandshakeException.Reason reason;

    PeerCheckFailed(TlsHandshakeException.Reason reason, String message, Throwable cause) {
        super(message, cause);
        this.reason = reason;
    }
}
