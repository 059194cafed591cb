package org.livemig.transport;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.StandardSocketOptions;
import java.nio.channels.NetworkChannel;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.SocketChannel;
import java.nio.channels.WritableByteChannel;

/**
 * A {@code tcp:} or {@code unix:} connection over one blocking {@link SocketChannel}, which is
 * also {@link #out()} so gathering writes go to the kernel as one {@code writev}.
 *
 * <p>Threads: one reader and one writer at a time (the channel locks each direction);
 * {@link #shutdown()} from any thread shuts both directions down, which wakes blocked threads.
 */
final class SocketConnection extends AbstractConnection {
    /** Socket buffer size asked for; the kernel may cap it (net.core.wmem_max / rmem_max). */
    static final int SOCKET_BUFFER_BYTES = 4 << 20;

    private final SocketChannel channel;
    private final ReadableByteChannel in;

    SocketConnection(SocketChannel channel, String description) {
        super(description);
        this.channel = channel;
        this.in = input(channel);
    }

    @Override
    public ReadableByteChannel in() {
        return in;
    }

    @Override
    public WritableByteChannel out() {
        return channel;
    }

    /** The underlying channel, for tests. */
    SocketChannel channel() {
        return channel;
    }

    @Override
    void doShutdown() {
        try {
            channel.shutdownInput();
        } catch (IOException | RuntimeException e) {
            // not connected or already closed: nothing left to wake
        }
        try {
            channel.shutdownOutput();
        } catch (IOException | RuntimeException e) {
            // likewise
        }
    }

    @Override
    void doClose() throws IOException {
        channel.close();
    }

    /** Asks for large socket buffers (throughput) and, for TCP, no Nagle delay. Best effort. */
    static void tune(NetworkChannel channel, boolean tcp) {
        setQuietly(channel, StandardSocketOptions.SO_RCVBUF, SOCKET_BUFFER_BYTES);
        if (channel instanceof SocketChannel) {
            setQuietly(channel, StandardSocketOptions.SO_SNDBUF, SOCKET_BUFFER_BYTES);
            if (tcp) {
                setQuietly(channel, StandardSocketOptions.TCP_NODELAY, true);
            }
        }
    }

    private static <T> void setQuietly(NetworkChannel channel, java.net.SocketOption<T> option, T value) {
        try {
            if (channel.supportedOptions().contains(option)) {
                channel.setOption(option, value);
            }
        } catch (IOException | UnsupportedOperationException e) {
            // the kernel keeps its default; correctness does not depend on it
        }
    }

    /** {@code 127.0.0.1:4444}, {@code [::1]:4444}. */
    static String format(SocketAddress address) {
        if (address instanceof InetSocketAddress inet && inet.getAddress() != null) {
            String host = inet.getAddress().getHostAddress();
            return (host.indexOf(':') >= 0 ? "[" + host + "]" : host) + ":" + inet.getPort();
        }
        return String.valueOf(address);
    }
}
