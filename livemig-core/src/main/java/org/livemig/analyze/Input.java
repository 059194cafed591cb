package org.livemig.analyze;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.SectionHeader;
import org.livemig.stream.StreamFormatException;

/**
 * The reader's view of a {@link MigrationFile}: absolute byte offsets (a postcopy package is read
 * from its own in-memory file but reports offsets in the outer stream), the section being read,
 * and length-checked reads. Every format problem surfaces as a {@link StreamFormatException}
 * naming the absolute offset and the current section.
 *
 * <p>Not thread-safe: owned by the thread running the {@link StreamReader}.
 */
final class Input {
    private static final int CHUNK = 64 * 1024;
    private static final String OFFSET_SUFFIX = " (at byte offset ";

    private final MigrationFile file;
    private final long base;
    /** Section being read, for error messages; null between sections. */
    String section;

    Input(MigrationFile file, long base) {
        this.file = file;
        this.base = base;
    }

    long pos() {
        return base + file.position();
    }

    StreamFormatException error(String message) {
        return new StreamFormatException(message, pos(), section, null);
    }

    StreamFormatException errorAt(String message, long offset) {
        return new StreamFormatException(message, offset, section, null);
    }

    /** Re-anchors an error of the underlying file at the absolute offset and current section. */
    private IOException wrap(IOException e) {
        if (e instanceof StreamFormatException sfe) {
            String msg = sfe.getMessage();
            int cut = msg.indexOf(OFFSET_SUFFIX);
            if (cut >= 0) {
                msg = msg.substring(0, cut);
            }
            long off = sfe.offset() >= 0 ? base + sfe.offset() : pos();
            return new StreamFormatException(msg, off, sfe.section() != null ? sfe.section() : section, sfe);
        }
        return e;
    }

    int u8() throws IOException {
        try {
            return file.getByte();
        } catch (IOException e) {
            throw wrap(e);
        }
    }

    int be16() throws IOException {
        try {
            return file.getBe16();
        } catch (IOException e) {
            throw wrap(e);
        }
    }

    int be32() throws IOException {
        try {
            return file.getBe32();
        } catch (IOException e) {
            throw wrap(e);
        }
    }

    long be64() throws IOException {
        try {
            return file.getBe64();
        } catch (IOException e) {
            throw wrap(e);
        }
    }

    /** The byte {@code ahead} bytes on, or -1 past the end. */
    int peek(int ahead) throws IOException {
        try {
            return file.peekByte(ahead);
        } catch (IOException e) {
            throw wrap(e);
        }
    }

    boolean atEof() throws IOException {
        try {
            return file.atEof();
        } catch (IOException e) {
            throw wrap(e);
        }
    }

    /**
     * Reads {@code len} bytes after checking it against {@code limit}. Large reads grow their
     * buffer only as bytes arrive, so a huge length on a short stream fails as truncated without
     * allocating it.
     */
    byte[] bytes(long len, long limit, String what) throws IOException {
        if (len < 0 || len > limit) {
            throw error(what + " length " + len + " is beyond the limit of " + limit + " bytes");
        }
        int n = (int) len;
        try {
            if (n <= CHUNK) {
                byte[] b = new byte[n];
                file.getBytes(b, 0, n);
                return b;
            }
            ByteArrayOutputStream out = new ByteArrayOutputStream(CHUNK);
            byte[] chunk = new byte[CHUNK];
            int left = n;
            while (left > 0) {
                int k = Math.min(left, CHUNK);
                file.getBytes(chunk, 0, k);
                out.write(chunk, 0, k);
                left -= k;
            }
            return out.toByteArray();
        } catch (IOException e) {
            throw wrap(e);
        }
    }

    /** Fills {@code dst} completely. */
    void fill(byte[] dst) throws IOException {
        try {
            file.getBytes(dst, 0, dst.length);
        } catch (IOException e) {
            throw wrap(e);
        }
    }

    /** Fills {@code dst} (a page) straight from the stream. */
    void readInto(java.lang.foreign.MemorySegment dst) throws IOException {
        try {
            file.readInto(dst);
        } catch (IOException e) {
            throw wrap(e);
        }
    }

    /**
     * Reads a counted string. Names are kept as ISO-8859-1 text, one char per byte, so that they
     * re-encode to the same bytes; {@link SectionHeader#display} gives the UTF-8 reading for output.
     */
    String countedString() throws IOException {
        int len = u8();
        byte[] b = bytes(len, 255, "string");
        return new String(b, StandardCharsets.ISO_8859_1);
    }

    /** Moves the stream on by {@code n} bytes over {@code channel}, the file under it (mapped-ram's page regions). */
    void seekForward(java.nio.channels.FileChannel channel, long n) throws IOException {
        try {
            file.seekForward(channel, n);
        } catch (IOException e) {
            throw wrap(e);
        }
    }

    /** A read through a codec of the stream package, on the underlying file. */
    interface Read<T> {
        T read(MigrationFile f) throws IOException;
    }

    /** Runs {@code r} on the file, its errors anchored at the absolute offset and current section. */
    <T> T with(Read<T> r) throws IOException {
        try {
            return r.read(file);
        } catch (IOException e) {
            throw wrap(e);
        }
    }
}
