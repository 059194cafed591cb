package org.livemig.bench;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;
import org.HdrHistogram.Histogram;

/**
 * The baseline of the postcopy benchmark: what a page request costs on this machine without any
 * migration code. A requesting thread writes an 8-byte request (its send time) on one loopback
 * TCP connection; a relay thread reads it and answers with an 8-byte header and a 4 KiB page on a
 * second one; a placing thread reads the page and copies it into a region. Those are the two
 * socket hops of a request with postcopy-preempt (return path, then preempt channel). Meanwhile
 * a background copy keeps two more threads busy, as the background stream keeps the source's
 * migration thread and {@code mig/dst/listen} busy, and gives way as they do (every 256 KiB sent,
 * every 64 KiB received). Latency: request written to page copied, open loop at a fixed rate.
 *
 * <p>Threads: the caller requests; {@code bench/relay-rp}, {@code bench/relay-place},
 * {@code bench/bulk-send} and {@code bench/bulk-recv}.
 */
public final class RequestRelay {
    private static final int PAGE = 4096;
    private static final int BULK_CHUNK = 1 << 20;

    private RequestRelay() {}

    /**
     * Sends {@code requests} requests {@code spacingNanos} apart, with or without the background
     * copy; returns their latencies in microseconds.
     */
    public static Histogram run(int requests, long spacingNanos, boolean background) throws IOException, InterruptedException {
        Histogram h = new Histogram(3);
        AtomicReference<Throwable> failure = new AtomicReference<>();
        java.util.concurrent.atomic.AtomicBoolean closing = new java.util.concurrent.atomic.AtomicBoolean();
        List<Thread> threads = new ArrayList<>();
        try (ServerSocketChannel server = ServerSocketChannel.open();
             Arena arena = Arena.ofShared()) {
            server.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
            SocketChannel[] request = connect(server);
            SocketChannel[] page = connect(server);
            SocketChannel[] bulk = connect(server);
            MemorySegment bulkDst = arena.allocate(16L << 20, PAGE);
            MemorySegment pageDst = arena.allocate(16L << 20, PAGE);
            bulkDst.fill((byte) 0);
            pageDst.fill((byte) 0);
            Runnable bulkSend = () -> {
                ByteBuffer b = ByteBuffer.allocateDirect(BULK_CHUNK);
                try {
                    while (true) {
                        for (int off = 0; off < BULK_CHUNK; off += 256 << 10) {
                            b.limit(off + (256 << 10)).position(off);
                            while (b.hasRemaining()) {
                                bulk[0].write(b);
                            }
                            Thread.yield();
                        }
                    }
                } catch (IOException e) {
                    // closed at the end
                }
            };
            Runnable bulkReceive = () -> {
                ByteBuffer b = ByteBuffer.allocateDirect(BULK_CHUNK);
                MemorySegment in = MemorySegment.ofBuffer(b);
                long at = 0;
                try {
                    while (bulk[1].read(b.clear()) >= 0) {
                        for (int off = 0; off + PAGE <= b.position(); off += PAGE) {
                            MemorySegment.copy(in, off, bulkDst, at, PAGE);
                            at = (at + PAGE) % bulkDst.byteSize();
                            if ((off / PAGE) % 16 == 15) {
                                Thread.yield();
                            }
                        }
                    }
                } catch (IOException e) {
                    // closed at the end
                }
            };
            Runnable relay = () -> {
                ByteBuffer req = ByteBuffer.allocateDirect(8).order(ByteOrder.BIG_ENDIAN);
                ByteBuffer out = ByteBuffer.allocateDirect(8 + PAGE).order(ByteOrder.BIG_ENDIAN);
                try {
                    while (true) {
                        req.clear();
                        while (req.hasRemaining()) {
                            if (request[1].read(req) < 0) {
                                return;
                            }
                        }
                        out.clear();
                        out.putLong(0, req.getLong(0));
                        while (out.hasRemaining()) {
                            page[0].write(out);
                        }
                    }
                } catch (IOException e) {
                    if (!closing.get()) {
                        failure.compareAndSet(null, e);
                    }
                }
            };
            Runnable place = () -> {
                ByteBuffer in = ByteBuffer.allocateDirect(8 + PAGE).order(ByteOrder.BIG_ENDIAN);
                MemorySegment seg = MemorySegment.ofBuffer(in);
                long at = 0;
                try {
                    for (int i = 0; i < requests; i++) {
                        in.clear();
                        while (in.hasRemaining()) {
                            if (page[1].read(in) < 0) {
                                return;
                            }
                        }
                        MemorySegment.copy(seg, 8, pageDst, at, PAGE);
                        at = (at + PAGE) % pageDst.byteSize();
                        h.recordValue(Math.max(1, (System.nanoTime() - in.getLong(0)) / 1000));
                    }
                } catch (IOException e) {
                    if (!closing.get()) {
                        failure.compareAndSet(null, e);
                    }
                }
            };
            if (background) {
                threads.add(Thread.ofPlatform().name("bench/bulk-send").daemon(true).start(bulkSend));
                threads.add(Thread.ofPlatform().name("bench/bulk-recv").daemon(true).start(bulkReceive));
            }
            threads.add(Thread.ofPlatform().name("bench/relay-rp").daemon(true).start(relay));
            Thread placer = Thread.ofPlatform().name("bench/relay-place").daemon(true).start(place);
            threads.add(placer);
            Thread.sleep(100); // the background copy at full speed first
            ByteBuffer req = ByteBuffer.allocateDirect(8).order(ByteOrder.BIG_ENDIAN);
            long next = System.nanoTime();
            for (int i = 0; i < requests && failure.get() == null; i++) {
                next += spacingNanos;
                long wait;
                while ((wait = next - System.nanoTime()) > 0) {
                    LockSupport.parkNanos(wait);
                }
                req.clear();
                req.putLong(0, System.nanoTime());
                while (req.hasRemaining()) {
                    request[0].write(req);
                }
            }
            placer.join(TimeUnit.SECONDS.toMillis(30));
            closing.set(true);
            for (SocketChannel[] pair : new SocketChannel[][] {request, page, bulk}) {
                for (SocketChannel c : pair) {
                    c.close();
                }
            }
            for (Thread t : threads) {
                t.join(10_000);
            }
        }
        if (failure.get() != null) {
            throw new IOException("request relay failed: " + failure.get(), failure.get());
        }
        if (h.getTotalCount() < requests) {
            throw new IOException("request relay placed " + h.getTotalCount() + " of " + requests + " pages within 30 s");
        }
        return h;
    }

    /** A connected pair over loopback TCP, Nagle off: {writer, reader}. */
    private static SocketChannel[] connect(ServerSocketChannel server) throws IOException {
        SocketChannel out = SocketChannel.open(server.getLocalAddress());
        SocketChannel in = server.accept();
        out.setOption(StandardSocketOptions.TCP_NODELAY, true);
        in.setOption(StandardSocketOptions.TCP_NODELAY, true);
        return new SocketChannel[] {out, in};
    }
}
