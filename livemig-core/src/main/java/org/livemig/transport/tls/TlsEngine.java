package org.livemig.transport.tls;

import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * One TLS session's protocol engine, fed and drained by its owner's IO: the JDK's
 * {@link javax.net.ssl.SSLEngine} for X.509, Bouncy Castle's TLS protocol for PSK. Buffers
 * passed in are in read mode for input ({@code net} to decrypt) and write mode for output.
 *
 * <p>Threads: {@link #encrypt} and {@link #produce} (the writer) may run while {@link #decrypt}
 * (the reader) runs on another thread; each side is called by one thread at a time.
 */
abstract class TlsEngine {

    /** Starts the handshake (a client queues its hello). */
    abstract void begin() throws IOException;

    /** True until the handshake has completed. */
    abstract boolean handshaking();

    /** True when protocol output (handshake messages, alerts, post-handshake replies) waits to be sent. */
    abstract boolean wantsWrite();

    /** Moves pending protocol output into {@code net}, as much as fits. */
    abstract void produce(ByteBuffer net) throws IOException;

    /**
     * Encrypts application data from {@code srcs} into {@code net} as whole records, only as
     * many as fit; returns the bytes taken from {@code srcs}.
     */
    abstract long encrypt(ByteBuffer[] srcs, int offset, int length, ByteBuffer net) throws IOException;

    /**
     * Consumes whole records from {@code net}, decrypting application data into {@code app}
     * (which has room for at least {@link #maxPlaintext()} bytes). Returns the bytes of
     * application data produced, 0 when a record is incomplete or carried no data, -1 once the
     * peer closed the session.
     */
    abstract int decrypt(ByteBuffer net, ByteBuffer app) throws IOException;

    /** True when plaintext already decrypted waits in the engine, to be had without more input. */
    abstract boolean hasBufferedPlaintext();

    /** The largest record on the wire, header and tag included. */
    abstract int maxRecord();

    /** The largest plaintext one record carries. */
    abstract int maxPlaintext();

    /** After the handshake: the protocol and cipher suite, for logs ({@code TLSv1.3 TLS_AES_128_GCM_SHA256}). */
    abstract String negotiated();

    /** What to report when the handshake failed with {@code e} (an alert, a rejected certificate). */
    abstract TlsHandshakeException explain(IOException e, String peer);
}
