package org.livemig.transport;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.StandardProtocolFamily;
import java.net.StandardSocketOptions;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.AsynchronousCloseException;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.PosixFilePermission;
import java.time.Duration;
import java.util.EnumSet;
import java.util.Objects;

/**
 * A bound {@code tcp:} or {@code unix:} server socket. Accepts any number of connections.
 *
 * <p>Threads: {@link #accept()} from one waiting thread at a time; {@link #close()} from any
 * thread wakes it. The unix socket file is created mode 0600 and removed on close if it is still
 * the one this listener created.
 */
final class SocketListener implements MigrationListener {
    private static final int BACKLOG = 16;
    /** How long the probe of an existing unix socket file may take to find a live listener. */
    private static final Duration PROBE_TIMEOUT = Duration.ofSeconds(1);
    private static final int S_IFMT = 0170000;
    private static final int S_IFSOCK = 0140000;

    private final ServerSocketChannel server;
    private final MigrationAddress bound;
    /** The unix socket file this listener created, or null for tcp. */
    private final Path socketFile;
    /** Identity (device, inode) of {@link #socketFile} when created, so close removes only ours. */
    private final Object socketFileKey;

    private SocketListener(ServerSocketChannel server, MigrationAddress bound, Path socketFile, Object socketFileKey) {
        this.server = server;
        this.bound = bound;
        this.socketFile = socketFile;
        this.socketFileKey = socketFileKey;
    }

    static SocketListener listenTcp(MigrationAddress.Tcp addr) throws IOException {
        InetSocketAddress local;
        if (addr.host().isEmpty()) {
            local = new InetSocketAddress(addr.port());
        } else {
            InetAddress ip;
            try {
                ip = InetAddress.getByName(addr.host());
            } catch (IOException e) {
                throw new IOException("cannot listen on " + addr.uri() + ": unknown host '" + addr.host() + "'", e);
            }
            local = new InetSocketAddress(ip, addr.port());
        }
        ServerSocketChannel server = ServerSocketChannel.open();
        try {
            server.setOption(StandardSocketOptions.SO_REUSEADDR, true);
            // set before bind so accepted sockets inherit it and the window scale covers it
            SocketConnection.tune(server, true);
            server.bind(local, BACKLOG);
        } catch (IOException e) {
            closeQuietly(server);
            throw new IOException("cannot listen on " + addr.uri() + ": " + e.getMessage(), e);
        }
        int port = ((InetSocketAddress) server.getLocalAddress()).getPort();
        return new SocketListener(server, new MigrationAddress.Tcp(addr.host(), port), null, null);
    }

    static SocketListener listenUnix(MigrationAddress.Unix addr) throws IOException {
        Path path = addr.path();
        removeStaleSocket(addr);
        ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        Object key;
        try {
            SocketConnection.tune(server, false);
            server.bind(UnixDomainSocketAddress.of(path), BACKLOG);
        } catch (IOException e) {
            closeQuietly(server);
            throw new IOException("cannot listen on " + addr.uri() + ": " + e.getMessage(), e);
        }
        try {
            // Java cannot set the umask: narrow the mode right after bind, before any accept.
            Files.setPosixFilePermissions(path,
                    EnumSet.of(PosixFilePermission.OWNER_READ, PosixFilePermission.OWNER_WRITE));
            key = Files.readAttributes(path, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS).fileKey();
        } catch (IOException | UnsupportedOperationException e) {
            closeQuietly(server);
            deleteQuietly(path);
            throw new IOException("cannot set mode 0600 on " + addr.uri() + ": " + e.getMessage(), e);
        }
        return new SocketListener(server, addr, path, key);
    }

    /**
     * Removes a socket file left by a listener that is gone. Refuses a path that is not a socket
     * and a socket someone still listens on.
     */
    private static void removeStaleSocket(MigrationAddress.Unix addr) throws IOException {
        Path path = addr.path();
        if (!Files.exists(path, LinkOption.NOFOLLOW_LINKS)) {
            return;
        }
        if (!isSocket(path)) {
            throw new IOException("cannot listen on " + addr.uri() + ": the path exists and is not a socket");
        }
        boolean live;
        try (SocketChannel probe = Transports.connectChannel(UnixDomainSocketAddress.of(path),
                StandardProtocolFamily.UNIX, System.nanoTime() + PROBE_TIMEOUT.toNanos(), PROBE_TIMEOUT, false)) {
            live = true;
        } catch (IOException e) {
            live = false;
        }
        if (live) {
            throw new IOException("cannot listen on " + addr.uri() + ": another process is listening on it");
        }
        Files.deleteIfExists(path);
    }

    static boolean isSocket(Path path) throws IOException {
        try {
            int mode = (Integer) Files.getAttribute(path, "unix:mode", LinkOption.NOFOLLOW_LINKS);
            return (mode & S_IFMT) == S_IFSOCK;
        } catch (UnsupportedOperationException | IllegalArgumentException e) {
            // no "unix" attribute view: a socket is at least neither file, directory nor link
            return Files.readAttributes(path, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS).isOther();
        }
    }

    @Override
    public MigrationAddress boundAddress() {
        return bound;
    }

    @Override
    public MigrationConnection accept() throws IOException {
        SocketChannel ch;
        try {
            ch = server.accept();
        } catch (AsynchronousCloseException e) {
            throw new IOException("migration listener " + bound.uri() + " was closed while accepting", e);
        } catch (ClosedChannelException e) {
            throw new IOException("migration listener " + bound.uri() + " is closed", e);
        }
        try {
            ch.configureBlocking(true);
            SocketConnection.tune(ch, socketFile == null);
            String description = socketFile == null
                    ? "tcp:" + SocketConnection.format(ch.getLocalAddress()) + " <- " + SocketConnection.format(ch.getRemoteAddress())
                    : bound.uri() + " (accepted)";
            return new SocketConnection(ch, description);
        } catch (IOException | RuntimeException e) {
            closeQuietly(ch);
            throw e;
        }
    }

    @Override
    public void close() throws IOException {
        if (!server.isOpen()) {
            return;
        }
        server.close();
        if (socketFile != null) {
            try {
                BasicFileAttributes attrs = Files.readAttributes(socketFile, BasicFileAttributes.class,
                        LinkOption.NOFOLLOW_LINKS);
                if (Objects.equals(attrs.fileKey(), socketFileKey)) {
                    Files.deleteIfExists(socketFile);
                }
            } catch (java.nio.file.NoSuchFileException e) {
                // already gone
            }
        }
    }

    @Override
    public String toString() {
        return "listener " + bound.uri();
    }

    private static void closeQuietly(java.io.Closeable c) {
        try {
            c.close();
        } catch (IOException e) {
            // already failing with a better error
        }
    }

    private static void deleteQuietly(Path p) {
        try {
            Files.deleteIfExists(p);
        } catch (IOException e) {
            // already failing with a better error
        }
    }
}
