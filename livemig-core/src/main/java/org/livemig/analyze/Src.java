package org.livemig.analyze;

import java.io.IOException;
import java.nio.charset.StandardCharsets;

import org.livemig.stream.StreamFormatException;

/**
 * Where the device decoder reads from: the live stream ({@link #of(Input)}) or the bytes of one
 * section already split off at its footer ({@link #of(byte[], long, String)}), which can be
 * rewound to try another guess.
 */
abstract class Src {
    abstract long pos();

    abstract int u8() throws IOException;

    abstract int be32() throws IOException;

    abstract int peek(int ahead) throws IOException;

    abstract byte[] bytes(int n, long limit, String what) throws IOException;

    abstract StreamFormatException error(String message);

    String countedString() throws IOException {
        int n = u8();
        return new String(bytes(n, 255, "string"), StandardCharsets.ISO_8859_1);
    }

    static Src of(Input in) {
        return new Src() {
            @Override
            long pos() {
                return in.pos();
            }

            @Override
            int u8() throws IOException {
                return in.u8();
            }

            @Override
            int be32() throws IOException {
                return in.be32();
            }

            @Override
            int peek(int ahead) throws IOException {
                return in.peek(ahead);
            }

            @Override
            byte[] bytes(int n, long limit, String what) throws IOException {
                return in.bytes(n, limit, what);
            }

            @Override
            StreamFormatException error(String message) {
                return in.error(message);
            }
        };
    }

    static ArraySrc of(byte[] data, long base, String section) {
        return new ArraySrc(data, base, section);
    }

    /** A section's bytes in memory; {@link #pos()} is the absolute stream offset. */
    static final class ArraySrc extends Src {
        final byte[] data;
        final long base;
        final String section;
        int at;

        ArraySrc(byte[] data, long base, String section) {
            this.data = data;
            this.base = base;
            this.section = section;
        }

        @Override
        long pos() {
            return base + at;
        }

        boolean atEnd() {
            return at == data.length;
        }

        private void need(int n) throws StreamFormatException {
            if (n < 0 || data.length - at < n) {
                throw error("section body ends: needed " + n + " more byte(s), " + (data.length - at) + " left");
            }
        }

        @Override
        int u8() throws IOException {
            need(1);
            return data[at++] & 0xFF;
        }

        @Override
        int be32() throws IOException {
            need(4);
            int v = ((data[at] & 0xFF) << 24) | ((data[at + 1] & 0xFF) << 16) | ((data[at + 2] & 0xFF) << 8)
                    | (data[at + 3] & 0xFF);
            at += 4;
            return v;
        }

        @Override
        int peek(int ahead) {
            int i = at + ahead;
            return i < data.length ? data[i] & 0xFF : -1;
        }

        @Override
        byte[] bytes(int n, long limit, String what) throws IOException {
            if (n > limit) {
                throw error(what + " length " + n + " is beyond the limit of " + limit + " bytes");
            }
            need(n);
            byte[] b = java.util.Arrays.copyOfRange(data, at, at + n);
            at += n;
            return b;
        }

        @Override
        StreamFormatException error(String message) {
            return new StreamFormatException(message, pos(), section, null);
        }
    }
}
