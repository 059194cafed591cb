package org.livemig.transport.tls;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.GatheringByteChannel;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.WritableByteChannel;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.locks.ReentrantLock;
import org.livemig.transport.MigrationConnection;

/**
 * A migration connection with TLS over another one: {@link #in()} and {@link #out()} stay byte
 * channels (blocking, {@code out()} gathering), carrying plaintext; the plain connection below
 * carries the records.
 *
 * <p>Threads: one reader and one writer at a time, as for any connection (the engine lets its
 * read and write sides run at once). A reader that meets a post-handshake message needing an
 * answer sends it only if the writer's lock is free, never waiting for it (a writer blocked on
 * the peer may hold it while the peer waits for this reader); otherwise the writer sends it. {@link #shutdown()} from any thread shuts the plain
 * connection down, which wakes both; later calls fail. Buffers are owned by their side's lock.
 */
public final class TlsConnection implements MigrationConnection {
    /** Ciphertext per socket write: several records in one system call. */
    private static final int NET_OUT_BYTES = 256 << 10;
    private static final int NET_IN_BYTES = 256 << 10;
    private static final ScheduledThreadPoolExecutor TIMER = timer();

    private final MigrationConnection plain;
    private final TlsEngine engine;
    private final String description;
    private final ReentrantLock readLock = new ReentrantLock();
    private final ReentrantLock writeLock = new ReentrantLock();
    /** Records read and not yet decrypted; read mode. Guarded by readLock. */
    private final ByteBuffer netIn = ByteBuffer.allocate(NET_IN_BYTES).flip();
    /** Plaintext decrypted and not yet handed out; read mode. Guarded by readLock. */
    private final ByteBuffer appIn;
    /** Guarded by writeLock. */
    private final ByteBuffer netOut = ByteBuffer.allocate(NET_OUT_BYTES);
    private final AtomicBoolean shutdown = new AtomicBoolean();
    private final AtomicBoolean closed = new AtomicBoolean();
    private final AtomicBoolean timedOut = new AtomicBoolean();
    private final Input input = new Input();
    private final Output output = new Output();
    private volatile boolean peerClosed;
    /** What a reader learnt when its read failed: the peer's named refusal, or null for anything else. */
    private final java.util.concurrent.CompletableFuture<TlsHandshakeException> readerVerdict = new java.util.concurrent.CompletableFuture<>();
    /** Whether any application data came in: a peer that closes before any may have refused us. */
    private volatile boolean receivedData;

    private TlsConnection(MigrationConnection plain, TlsEngine engine) {
        this.plain = plain;
        this.engine = engine;
        this.description = plain.description() + " (TLS)";
        this.appIn = ByteBuffer.allocate(Math.max(engine.maxPlaintext(), 1 << 14) + 1024).flip();
    }

    /**
     * Runs the handshake over {@code plain} within {@code timeoutMillis} and returns the secured
     * connection. Called without the BQL; blocks on IO. On failure closes {@code plain} and
     * throws a {@link TlsHandshakeException} naming the cause.
     */
    static TlsConnection handshake(MigrationConnection plain, TlsEngine engine, long timeoutMillis) throws IOException {
        TlsConnection c = new TlsConnection(plain, engine);
        ScheduledFuture<?> timer = TIMER.schedule(() -> {
            c.timedOut.set(true);
            plain.shutdown();
        }, timeoutMillis, TimeUnit.MILLISECONDS);
        try {
            c.runHandshake();
            return c;
        } catch (IOException | RuntimeException e) {
            closeQuietly(plain);
            if (c.timedOut.get()) {
                throw new TlsHandshakeException(TlsHandshakeException.Reason.TIMEOUT, "TLS handshake with "
                        + plain.description() + " timed out after " + timeoutMillis + " ms", e);
            }
            if (e instanceof TlsHandshakeException t) {
                throw t;
            }
            IOException io = e instanceof IOException x ? x : new IOException(e.getMessage(), e);
            throw engine.explain(io, plain.description());
        } finally {
            timer.cancel(false);
        }
    }

    private void runHandshake() throws IOException {
        readLock.lock();
        writeLock.lock();
        try {
            try {
                engine.begin();
                while (engine.handshaking()) {
                    if (engine.wantsWrite()) {
                        flushProtocolOutput();
                        continue;
                    }
                    int before = netIn.remaining();
                    if (before > 0) {
                        int n;
                        appIn.compact(); // application data may follow the peer's last handshake message
                        try {
                            n = decryptInto(appIn);
                        } finally {
                            appIn.flip();
                        }
                        if (n < 0) {
                            throw new TlsHandshakeException(TlsHandshakeException.Reason.PROTOCOL,
                                    "TLS handshake failed: " + plain.description() + " closed the session", null);
                        }
                        if (netIn.remaining() != before || engine.wantsWrite() || !engine.handshaking()) {
                            continue;
                        }
                    }
                    if (readNet() < 0) {
                        throw new TlsHandshakeException(TlsHandshakeException.Reason.PROTOCOL, "TLS handshake failed: "
                                + plain.description() + " closed the connection during the handshake", null);
                    }
                }
                flushProtocolOutput();
            } catch (TlsHandshakeException e) {
                throw e;
            } catch (IOException e) {
                // The engine may have an alert for the peer: send it, so that it learns why.
                try {
                    flushProtocolOutput();
                } catch (IOException | RuntimeException ignored) {
                    // the peer is gone; our own error says enough
                }
                throw e;
            }
        } finally {
            writeLock.unlock();
            readLock.unlock();
        }
    }

    /** The negotiated protocol and cipher suite, for logs. */
    public String negotiated() {
        return engine.negotiated();
    }

    @Override
    public ReadableByteChannel in() {
        return input;
    }

    @Override
    public WritableByteChannel out() {
        return output;
    }

    @Override
    public void shutdown() {
        if (shutdown.compareAndSet(false, true)) {
            plain.shutdown();
        }
    }

    @Override
    public String description() {
        return description;
    }

    @Override
    public String toString() {
        return description;
    }

    @Override
    public void close() throws IOException {
        if (closed.compareAndSet(false, true)) {
            plain.close();
        }
    }

    private IOException shutdownError(Throwable cause) {
        return new IOException("migration connection " + description + " was shut down", cause);
    }

    private IOException failure(IOException e) {
        if (shutdown.get()) {
            return shutdownError(e);
        }
        return e;
    }

    /** Reads more records from the plain connection. Read lock held. */
    private int readNet() throws IOException {
        netIn.compact();
        try {
            int n = plain.in().read(netIn);
            if (n < 0) {
                peerClosed = true;
            }
            return n;
        } finally {
            netIn.flip();
        }
    }

    /**
     * Decrypts from netIn into {@code app} (write mode). Read lock held. A post-handshake reply
     * (Bouncy Castle's answer to a TLS 1.3 key update request, queued as output) goes out now
     * only if the writer's lock is free: a writer may hold it blocked on a peer that waits for
     * this reader, so a busy writer sends the reply instead, ahead of its next record (RFC 8446
     * asks no more) or after its current write ({@link #flushPostHandshakeReply}). The JDK's
     * engine reports its pending reply as handshaking (NEED_WRAP), so its replies always go out
     * with the writer's next wrap.
     */
    private int decryptInto(ByteBuffer app) throws IOException {
        int n = engine.decrypt(netIn, app);
        if (engine.wantsWrite() && !engine.handshaking() && writeLock.tryLock()) {
            try {
                flushProtocolOutput();
            } finally {
                writeLock.unlock();
            }
        }
        return n;
    }

    /**
     * After a write, with the writer's lock released: sends a post-handshake reply a reader left
     * because the lock was held (its tryLock failed while this writer held it, so the reply is
     * visible here). Called without the BQL; blocks on IO.
     */
    private void flushPostHandshakeReply() throws IOException {
        if (engine.wantsWrite() && !engine.handshaking() && writeLock.tryLock()) {
            try {
                flushProtocolOutput();
            } finally {
                writeLock.unlock();
            }
        }
    }

    /** Sends whatever protocol output the engine has. Write lock held. */
    private void flushProtocolOutput() throws IOException {
        while (engine.wantsWrite()) {
            netOut.clear();
            engine.produce(netOut);
            netOut.flip();
            if (!netOut.hasRemaining()) {
                return;
            }
            writeNet();
        }
    }

    private void writeNet() throws IOException {
        WritableByteChannel raw = plain.out();
        while (netOut.hasRemaining()) {
            raw.write(netOut);
        }
    }

    private final class Input implements ReadableByteChannel {
        @Override
        public int read(ByteBuffer dst) throws IOException {
            if (shutdown.get()) {
                throw shutdownError(null);
            }
            if (!dst.hasRemaining()) {
                return 0;
            }
            readLock.lock();
            try {
                while (true) {
                    if (appIn.hasRemaining()) {
                        int n = Math.min(appIn.remaining(), dst.remaining());
                        ByteBuffer slice = appIn.slice(appIn.position(), n);
                        dst.put(slice);
                        appIn.position(appIn.position() + n);
                        receivedData = true;
                        return n;
                    }
                    if (netIn.hasRemaining() || engine.hasBufferedPlaintext()) {
                        int n;
                        int before = netIn.remaining();
                        if (dst.remaining() >= engine.maxPlaintext()) {
                            n = decryptInto(dst); // straight into the caller's buffer
                            if (n != 0) {
                                receivedData |= n > 0;
                                return n;
                            }
                        } else {
                            appIn.clear();
                            try {
                                n = decryptInto(appIn);
                            } finally {
                                appIn.flip();
                            }
                            if (n < 0) {
                                return -1;
                            }
                            if (n > 0) {
                                continue;
                            }
                        }
                        if (netIn.remaining() != before) {
                            continue; // a record without data (a key update): more may be buffered
                        }
                    }
                    if (peerClosed || readNet() < 0) {
                        if (shutdown.get()) {
                            throw shutdownError(null);
                        }
                        if (!receivedData) {
                            // QEMU checks the server's certificate after its handshake and just
                            // closes when it fails: say so rather than report an empty stream.
                            throw new IOException(plain.description() + " closed the TLS session before sending any data:"
                                    + " it may have rejected this side's certificate (untrusted, or not for the host it connected to)");
                        }
                        return -1;
                    }
                }
            } catch (IOException e) {
                TlsHandshakeException named = shutdown.get() ? null : engine.explain(e, plain.description());
                readerVerdict.complete(named != null && named.reason() != TlsHandshakeException.Reason.PROTOCOL ? named : null);
                throw failure(e);
            } finally {
                readLock.unlock();
            }
        }

        @Override
        public boolean isOpen() {
            return !closed.get();
        }

        @Override
        public void close() throws IOException {
            TlsConnection.this.close();
        }
    }

    private final class Output implements GatheringByteChannel {
        private final ByteBuffer[] one = new ByteBuffer[1];

        @Override
        public int write(ByteBuffer src) throws IOException {
            writeLock.lock();
            try {
                one[0] = src;
                return (int) write(one, 0, 1);
            } finally {
                one[0] = null;
                writeLock.unlock();
            }
        }

        @Override
        public long write(ByteBuffer[] srcs) throws IOException {
            return write(srcs, 0, srcs.length);
        }

        @Override
        public long write(ByteBuffer[] srcs, int offset, int length) throws IOException {
            if (closed.get()) {
                throw new ClosedChannelException();
            }
            if (shutdown.get()) {
                throw shutdownError(null);
            }
            long total = 0;
            writeLock.lock();
            try {
                while (true) {
                    netOut.clear();
                    long n = engine.encrypt(srcs, offset, length, netOut);
                    total += n;
                    netOut.flip();
                    if (!netOut.hasRemaining()) {
                        break;
                    }
                    writeNet();
                    if (n == 0 && !anyRemaining(srcs, offset, length)) {
                        break;
                    }
                }
            } catch (IOException e) {
                throw failure(explainWriteFailure(e));
            } finally {
                writeLock.unlock();
            }
            try {
                flushPostHandshakeReply();
            } catch (IOException e) {
                throw failure(explainWriteFailure(e));
            }
            return total;
        }

        @Override
        public boolean isOpen() {
            return !closed.get();
        }

        @Override
        public void close() throws IOException {
            TlsConnection.this.close();
        }
    }

    private static boolean anyRemaining(ByteBuffer[] srcs, int offset, int length) {
        for (int i = offset; i < offset + length; i++) {
            if (srcs[i].hasRemaining()) {
                return true;
            }
        }
        return false;
    }

    /**
     * A write failed, most likely because the peer closed the connection: if a reader already
     * met the peer's alert (a TLS 1.3 server refuses a client after the client's handshake is
     * over), or one waits in the records already read, name it. Never reads from the socket and
     * never takes application data from the reader (it stays in {@code appIn}): another thread
     * may be reading this stream (the destination's return path fails while its main stream
     * still holds valid data).
     */
    private IOException explainWriteFailure(IOException e) {
        if (readerVerdict.isDone() && readerVerdict.getNow(null) != null) {
            TlsHandshakeException named = readerVerdict.getNow(null);
            named.addSuppressed(e);
            return named;
        }
        if (shutdown.get() || !readLock.tryLock()) {
            return e;
        }
        try {
            TlsHandshakeException named = alertInBufferedRecords(false);
            if (named != null) {
                named.addSuppressed(e);
                return named;
            }
        } finally {
            readLock.unlock();
        }
        return e;
    }

    /**
     * Looks for the peer's alert in the records ahead of the reader, reading more from the socket
     * only if {@code mayRead}; stops at the first application data, which stays in {@code appIn}
     * for the reader. Read lock held.
     */
    private TlsHandshakeException alertInBufferedRecords(boolean mayRead) {
        try {
            while (!appIn.hasRemaining()) {
                if (netIn.hasRemaining() || engine.hasBufferedPlaintext()) {
                    int before = netIn.remaining();
                    appIn.compact();
                    int n;
                    try {
                        n = engine.decrypt(netIn, appIn);
                    } finally {
                        appIn.flip();
                    }
                    if (n != 0) {
                        return null; // data for the reader, or the peer's close_notify
                    }
                    if (netIn.remaining() != before) {
                        continue;
                    }
                }
                if (!mayRead || peerClosed || readNet() < 0) {
                    return null;
                }
            }
            return null;
        } catch (IOException alert) {
            TlsHandshakeException named = engine.explain(alert, plain.description());
            return named.reason() == TlsHandshakeException.Reason.PROTOCOL ? null : named;
        } catch (RuntimeException ignored) {
            return null;
        }
    }

    /**
     * When a later connection of the same migration failed for no reason it could name (reset,
     * closed): what the peer told this one, if anything, within {@code millis} (a TLS 1.3 server
     * refuses a client after the client's handshake is over, with an alert the client reads only
     * later). Reads on a helper thread; only for a migration that is failing anyway, whose
     * clean-up closes this connection and ends the read.
     */
    TlsHandshakeException peerVerdict(long millis) {
        if (readerVerdict.isDone()) {
            return readerVerdict.getNow(null);
        }
        if (shutdown.get() || closed.get()) {
            return null;
        }
        java.util.concurrent.CompletableFuture<TlsHandshakeException> verdict = new java.util.concurrent.CompletableFuture<>();
        Thread.ofPlatform().name("tls-verdict").daemon(true).start(() -> {
            if (!readLock.tryLock()) {
                // a reader (the return path) is on it: its failure, if it comes, says why
                readerVerdict.whenComplete((v, e) -> verdict.complete(v));
                return;
            }
            try {
                verdict.complete(alertInBufferedRecords(true));
            } finally {
                readLock.unlock();
            }
        });
        try {
            return verdict.get(millis, TimeUnit.MILLISECONDS);
        } catch (java.util.concurrent.TimeoutException | java.util.concurrent.ExecutionException e) {
            return null;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return null;
        }
    }

    private static void closeQuietly(MigrationConnection c) {
        try {
            c.close();
        } catch (IOException ignored) {
            // already failing with a better error
        }
    }

    private static ScheduledThreadPoolExecutor timer() {
        ScheduledThreadPoolExecutor t = new ScheduledThreadPoolExecutor(1,
                r -> Thread.ofPlatform().name("tls-handshake-timer").daemon(true).unstarted(r));
        t.setRemoveOnCancelPolicy(true);
        return t;
    }
}
