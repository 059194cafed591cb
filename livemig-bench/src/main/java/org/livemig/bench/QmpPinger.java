package org.livemig.bench;

import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;

/**
 * A bare QMP client for timing round trips: one blocking unix socket, no reader thread, no JSON
 * tree; a request is written and lines are read until its reply. It measures livemig and QEMU
 * the same way, and adds no thread hand-off of its own to what it measures.
 *
 * <p>A server that does not answer within {@value #TIMEOUT_SECONDS} s has its connection closed
 * by a watchdog, so that the blocked read fails instead of hanging the benchmark.
 *
 * <p>Not thread-safe: one thread owns it.
 */
final class QmpPinger implements AutoCloseable {
    static final int TIMEOUT_SECONDS = 30;
    private static final java.util.concurrent.ScheduledExecutorService WATCHDOG =
            java.util.concurrent.Executors.newSingleThreadScheduledExecutor(r -> Thread.ofPlatform().daemon()
                    .name("qmp-pinger-watchdog").unstarted(r));
    private static final byte[] QUERY_STATUS = "{\"execute\": \"query-status\"}\n".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] CAPABILITIES = "{\"execute\": \"qmp_capabilities\"}\n".getBytes(StandardCharsets.US_ASCII);

    private final SocketChannel channel;
    private final ByteBuffer in = ByteBuffer.allocate(64 * 1024);
    private final byte[] line = new byte[64 * 1024];
    /** When the read now blocked started (System.nanoTime), or 0 when none is. */
    private volatile long waitingSince;
    private final java.util.concurrent.ScheduledFuture<?> watchdog;

    private QmpPinger(SocketChannel channel) {
        this.channel = channel;
        this.watchdog = WATCHDOG.scheduleWithFixedDelay(this::check, 1, 1, java.util.concurrent.TimeUnit.SECONDS);
    }

    private void check() {
        long since = waitingSince;
        if (since != 0 && System.nanoTime() - since > java.util.concurrent.TimeUnit.SECONDS.toNanos(TIMEOUT_SECONDS)) {
            try {
                channel.close(); // the blocked read throws AsynchronousCloseException
            } catch (IOException e) {
                // closing anyway
            }
        }
    }

    /**
     * Connects to the unix socket {@code socket}, retrying a refused connection until
     * {@code timeout} (a QEMU binds its socket a moment before it listens), reads the greeting
     * and negotiates.
     *
     * @throws IOException when no greeting or no reply to qmp_capabilities came
     */
    static QmpPinger connect(Path socket, Duration timeout) throws IOException, InterruptedException {
        QmpPinger p = new QmpPinger(connectRetrying(socket, timeout));
        try {
            String greeting = p.readLine();
            if (!greeting.contains("\"QMP\"")) {
                throw new IOException("not a QMP greeting from " + socket + ": " + greeting);
            }
            p.write(CAPABILITIES);
            p.awaitReturn("qmp_capabilities");
            return p;
        } catch (IOException | RuntimeException e) {
            p.close();
            throw e;
        }
    }

    /**
     * Connects to {@code socket}, retrying every 2 ms while the file is missing or the
     * connection refused, until {@code timeout}.
     */
    static SocketChannel connectRetrying(Path socket, Duration timeout) throws IOException, InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX);
            try {
                ch.connect(UnixDomainSocketAddress.of(socket));
                return ch;
            } catch (IOException e) {
                ch.close();
                if (System.nanoTime() > deadline) {
                    throw new IOException("cannot connect to QMP at " + socket + " within " + timeout.toMillis() + " ms: "
                            + e.getMessage(), e);
                }
                Thread.sleep(2); // nothing to wait on: the socket is someone else's
            }
        }
    }

    /**
     * Reads from a just-connected socket until the QMP greeting's line end; the time this returns
     * is when the server's monitor spoke first.
     */
    static String readGreeting(SocketChannel ch) throws IOException {
        QmpPinger p = new QmpPinger(ch);
        try {
            return p.readLine();
        } finally {
            p.watchdog.cancel(false);
        }
    }

    /** One {@code query-status} round trip in nanoseconds. */
    long queryStatus() throws IOException {
        long t0 = System.nanoTime();
        write(QUERY_STATUS);
        awaitReturn("query-status");
        return System.nanoTime() - t0;
    }

    private void write(byte[] request) throws IOException {
        ByteBuffer b = ByteBuffer.wrap(request);
        while (b.hasRemaining()) {
            channel.write(b);
        }
    }

    /** Reads lines until a reply, skipping events; fails on an error reply. */
    private void awaitReturn(String what) throws IOException {
        while (true) {
            String l = readLine();
            if (l.startsWith("{\"return\"")) {
                return;
            }
            if (l.startsWith("{\"error\"")) {
                throw new IOException(what + " failed: " + l);
            }
            // an event: skipped
        }
    }

    /** One line without its end (the server's CR LF or LF). */
    private String readLine() throws IOException {
        waitingSince = System.nanoTime() | 1;
        try {
            return readLineBlocking();
        } finally {
            waitingSince = 0;
        }
    }

    private String readLineBlocking() throws IOException {
        int n = 0;
        while (true) {
            in.flip();
            while (in.hasRemaining()) {
                byte b = in.get();
                if (b == '\n') {
                    in.compact();
                    int end = n > 0 && line[n - 1] == '\r' ? n - 1 : n;
                    return new String(line, 0, end, StandardCharsets.UTF_8);
                }
                if (n == line.length) {
                    throw new IOException("QMP line longer than " + line.length + " bytes");
                }
                line[n++] = b;
            }
            in.clear();
            try {
                if (channel.read(in) < 0) {
                    throw new IOException("QMP connection closed");
                }
            } catch (java.nio.channels.AsynchronousCloseException e) {
                throw new IOException("no QMP reply within " + TIMEOUT_SECONDS + " s", e);
            }
        }
    }

    @Override
    public void close() throws IOException {
        watchdog.cancel(false);
        channel.close();
    }
}
