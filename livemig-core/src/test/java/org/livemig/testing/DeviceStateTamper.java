package org.livemig.testing;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * A TCP proxy for tests that forwards a migration's connections (the main one and its multifd
 * channels) and, at the first multifd device-state packet it sees going to the destination
 * (magic 0x11223344, version 1, flags 0x40), either flips one byte a given distance after the
 * packet's start or holds that channel for a while. Other bytes pass unchanged, both ways.
 */
public final class DeviceStateTamper implements AutoCloseable {
    private static final byte[] SIGNATURE = {0x11, 0x22, 0x33, 0x44, 0, 0, 0, 1, 0, 0, 0, 0x40};

    private final ServerSocket server;
    private final List<Socket> sockets = new CopyOnWriteArrayList<>();
    private final AtomicBoolean fired = new AtomicBoolean();
    private final CountDownLatch firedLatch = new CountDownLatch(1);
    private final long flipDistance;
    private final long holdMillis;

    /** Flips the byte {@code distance} bytes after the start of the first device-state packet. */
    public static DeviceStateTamper flipping(int targetPort, long distance) throws IOException {
        return new DeviceStateTamper(targetPort, distance, 0);
    }

    /** Holds the channel carrying the first device-state packet for {@code millis} before it. */
    public static DeviceStateTamper holding(int targetPort, long millis) throws IOException {
        return new DeviceStateTamper(targetPort, -1, millis);
    }

    private DeviceStateTamper(int targetPort, long flipDistance, long holdMillis) throws IOException {
        this.flipDistance = flipDistance;
        this.holdMillis = holdMillis;
        server = new ServerSocket();
        server.bind(new InetSocketAddress("127.0.0.1", 0));
        Thread.ofPlatform().name("tamper-accept").daemon().start(() -> {
            try {
                while (true) {
                    Socket in = server.accept();
                    Socket out = new Socket("127.0.0.1", targetPort);
                    in.setTcpNoDelay(true);
                    out.setTcpNoDelay(true);
                    sockets.add(in);
                    sockets.add(out);
                    pump(in.getInputStream(), out.getOutputStream(), out, true);
                    pump(out.getInputStream(), in.getOutputStream(), in, false);
                }
            } catch (IOException e) {
                // closed
            }
        });
    }

    private void pump(InputStream from, OutputStream to, Socket toSocket, boolean towardDestination) {
        Thread.ofPlatform().name("tamper-pump").daemon().start(() -> {
            byte[] buf = new byte[65536];
            byte[] tail = new byte[SIGNATURE.length - 1];
            int tailLen = 0;
            long pos = 0;
            long flipAt = -1;
            try {
                int n;
                while ((n = from.read(buf)) >= 0) {
                    int hold = -1;
                    if (towardDestination && !fired.get()) {
                        int at = find(tail, tailLen, buf, n);
                        if (at != Integer.MIN_VALUE && fired.compareAndSet(false, true)) {
                            long start = pos + at; // at may be negative: the signature began in the tail
                            if (flipDistance >= 0) {
                                flipAt = start + flipDistance;
                            } else {
                                hold = Math.max(0, at);
                            }
                            firedLatch.countDown();
                        }
                    }
                    if (flipAt >= pos && flipAt < pos + n) {
                        buf[(int) (flipAt - pos)] ^= (byte) 0xFF;
                    }
                    if (hold >= 0) {
                        to.write(buf, 0, hold);
                        to.flush();
                        Thread.sleep(holdMillis);
                        to.write(buf, hold, n - hold);
                    } else {
                        to.write(buf, 0, n);
                    }
                    // keep the last bytes, where a signature may begin
                    int keep = Math.min(tail.length, n);
                    if (keep == tail.length) {
                        System.arraycopy(buf, n - keep, tail, 0, keep);
                        tailLen = keep;
                    } else {
                        int shift = Math.max(0, tailLen + keep - tail.length);
                        System.arraycopy(tail, shift, tail, 0, tailLen - shift);
                        tailLen -= shift;
                        System.arraycopy(buf, 0, tail, tailLen, keep);
                        tailLen += keep;
                    }
                    pos += n;
                }
                toSocket.shutdownOutput();
            } catch (IOException | InterruptedException e) {
                // one side went away
            }
        });
    }

    /** Where the signature starts relative to {@code buf[0]} (negative: in the tail), or MIN_VALUE. */
    private static int find(byte[] tail, int tailLen, byte[] buf, int n) {
        int total = tailLen + n;
        outer:
        for (int i = 0; i + SIGNATURE.length <= total; i++) {
            for (int k = 0; k < SIGNATURE.length; k++) {
                int j = i + k;
                byte b = j < tailLen ? tail[j] : buf[j - tailLen];
                if (b != SIGNATURE[k]) {
                    continue outer;
                }
            }
            return i - tailLen;
        }
        return Integer.MIN_VALUE;
    }

    /** Where sources connect: {@code tcp:127.0.0.1:PORT}. */
    public String uri() {
        return "tcp:127.0.0.1:" + server.getLocalPort();
    }

    /** Waits until the first device-state packet went by (and was tampered with). */
    public boolean awaitFired(long millis) throws InterruptedException {
        return firedLatch.await(millis, TimeUnit.MILLISECONDS);
    }

    @Override
    public void close() throws IOException {
        server.close();
        for (Socket s : sockets) {
            s.close();
        }
    }
}
