package org.livemig.analyze;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.zip.DataFormatException;
import java.util.zip.Inflater;
import org.livemig.stream.QemuStream;

/**
 * Decoders for the two encoded RAM page records: XBZRLE deltas and 7.2's zlib COMPRESS_PAGE.
 * Both work on exactly one 4 KiB target page and report a malformed input as a message (null on
 * success), which the reader turns into a format error with the record's offset.
 *
 * <p>Not thread-safe: one instance per reader (it owns an {@link Inflater}).
 */
final class PageCodecs implements AutoCloseable {
    /** The only XBZRLE encoding byte QEMU defines. */
    static final int ENCODING_XBZRLE = 1;

    private final Inflater inflater = new Inflater();
    private byte[] out = new byte[QemuStream.TARGET_PAGE_SIZE];

    /** zlib's compressBound(): the largest COMPRESS_PAGE payload QEMU accepts for a page. */
    static int compressBound(int pageSize) {
        return pageSize + (pageSize >> 12) + (pageSize >> 14) + (pageSize >> 25) + 13;
    }

    /**
     * Applies an XBZRLE delta to {@code page} in place. The delta is pairs of (ULEB128 count of
     * unchanged bytes, ULEB128 count of new bytes, the new bytes); counts take one or two bytes.
     *
     * @return null when the delta was applied, otherwise what is wrong with it
     */
    static String xbzrleDecode(byte[] enc, MemorySegment page, int pageSize) {
        int i = 0;
        int d = 0;
        int len = enc.length;
        while (i < len) {
            if (len - i < 2) {
                return "XBZRLE delta ends inside a run header at byte " + i;
            }
            long z = uleb(enc, i, len);
            if (z < 0) {
                return "XBZRLE delta has a malformed unchanged-run length at byte " + i;
            }
            i += (int) (z >>> 32);
            d += (int) z;
            if (d > pageSize) {
                return "XBZRLE unchanged run goes past the end of the page";
            }
            long nz = uleb(enc, i, len);
            if (nz < 0) {
                return "XBZRLE delta has a malformed changed-run length at byte " + i;
            }
            i += (int) (nz >>> 32);
            int n = (int) nz;
            if (n == 0) {
                return "XBZRLE changed run of length 0 at byte " + i;
            }
            if (d + n > pageSize) {
                return "XBZRLE changed run goes past the end of the page";
            }
            if (i + n > len) {
                return "XBZRLE changed run of " + n + " bytes goes past the end of the delta";
            }
            MemorySegment.copy(enc, i, page, ValueLayout.JAVA_BYTE, d, n);
            i += n;
            d += n;
        }
        return null;
    }

    /** A ULEB128 value of one or two bytes: (bytes used &lt;&lt; 32) | value, or -1 when malformed. */
    private static long uleb(byte[] b, int i, int len) {
        if (i >= len) {
            return -1;
        }
        int b0 = b[i] & 0xFF;
        if ((b0 & 0x80) == 0) {
            return (1L << 32) | b0;
        }
        if (i + 1 >= len) {
            return -1;
        }
        int b1 = b[i + 1] & 0xFF;
        if ((b1 & 0x80) != 0) {
            return -1;
        }
        return (2L << 32) | ((b0 & 0x7F) | (b1 << 7));
    }

    /**
     * Encodes {@code next} as an XBZRLE delta against {@code prev} (both one page): unchanged runs are
     * bytes equal in both pages, changed runs end at the first equal byte. Returns null when the
     * delta would be longer than {@code max} bytes.
     */
    static byte[] xbzrleEncode(byte[] prev, byte[] next, int max) {
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        int size = prev.length;
        int i = 0;
        while (i < size) {
            int z = 0;
            while (i + z < size && prev[i + z] == next[i + z]) {
                z++;
            }
            if (i + z == size) {
                break;
            }
            int n = 0;
            while (i + z + n < size && prev[i + z + n] != next[i + z + n]) {
                n++;
            }
            putUleb(out, z);
            putUleb(out, n);
            out.write(next, i + z, n);
            i += z + n;
            if (out.size() > max) {
                return null;
            }
        }
        return out.toByteArray();
    }

    private static void putUleb(java.io.ByteArrayOutputStream out, int v) {
        if (v < 0x80) {
            out.write(v);
        } else {
            out.write(0x80 | (v & 0x7F));
            out.write(v >>> 7);
        }
    }

    /**
     * Inflates a COMPRESS_PAGE payload (zlib stream) into {@code page}; it must inflate to exactly
     * one page.
     *
     * @return null on success, otherwise what is wrong with the payload
     */
    String inflate(byte[] data, MemorySegment page, int pageSize) {
        if (out.length != pageSize) {
            out = new byte[pageSize];
        }
        inflater.reset();
        inflater.setInput(data);
        int total = 0;
        try {
            for (int rounds = 0; !inflater.finished(); rounds++) {
                if (rounds > pageSize + 16) {
                    return "zlib data makes no progress";
                }
                int n = inflater.inflate(out, total, pageSize - total);
                total += n;
                if (n == 0 && !inflater.finished()) {
                    if (total == pageSize) {
                        return "zlib data inflates to more than one page";
                    }
                    if (inflater.needsDictionary()) {
                        return "zlib data needs a preset dictionary";
                    }
                    if (inflater.needsInput()) {
                        return "zlib data ends before the end of its stream";
                    }
                }
            }
        } catch (DataFormatException e) {
            return "zlib data is corrupt: " + e.getMessage();
        }
        if (total != pageSize) {
            return "zlib data inflates to " + total + " bytes, not one page";
        }
        MemorySegment.copy(out, 0, page, ValueLayout.JAVA_BYTE, 0, pageSize);
        return null;
    }

    @Override
    public void close() {
        inflater.end();
    }
}
