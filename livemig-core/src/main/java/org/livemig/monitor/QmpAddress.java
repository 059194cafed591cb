package org.livemig.monitor;

import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.UnixDomainSocketAddress;
import java.net.UnknownHostException;
import java.nio.file.Path;
import java.util.Objects;

/**
 * Where a QMP monitor listens or a client connects, in the spelling QEMU's {@code -qmp} takes:
 * {@code unix:PATH} or {@code tcp:HOST:PORT} ({@code tcp:[::1]:PORT} for IPv6). Trailing QEMU
 * chardev options ({@code ,server=on,wait=off}) are accepted and ignored. A bare path means a
 * unix socket. An empty TCP host means loopback: the monitor is never exposed by default.
 */
public sealed interface QmpAddress permits QmpAddress.Unix, QmpAddress.Tcp {

    /** The socket address to bind or connect to. */
    SocketAddress socketAddress() throws UnknownHostException;

    /** A unix domain socket at {@code path}. */
    record Unix(Path path) implements QmpAddress {
        public Unix {
            Objects.requireNonNull(path, "path");
        }

        @Override
        public SocketAddress socketAddress() {
            return UnixDomainSocketAddress.of(path);
        }

        @Override
        public String toString() {
            return "unix:" + path;
        }
    }

    /** A TCP endpoint; an empty host is the loopback address. */
    record Tcp(String host, int port) implements QmpAddress {
        public Tcp {
            Objects.requireNonNull(host, "host");
            if (port < 0 || port > 65535) {
                throw new IllegalArgumentException("TCP port out of range: " + port);
            }
        }

        @Override
        public SocketAddress socketAddress() throws UnknownHostException {
            InetAddress addr = host.isEmpty() ? InetAddress.getLoopbackAddress() : InetAddress.getByName(host);
            return new InetSocketAddress(addr, port);
        }

        @Override
        public String toString() {
            return "tcp:" + (host.contains(":") ? "[" + host + "]" : host) + ":" + port;
        }
    }

    /**
     * Parses {@code unix:PATH}, {@code tcp:HOST:PORT} or a bare path.
     *
     * @throws IllegalArgumentException naming what is wrong
     */
    static QmpAddress parse(String spec) {
        Objects.requireNonNull(spec, "spec");
        if (spec.startsWith("tcp:")) {
            String rest = stripOptions(spec.substring(4));
            String host;
            String port;
            if (rest.startsWith("[")) {
                int close = rest.indexOf(']');
                if (close < 0 || close + 1 >= rest.length() || rest.charAt(close + 1) != ':') {
                    throw new IllegalArgumentException("bad QMP address '" + spec + "': expected tcp:[HOST]:PORT");
                }
                host = rest.substring(1, close);
                port = rest.substring(close + 2);
            } else {
                int colon = rest.lastIndexOf(':');
                if (colon < 0) {
                    throw new IllegalArgumentException("bad QMP address '" + spec + "': expected tcp:HOST:PORT");
                }
                host = rest.substring(0, colon);
                port = rest.substring(colon + 1);
            }
            try {
                return new Tcp(host, Integer.parseInt(port));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("bad QMP address '" + spec + "': port '" + port + "' is not a number", e);
            }
        }
        String path = spec.startsWith("unix:") ? stripOptions(spec.substring(5)) : spec;
        if (path.isEmpty()) {
            throw new IllegalArgumentException("bad QMP address '" + spec + "': empty socket path");
        }
        return new Unix(Path.of(path));
    }

    /**
     * The value of chardev option {@code name} in {@code spec} ({@code tcp:HOST:PORT,tls-creds=ID}
     * gives {@code ID} for {@code tls-creds}), or null.
     */
    static String option(String spec, String name) {
        String[] parts = spec.split(",");
        for (int i = 1; i < parts.length; i++) {
            if (parts[i].startsWith(name + "=")) {
                return parts[i].substring(name.length() + 1);
            }
        }
        return null;
    }

    /** {@link #option} for callers outside the package: the monitor's tls-creds, or null. */
    public static String tlsCredsOf(String spec) {
        return option(spec, "tls-creds");
    }

    private static String stripOptions(String s) {
        int comma = s.indexOf(',');
        return comma < 0 ? s : s.substring(0, comma);
    }
}
