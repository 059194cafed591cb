package org.livemig.stream;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;

/** Test bytes written as hex digits, with "quoted" ASCII text, spaces ignored. */
final class Hex {
    private Hex() {}

    static byte[] bytes(String spec) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        int i = 0;
        while (i < spec.length()) {
            char c = spec.charAt(i);
            if (Character.isWhitespace(c)) {
                i++;
            } else if (c == '"') {
                int end = spec.indexOf('"', i + 1);
                out.writeBytes(spec.substring(i + 1, end).getBytes(StandardCharsets.US_ASCII));
                i = end + 1;
            } else {
                out.write(Integer.parseInt(spec.substring(i, i + 2), 16));
                i += 2;
            }
        }
        return out.toByteArray();
    }

    /**
     * Where to cut an encoding of {@code length} bytes for truncation tests: every place in the
     * first 24 bytes, the last byte, and 16 more drawn from {@code r} (each cut opens a reader with
     * a 1 MiB buffer, so all cuts of a 64 KiB command would be slow).
     */
    static java.util.SortedSet<Integer> cuts(int length, java.util.random.RandomGenerator r) {
        java.util.SortedSet<Integer> cuts = new java.util.TreeSet<>();
        for (int i = 0; i < Math.min(24, length); i++) {
            cuts.add(i);
        }
        if (length > 0) {
            cuts.add(length - 1);
            for (int i = 0; i < 16; i++) {
                cuts.add(r.nextInt(length));
            }
        }
        return cuts;
    }

    static String of(byte[] b) {
        StringBuilder sb = new StringBuilder();
        for (byte x : b) {
            sb.append(String.format("%02x", x & 0xFF));
        }
        return sb.toString();
    }
}
