package org.livemig.transport;

import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Objects;

/**
 * A parsed migration URI in QEMU's syntax: {@code tcp:HOST:PORT} (IPv6 as {@code tcp:[::1]:4444},
 * an empty host as in {@code tcp::4444} meaning every local address when listening and the
 * loopback address when connecting), {@code unix:PATH}, {@code file:PATH[,offset=N]},
 * {@code exec:COMMAND}.
 *
 * <p>Immutable values; {@link #uri()} gives the canonical form, which {@link #parse} reads back
 * to an equal value.
 */
public sealed interface MigrationAddress
        permits MigrationAddress.Tcp, MigrationAddress.Unix, MigrationAddress.File, MigrationAddress.Exec {

    /** What {@link #parse} accepts, for error messages. */
    String EXPECTED = "(expected tcp:, unix:, file:, exec:)";

    /**
     * Parses a migration URI.
     *
     * @throws IllegalArgumentException naming what is wrong and the whole URI: an unknown
     *     transport, a bad port, a missing host bracket, an empty path or command
     */
    static MigrationAddress parse(String uri) {
        if (uri == null || uri.isEmpty()) {
            throw new IllegalArgumentException("empty migration URI " + EXPECTED);
        }
        int colon = uri.indexOf(':');
        if (colon < 0) {
            throw new IllegalArgumentException(
                    "migration URI '" + uri + "' has no transport prefix " + EXPECTED);
        }
        String scheme = uri.substring(0, colon);
        String rest = uri.substring(colon + 1);
        return switch (scheme) {
            case "tcp" -> Tcp.parseRest(uri, rest);
            case "unix" -> new Unix(parsePath(uri, rest));
            case "file" -> parseFile(uri, rest);
            case "exec" -> {
                if (rest.isBlank()) {
                    throw new IllegalArgumentException("empty command in '" + uri + "' (expected exec:COMMAND)");
                }
                yield new Exec(rest);
            }
            case "fd", "rdma", "vsock" -> throw new IllegalArgumentException(
                    "migration transport '" + scheme + "' in '" + uri + "' is not supported by livemig " + EXPECTED);
            default -> throw new IllegalArgumentException(
                    "unknown migration transport '" + scheme + "' in '" + uri + "' " + EXPECTED);
        };
    }

    /** The canonical URI: {@code parse(a.uri()).equals(a)}. */
    String uri();

    private static Path parsePath(String uri, String rest) {
        if (rest.isEmpty()) {
            String scheme = uri.substring(0, uri.indexOf(':'));
            throw new IllegalArgumentException(
                    "empty path in '" + uri + "' (expected " + scheme + ":PATH)");
        }
        try {
            return Path.of(rest);
        } catch (InvalidPathException e) {
            throw new IllegalArgumentException("bad path in '" + uri + "': " + e.getMessage(), e);
        }
    }

    /** {@code file:PATH[,offset=N]}: QEMU takes the offset as qemu_strtosz does, from ",offset=" on. */
    private static File parseFile(String uri, String rest) {
        int at = rest.indexOf(OFFSET_OPTION);
        if (at < 0) {
            return new File(parsePath(uri, rest), 0);
        }
        String option = rest.substring(at + OFFSET_OPTION.length());
        long offset = parseSize(option);
        if (offset < 0) {
            throw new IllegalArgumentException("file URI has bad offset " + option + ": "
                    + (offset == -2 ? "Numerical result out of range" : "Invalid argument")); // QEMU's words
        }
        return new File(parsePath(uri, rest.substring(0, at)), offset);
    }

    String OFFSET_OPTION = ",offset=";

    /**
     * A size as QEMU's qemu_strtosz reads it: decimal, with an optional fraction and a suffix of
     * B, K, M, G, T, P or E (powers of 1024, either case), or hexadecimal with 0x and no suffix.
     * Returns -1 for text it refuses (EINVAL) and -2 for a value beyond 2^63 - 1 (ERANGE).
     */
    static long parseSize(String text) {
        String t = text.stripLeading();
        if (t.startsWith("0x") || t.startsWith("0X")) {
            String digits = t.substring(2);
            if (digits.isEmpty() || !digits.chars().allMatch(c -> Character.digit(c, 16) >= 0)) {
                return -1;
            }
            try {
                return Long.parseLong(digits, 16);
            } catch (NumberFormatException e) {
                return -2;
            }
        }
        int i = 0;
        while (i < t.length() && Character.isDigit(t.charAt(i))) {
            i++;
        }
        if (i == 0) {
            return -1;
        }
        String whole = t.substring(0, i);
        String fraction = "";
        if (i < t.length() && t.charAt(i) == '.') {
            int j = i + 1;
            while (j < t.length() && Character.isDigit(t.charAt(j))) {
                j++;
            }
            fraction = t.substring(i + 1, j);
            if (fraction.isEmpty()) {
                return -1;
            }
            i = j;
        }
        long unit = 1;
        if (i < t.length()) {
            int shift = "BKMGTPE".indexOf(Character.toUpperCase(t.charAt(i)));
            if (shift < 0 || i + 1 != t.length()) {
                return -1;
            }
            unit = 1L << (10 * shift);
        }
        if (unit == 1 && !fraction.isEmpty() && !fraction.chars().allMatch(c -> c == '0')) {
            return -1; // a fraction of a byte
        }
        java.math.BigDecimal v = new java.math.BigDecimal(whole + (fraction.isEmpty() ? "" : "." + fraction))
                .multiply(java.math.BigDecimal.valueOf(unit));
        java.math.BigInteger n = v.setScale(0, java.math.RoundingMode.HALF_UP).toBigInteger();
        return n.bitLength() > 63 ? -2 : n.longValue();
    }

    /**
     * {@code tcp:HOST:PORT}. {@code host} is a name, an IPv4 literal or an IPv6 literal without
     * brackets; empty means any local address (listen) or loopback (connect). Port 0 asks the
     * listener for a free port.
     */
    record Tcp(String host, int port) implements MigrationAddress {
        public Tcp {
            Objects.requireNonNull(host, "host");
            if (port < 0 || port > 65535) {
                throw new IllegalArgumentException("bad port " + port + " (expected 0-65535)");
            }
            checkHost(host, "tcp:" + host + ":" + port);
        }

        @Override
        public String uri() {
            return "tcp:" + hostPort();
        }

        /** {@code HOST:PORT}, brackets around an IPv6 literal. */
        public String hostPort() {
            return (host.indexOf(':') >= 0 ? "[" + host + "]" : host) + ":" + port;
        }

        @Override
        public String toString() {
            return uri();
        }

        private static Tcp parseRest(String uri, String rest) {
            String host;
            String portText;
            if (rest.startsWith("[")) {
                int close = rest.indexOf(']');
                if (close < 0) {
                    throw new IllegalArgumentException("missing ']' after IPv6 address in '" + uri + "'");
                }
                host = rest.substring(1, close);
                if (host.isEmpty()) {
                    throw new IllegalArgumentException("empty IPv6 address in '" + uri + "'");
                }
                String after = rest.substring(close + 1);
                if (!after.startsWith(":")) {
                    throw new IllegalArgumentException(
                            "missing port in '" + uri + "' (expected tcp:[IPV6]:PORT)");
                }
                portText = after.substring(1);
            } else {
                int colon = rest.indexOf(':');
                if (colon < 0) {
                    throw new IllegalArgumentException(
                            "missing port in '" + uri + "' (expected tcp:HOST:PORT)");
                }
                host = rest.substring(0, colon);
                portText = rest.substring(colon + 1);
                if (portText.indexOf(':') >= 0) {
                    throw new IllegalArgumentException("IPv6 address in '" + uri
                            + "' must be in brackets (expected e.g. tcp:[::1]:4444)");
                }
            }
            if (portText.indexOf(',') >= 0) {
                throw new IllegalArgumentException(
                        "tcp: options in '" + uri + "' are not supported by livemig (expected tcp:HOST:PORT)");
            }
            checkHost(host, uri);
            return new Tcp(host, parsePort(uri, portText));
        }

        private static int parsePort(String uri, String text) {
            if (text.isEmpty()) {
                throw new IllegalArgumentException("missing port in '" + uri + "' (expected tcp:HOST:PORT)");
            }
            if (text.length() > 5 || !text.chars().allMatch(c -> c >= '0' && c <= '9')) {
                throw new IllegalArgumentException(
                        "bad port '" + text + "' in '" + uri + "' (expected 0-65535)");
            }
            int port = Integer.parseInt(text);
            if (port > 65535) {
                throw new IllegalArgumentException(
                        "bad port '" + text + "' in '" + uri + "' (expected 0-65535)");
            }
            return port;
        }

        private static void checkHost(String host, String uri) {
            for (int i = 0; i < host.length(); i++) {
                char c = host.charAt(i);
                boolean ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                        || c == '.' || c == '-' || c == '_' || c == ':' || c == '%';
                if (!ok) {
                    throw new IllegalArgumentException(
                            "bad character '" + c + "' in host '" + host + "' of '" + uri + "'");
                }
            }
        }
    }

    /** {@code unix:PATH}: a Unix domain stream socket at a file system path. */
    record Unix(Path path) implements MigrationAddress {
        public Unix {
            Objects.requireNonNull(path, "path");
            if (path.toString().isEmpty()) {
                throw new IllegalArgumentException("empty path (expected unix:PATH)");
            }
        }

        @Override
        public String uri() {
            return "unix:" + path;
        }

        @Override
        public String toString() {
            return uri();
        }
    }

    /**
     * {@code file:PATH[,offset=N]}: the source writes the whole stream to a file, from byte
     * {@code offset} on (the bytes before it are left as the truncation leaves them: zero), the
     * destination reads it from there.
     */
    record File(Path path, long offset) implements MigrationAddress {
        public File {
            Objects.requireNonNull(path, "path");
            if (path.toString().isEmpty()) {
                throw new IllegalArgumentException("empty path (expected file:PATH)");
            }
            if (offset < 0) {
                throw new IllegalArgumentException("negative file offset " + offset);
            }
        }

        public File(Path path) {
            this(path, 0);
        }

        @Override
        public String uri() {
            return "file:" + path + (offset == 0 ? "" : OFFSET_OPTION + offset);
        }

        @Override
        public String toString() {
            return uri();
        }
    }

    /**
     * {@code exec:COMMAND}, run as {@code /bin/sh -c COMMAND}: the source writes to its standard
     * input, the destination reads its standard output.
     */
    record Exec(String command) implements MigrationAddress {
        public Exec {
            Objects.requireNonNull(command, "command");
            if (command.isBlank()) {
                throw new IllegalArgumentException("empty command (expected exec:COMMAND)");
            }
        }

        @Override
        public String uri() {
            return "exec:" + command;
        }

        @Override
        public String toString() {
            return uri();
        }
    }
}
