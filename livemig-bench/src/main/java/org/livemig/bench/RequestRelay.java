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
    /** The background copy's give-way points, as the migration threads': every 256 KiB sent, every 16 pages received. */
    private static final int BULK_SEND_SLICE = 256 << 10;
    private static final int BULK_RECEIVE_PAGES_PER_YIELD = 16;
    private static final int REGION_BYTES = 16 << 20;

    /** One thread's loop; it ends when its channel is closed. */
    private interface IoLoop {
        void run() throws IOException;
    }

    private final List<Thread> threads = new ArrayList<>();
    private final List<SocketChannel> channels = new ArrayList<>();
    private final AtomicReference<Throwable> failure = new AtomicReference<>();
    private volatile boolean closing;
    private final Histogram latencies = new Histogram(3);

    private RequestRelay() {}

    /**
     * Sends {@code requests} requests {@code spacingNanos} apart, with or without the background
     * copy; returns their latencies in microseconds.
     */
    public static Histogram run(int requests, long spacingNanos, boolean background) throws IOException, InterruptedException {
        RequestRelay r = new RequestRelay();
        try (ServerSocketChannel server = ServerSocketChannel.open();
             Arena arena = Arena.ofShared()) {
            try {
                r.measure(server, arena, requests, spacingNanos, background);
            } finally {
                r.stop(); // before the arena closes under the threads
            }
        }
        if (r.failure.get() != null) {
            throw new IOException("request relay failed: " + r.failure.get(), r.failure.get());
        }
        if (r.latencies.getTotalCount() < requests) {
            throw new IOException("request relay placed " + r.latencies.getTotalCount() + " of " + requests + " pages within 30 s");
        }
        return r.latencies;
    }

    private void measure(ServerSocketChannel server, Arena arena, int requests, long spacingNanos, boolean background)
            throws IOException, InterruptedException {
        server.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
        SocketChannel[] request = connect(server);
        SocketChannel[] page = connect(server);
        if (background) {
            SocketChannel[] bulk = connect(server);
            MemorySegment bulkDst = zeroed(arena);
            start("bench/bulk-send", () -> bulkSend(bulk[0]));
            start("bench/bulk-recv", () -> bulkReceive(bulk[1], bulkDst));
        }
        MemorySegment pageDst = zeroed(arena);
        start("bench/relay-rp", () -> relay(request[1], page[0]));
        Thread placer = start("bench/relay-place", () -> place(page[1], pageDst, requests));
        Thread.sleep(100); // the background copy at full speed first
        ByteBuffer req = ByteBuffer.allocateDirect(8).order(ByteOrder.BIG_ENDIAN);
        long next = System.nanoTime();
        for (int i = 0; i < requests && failure.get() == null; i++) {
            next += spacingNanos;
            long wait;
            while ((wait = next - System.nanoTime()) > 0) {
                LockSupport.parkNanos(wait);
            }
            req.clear().putLong(0, System.nanoTime());
            writeFully(request[0], req);
        }
        placer.join(TimeUnit.SECONDS.toMillis(30));
    }

    /** Sends the background stream at full speed, yielding after every slice. */
    private static void bulkSend(SocketChannel out) throws IOException {
        ByteBuffer b = ByteBuffer.allocateDirect(BULK_CHUNK);
        while (true) {
            for (int off = 0; off < BULK_CHUNK; off += BULK_SEND_SLICE) {
                writeFully(out, b.limit(off + BULK_SEND_SLICE).position(off));
                Thread.yield();
            }
        }
    }

    /** Reads the background stream and copies it page by page into {@code dst}, yielding every few pages. */
    private static void bulkReceive(SocketChannel in, MemorySegment dst) throws IOException {
        ByteBuffer b = ByteBuffer.allocateDirect(BULK_CHUNK);
        MemorySegment buf = MemorySegment.ofBuffer(b);
        long at = 0;
        while (in.read(b.clear()) >= 0) {
            for (int p = 0; (p + 1) * PAGE <= b.position(); p++) {
                MemorySegment.copy(buf, (long) p * PAGE, dst, at, PAGE);
                at = (at + PAGE) % dst.byteSize();
                if (p % BULK_RECEIVE_PAGES_PER_YIELD == BULK_RECEIVE_PAGES_PER_YIELD - 1) {
                    Thread.yield();
                }
            }
        }
    }

    /** The source's return-path thread: each request read is answered with its time and a page. */
    private static void relay(SocketChannel requests, SocketChannel pages) throws IOException {
        ByteBuffer req = ByteBuffer.allocateDirect(8).order(ByteOrder.BIG_ENDIAN);
        ByteBuffer out = ByteBuffer.allocateDirect(8 + PAGE).order(ByteOrder.BIG_ENDIAN);
        while (readFully(requests, req.clear())) {
            out.clear().putLong(0, req.getLong(0));
            writeFully(pages, out);
        }
    }

    /** The destination's preempt thread: reads each page, copies it into {@code dst}, records its latency. */
    private void place(SocketChannel pages, MemorySegment dst, int count) throws IOException {
        ByteBuffer in = ByteBuffer.allocateDirect(8 + PAGE).order(ByteOrder.BIG_ENDIAN);
        MemorySegment buf = MemorySegment.ofBuffer(in);
        long at = 0;
        for (int i = 0; i < count && readFully(pages, in.clear()); i++) {
            MemorySegment.copy(buf, 8, dst, at, PAGE);
            at = (at + PAGE) % dst.byteSize();
            latencies.recordValue(Math.max(1, (System.nanoTime() - in.getLong(0)) / 1000));
        }
    }

    private Thread start(String name, IoLoop loop) {
        Thread t = Thread.ofPlatform().name(name).daemon(true).start(() -> {
            try {
                loop.run();
            } catch (IOException e) {
                if (!closing) {
                    failure.compareAndSet(null, e);
                }
            }
        });
        threads.add(t);
        return t;
    }

    /** Closing the channels ends every thread; each is joined. */
    private void stop() throws IOException, InterruptedException {
        closing = true;
        for (SocketChannel c : channels) {
            c.close();
        }
        for (Thread t : threads) {
            t.join(10_000);
        }
    }

    private static MemorySegment zeroed(Arena arena) {
        MemorySegment m = arena.allocate(REGION_BYTES, PAGE);
        m.fill((byte) 0);
        return m;
    }

    /** A connected pair over loopback TCP, Nagle off: {writer, reader}. */
    private SocketChannel[] connect(ServerSocketChannel server) throws IOException {
        SocketChannel out = SocketChannel.open(server.getLocalAddress());
        channels.add(out);
        SocketChannel in = server.accept();
        channels.add(in);
        out.setOption(StandardSocketOptions.TCP_NODELAY, true);
        in.setOption(StandardSocketOptions.TCP_NODELAY, true);
        return new SocketChannel[] {out, in};
    }

    private static void writeFully(SocketChannel c, ByteBuffer b) throws IOException {
        while (b.hasRemaining()) {
            c.write(b);
        }
    }

    /** Reads until {@code b} is full; false at the end of the stream. */
    private static boolean readFully(SocketChannel c, ByteBuffer b) throws IOException {
        while (b.hasRemaining()) {
            if (c.read(b) < 0) {
                return false;
            }
        }
        return true;
    }
}
