package org.livemig.transport;

import java.io.IOException;
import java.net.ConnectException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ProtocolFamily;
import java.net.SocketAddress;
import java.net.SocketTimeoutException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.net.UnknownHostException;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.SocketChannel;
import java.nio.file.AccessDeniedException;
import java.nio.file.FileSystemException;
import java.nio.file.NoSuchFileException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * Opens migration connections: the source {@link #connect}s, the destination {@link #listen}s
 * and then accepts. Every call here may block on IO: never call it with the BQL held.
 */
public final class Transports {
    private Transports() {}

    /**
     * Source side: connects ({@code tcp:}, {@code unix:}), creates or truncates the file
     * ({@code file:}), or starts the command to write to its standard input ({@code exec:}).
     *
     * @param timeout how long a socket connect may take, for each address a host name resolves to
     *     and in total
     * @throws IOException naming the address and the reason (refused, timed out, no such file...)
     */
    public static MigrationConnection connect(MigrationAddress addr, Duration timeout) throws IOException {
        return connect(addr, timeout, ExecConnection.DEFAULT_EXIT_TIMEOUT);
    }

    /** {@link #connect(MigrationAddress, Duration)} with the time an {@code exec:} command gets to exit on close. */
    static MigrationConnection connect(MigrationAddress addr, Duration timeout, Duration execExitTimeout)
            throws IOException {
        Objects.requireNonNull(addr, "addr");
        Objects.requireNonNull(timeout, "timeout");
        return switch (addr) {
            case MigrationAddress.Tcp tcp -> connectTcp(tcp, timeout);
            case MigrationAddress.Unix unix -> {
                SocketChannel ch;
                try {
                    ch = connectChannel(UnixDomainSocketAddress.of(unix.path()), StandardProtocolFamily.UNIX,
                            System.nanoTime() + timeout.toNanos(), timeout, true);
                } catch (IOException e) {
                    throw new IOException("cannot connect to " + unix.uri() + ": " + reason(e), e);
                }
                yield new SocketConnection(ch, unix.uri() + " (connected)");
            }
            case MigrationAddress.File file -> FileConnection.create(file);
            case MigrationAddress.Exec exec -> ExecConnection.start(exec, true, execExitTimeout);
        };
    }

    /**
     * Destination side: binds now ({@code tcp:}, {@code unix:}), or checks the file can be read
     * ({@code file:}), so the caller can report an error at once and learn the real port for
     * {@code tcp:} port 0 from {@link MigrationListener#boundAddress()}.
     */
    public static MigrationListener listen(MigrationAddress addr) throws IOException {
        return listen(addr, ExecConnection.DEFAULT_EXIT_TIMEOUT);
    }

    /** {@link #listen(MigrationAddress)} with the time an {@code exec:} command gets to exit on close. */
    static MigrationListener listen(MigrationAddress addr, Duration execExitTimeout) throws IOException {
        Objects.requireNonNull(addr, "addr");
        return switch (addr) {
            case MigrationAddress.Tcp tcp -> SocketListener.listenTcp(tcp);
            case MigrationAddress.Unix unix -> SocketListener.listenUnix(unix);
            case MigrationAddress.File file -> FileListener.check(file);
            case MigrationAddress.Exec exec -> new ExecListener(exec, execExitTimeout);
        };
    }

    private static MigrationConnection connectTcp(MigrationAddress.Tcp addr, Duration timeout) throws IOException {
        if (addr.port() == 0) {
            throw new IOException("cannot connect to " + addr.uri() + ": port 0 is not a destination");
        }
        InetAddress[] ips;
        if (addr.host().isEmpty()) {
            ips = new InetAddress[] {InetAddress.getLoopbackAddress()};
        } else {
            try {
                ips = InetAddress.getAllByName(addr.host());
            } catch (UnknownHostException e) {
                throw new IOException("cannot connect to " + addr.uri() + ": unknown host '" + addr.host() + "'", e);
            }
        }
        long deadline = System.nanoTime() + timeout.toNanos();
        List<String> failures = new ArrayList<>();
        IOException last = null;
        for (InetAddress ip : ips) {
            InetSocketAddress remote = new InetSocketAddress(ip, addr.port());
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                failures.add(SocketConnection.format(remote) + ": not tried, out of time");
                continue;
            }
            try {
                SocketChannel ch = connectChannel(remote, null, deadline, timeout, true);
                String description = "tcp:" + SocketConnection.format(ch.getLocalAddress()) + " -> "
                        + SocketConnection.format(ch.getRemoteAddress());
                return new SocketConnection(ch, description);
            } catch (IOException e) {
                last = e;
                failures.add(SocketConnection.format(remote) + ": " + reason(e));
            }
        }
        String why = failures.size() == 1 ? reason(last) : String.join("; ", failures);
        throw new IOException("cannot connect to " + addr.uri() + ": " + why, last);
    }

    /**
     * Connects a blocking socket channel by {@code deadline} ({@link System#nanoTime()}), the end
     * of {@code timeout} (named in the error). {@code family} null means the family of
     * {@code remote} (an IP address).
     */
    static SocketChannel connectChannel(SocketAddress remote, ProtocolFamily family, long deadline, Duration timeout,
            boolean tune) throws IOException {
        SocketChannel ch = family == null ? SocketChannel.open() : SocketChannel.open(family);
        boolean ok = false;
        try {
            if (tune) {
                // before connect, so the TCP window scale covers the large receive buffer
                SocketConnection.tune(ch, family == null);
            }
            ch.configureBlocking(false);
            if (!ch.connect(remote)) {
                try (Selector selector = Selector.open()) {
                    ch.register(selector, SelectionKey.OP_CONNECT);
                    while (!ch.finishConnect()) {
                        long leftMs = (deadline - System.nanoTime()) / 1_000_000;
                        if (leftMs <= 0) {
                            throw new SocketTimeoutException("timed out after " + timeout.toMillis() + " ms");
                        }
                        selector.select(leftMs);
                        selector.selectedKeys().clear();
                    }
                }
            }
            ch.configureBlocking(true);
            ok = true;
            return ch;
        } finally {
            if (!ok) {
                ch.close();
            }
        }
    }

    /** The short reason of an IO error, without the path or address the caller names anyway. */
    static String reason(IOException e) {
        if (e instanceof NoSuchFileException) {
            return "no such file or directory";
        }
        if (e instanceof AccessDeniedException) {
            return "permission denied";
        }
        if (e instanceof FileSystemException fse && fse.getReason() != null) {
            return fse.getReason();
        }
        if (e instanceof ConnectException && e.getMessage() == null) {
            return "connection refused";
        }
        return e.getMessage() != null ? e.getMessage() : e.getClass().getSimpleName();
    }
}
