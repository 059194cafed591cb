package org.livemig.bench;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.lang.foreign.MemorySegment;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.StandardProtocolFamily;
import java.net.StandardSocketOptions;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

/**
 * The baseline of the precopy benchmark: a plain copy of one memory region into another over a
 * loopback socket, with the same socket buffer sizes a migration asks for (4 MiB, no Nagle), in
 * 8 MiB writes and reads. It is what the kernel's loopback path allows a Java sender and receiver
 * with no stream format, no page scanning and no dirty tracking.
 *
 * <p>Threads: the caller receives; a thread named {@code bench/loopback-send} sends.
 */
public final class LoopbackCopy {
    /** Bytes per write and per read. */
    public static final int CHUNK_BYTES = 8 << 20;
    /** Socket buffer size asked for, as livemig's socket transport asks. */
    public static final int SOCKET_BUFFER_BYTES = 4 << 20;

    /** The socket kinds a migration runs over. */
    public enum Transport { TCP, UNIX }

    /**
     * One copy: wall time, the CPU time (user + system) of the sending and the receiving thread,
     * and how many reads the receiver made.
     */
    public record Result(long nanos, long senderCpuNanos, long receiverCpuNanos, long reads) {
    }

    private LoopbackCopy() {}

    /**
     * Copies {@code bytes} of {@code src} to the same offsets of {@code dst} over a loopback
     * socket of the given kind; returns the nanoseconds from the sender starting to connect to
     * the receiver having every byte, and each thread's CPU time. Both regions should be pre-faulted.
     *
     * @param dir where a Unix socket is created (and removed)
     */
    public static Result copy(Transport transport, MemorySegment src, MemorySegment dst, long bytes, Path dir)
            throws IOException, InterruptedException {
        return copy(transport, src, dst, bytes, dir, CHUNK_BYTES);
    }

    /**
     * As {@link #copy(Transport, MemorySegment, MemorySegment, long, Path)}, the receiver reading
     * at most {@code readBytes} per read: with 4 KiB, the cost of reading each page of a
     * migration stream straight into guest RAM, a system call per page.
     */
    public static Result copy(Transport transport, MemorySegment src, MemorySegment dst, long bytes, Path dir,
                              int readBytes) throws IOException, InterruptedException {
        if (bytes > src.byteSize() || bytes > dst.byteSize()) {
            throw new IllegalArgumentException("copy of " + bytes + " bytes between regions of "
                    + src.byteSize() + " and " + dst.byteSize());
        }
        Path sock = dir.resolve("loopback-" + ProcessHandle.current().pid() + ".sock");
        SocketAddress address;
        ServerSocketChannel server;
        if (transport == Transport.TCP) {
            server = ServerSocketChannel.open();
            server.setOption(StandardSocketOptions.SO_RCVBUF, SOCKET_BUFFER_BYTES);
            server.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 1);
            address = server.getLocalAddress();
        } else {
            Files.deleteIfExists(sock);
            server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
            server.bind(UnixDomainSocketAddress.of(sock), 1);
            address = server.getLocalAddress();
        }
        AtomicReference<Throwable> sendError = new AtomicReference<>();
        AtomicLong senderCpu = new AtomicLong(-1);
        ThreadMXBean threads = ManagementFactory.getThreadMXBean();
        try (server) {
            long t0 = System.nanoTime();
            Thread sender = Thread.ofPlatform().name("bench/loopback-send").start(() -> {
                try (SocketChannel out = transport == Transport.TCP ? SocketChannel.open()
                        : SocketChannel.open(StandardProtocolFamily.UNIX)) {
                    tune(out, transport);
                    out.connect(address);
                    for (long off = 0; off < bytes; off += CHUNK_BYTES) {
                        ByteBuffer b = src.asSlice(off, Math.min(CHUNK_BYTES, bytes - off)).asByteBuffer();
                        while (b.hasRemaining()) {
                            out.write(b);
                        }
                    }
                } catch (IOException | RuntimeException e) {
                    sendError.set(e);
                } finally {
                    senderCpu.set(threads.getCurrentThreadCpuTime());
                }
            });
            long receiverCpu0 = threads.getCurrentThreadCpuTime();
            long received = 0;
            long reads = 0;
            try (SocketChannel in = server.accept()) {
                tune(in, transport);
                while (received < bytes) {
                    ByteBuffer b = dst.asSlice(received, Math.min(readBytes, bytes - received)).asByteBuffer();
                    int n = in.read(b);
                    if (n < 0) {
                        break;
                    }
                    received += n;
                    reads++;
                }
            }
            long dt = System.nanoTime() - t0;
            long receiverCpu = threads.getCurrentThreadCpuTime() - receiverCpu0;
            sender.join();
            if (sendError.get() != null) {
                throw new IOException("loopback sender failed: " + sendError.get(), sendError.get());
            }
            if (received != bytes) {
                throw new IOException("loopback copy ended after " + received + " of " + bytes + " bytes");
            }
            return new Result(dt, senderCpu.get(), receiverCpu, reads);
        } finally {
            if (transport == Transport.UNIX) {
                Files.deleteIfExists(sock);
            }
        }
    }

    private static void tune(SocketChannel c, Transport transport) throws IOException {
        c.setOption(StandardSocketOptions.SO_SNDBUF, SOCKET_BUFFER_BYTES);
        c.setOption(StandardSocketOptions.SO_RCVBUF, SOCKET_BUFFER_BYTES);
        if (transport == Transport.TCP) {
            c.setOption(StandardSocketOptions.TCP_NODELAY, true);
        }
    }
}
