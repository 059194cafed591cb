package org.livemig.stream;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * XBZRLE, QEMU's delta encoding of a page against the copy the destination already holds
 * (qemu-stream-format.md §6.3): the one encoder and decoder of livemig, shared by the source, the
 * destination and the analyzer.
 *
 * <pre>
 * RAM record, flag XBZRLE (0x040), after the be64 header and the block name:
 *   +0  u8    encoding   1 (ENCODING_XBZRLE), the only one defined
 *   +1  be16  length     bytes of delta that follow, at most one target page
 *   +3  ...   delta
 *
 * delta: pairs, front to back over the page, the last unchanged run left out
 *   ULEB128  unchanged   bytes kept as they are (0 only in the first pair)
 *   ULEB128  changed     bytes replaced (at least 1)
 *   bytes    the new values of the changed bytes, verbatim
 * </pre>
 *
 * ULEB128 values here take one or two bytes (at most 14 bits), as QEMU's decoder takes them. A
 * changed run ends at the first byte equal in both pages, so an unchanged run between two changed
 * ones is never empty.
 *
 * <p>Stateless and thread-safe; the buffers are the caller's.
 */
public final class XbzrleCodec {
    /** The encoding byte of an XBZRLE record. */
    public static final int ENCODING_XBZRLE = 1;
    /** The encoding byte and the be16 length before the delta. */
    public static final int PAYLOAD_HEADER_BYTES = 3;
    /** {@link #encode}'s result when the pages are equal: nothing to send. */
    public static final int UNCHANGED = 0;
    /** {@link #encode}'s result when the delta would not fit: send the page whole. */
    public static final int OVERFLOW = -1;

    private static final ValueLayout.OfLong LE_LONG = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final long ONES = 0x0101010101010101L;
    private static final long HIGHS = 0x8080808080808080L;
    /** The largest count two ULEB128 bytes hold. */
    private static final int MAX_COUNT = (1 << 14) - 1;

    private XbzrleCodec() {}

    /**
     * Encodes the change from {@code old} to {@code cur} (both {@code pageSize} bytes at the given
     * offsets) into {@code dst}. Both pages must stay unchanged while this runs (copy a page a
     * guest may write first).
     *
     * @param max the longest delta wanted (at most {@code dst.length}); a longer one is not written out
     * @return the delta's length, {@link #UNCHANGED} when the pages are equal, or {@link #OVERFLOW}
     */
    public static int encode(MemorySegment old, long oldOffset, MemorySegment cur, long curOffset, int pageSize,
                             byte[] dst, int max) {
        if (pageSize > MAX_COUNT) {
            throw new IllegalArgumentException("page size " + pageSize + " is beyond XBZRLE's 14-bit run lengths");
        }
        if (max > dst.length) {
            throw new IllegalArgumentException("max " + max + " is beyond the buffer of " + dst.length);
        }
        int d = 0;
        int i = 0;
        while (i < pageSize) {
            long m = MemorySegment.mismatch(old, oldOffset + i, oldOffset + pageSize, cur, curOffset + i, curOffset + pageSize);
            if (m < 0) {
                break; // the rest is unchanged: left out
            }
            int unchanged = (int) m;
            int start = i + unchanged;
            int changed = changedRun(old, oldOffset + start, cur, curOffset + start, pageSize - start);
            int need = ulebBytes(unchanged) + ulebBytes(changed) + changed;
            if (d + need > max) {
                return OVERFLOW;
            }
            d = putUleb(dst, d, unchanged);
            d = putUleb(dst, d, changed);
            MemorySegment.copy(cur, ValueLayout.JAVA_BYTE, curOffset + start, dst, d, changed);
            d += changed;
            i = start + changed;
        }
        return d;
    }

    /** Length of the run of differing bytes at the given offsets: up to the first equal byte, at most {@code left}. */
    private static int changedRun(MemorySegment a, long ao, MemorySegment b, long bo, int left) {
        int n = 0;
        while (n + 8 <= left) {
            long x = a.get(LE_LONG, ao + n) ^ b.get(LE_LONG, bo + n);
            long equalBytes = (x - ONES) & ~x & HIGHS; // the lowest set bit marks the first equal byte exactly
            if (equalBytes != 0) {
                return n + (Long.numberOfTrailingZeros(equalBytes) >>> 3);
            }
            n += 8;
        }
        while (n < left && a.get(ValueLayout.JAVA_BYTE, ao + n) != b.get(ValueLayout.JAVA_BYTE, bo + n)) {
            n++;
        }
        return n;
    }

    private static int ulebBytes(int v) {
        return v < 0x80 ? 1 : 2;
    }

    private static int putUleb(byte[] dst, int d, int v) {
        if (v < 0x80) {
            dst[d] = (byte) v;
            return d + 1;
        }
        dst[d] = (byte) (0x80 | (v & 0x7F));
        dst[d + 1] = (byte) (v >>> 7);
        return d + 2;
    }

    /**
     * Applies the delta in {@code src[0..len)} to the page at {@code pageOffset} of {@code page},
     * in place. Every run is checked against the page and the delta before its bytes are copied,
     * so nothing is written outside the page; a malformed delta may leave the runs before the bad
     * one applied.
     *
     * @return null when the delta was applied, otherwise what is wrong with it (and at which byte of the delta)
     */
    public static String decode(byte[] src, int len, MemorySegment page, long pageOffset, int pageSize) {
        if (len < 0 || len > src.length) {
            throw new IllegalArgumentException("delta length " + len + " outside its buffer of " + src.length);
        }
        int i = 0;
        int d = 0;
        while (i < len) {
            if (len - i < 2) {
                return "delta ends inside a run header at byte " + i;
            }
            long z = uleb(src, i, len);
            if (z < 0) {
                return "malformed unchanged-run length at byte " + i + " of the delta";
            }
            int unchanged = (int) z;
            if (i > 0 && unchanged == 0) {
                return "unchanged run of length 0 after the first at byte " + i + " of the delta";
            }
            i += (int) (z >>> 32);
            d += unchanged;
            if (d > pageSize) {
                return "unchanged run ends at byte " + d + ", past the end of the " + pageSize + "-byte page";
            }
            if (len - i < 2) {
                return "delta ends inside a run header at byte " + i;
            }
            long nz = uleb(src, i, len);
            if (nz < 0) {
                return "malformed changed-run length at byte " + i + " of the delta";
            }
            int changed = (int) nz;
            if (changed == 0) {
                return "changed run of length 0 at byte " + i + " of the delta";
            }
            i += (int) (nz >>> 32);
            if (d + changed > pageSize) {
                return "changed run of " + changed + " bytes at page byte " + d + " goes past the end of the "
                        + pageSize + "-byte page";
            }
            if (i + changed > len) {
                return "changed run of " + changed + " bytes at byte " + i + " goes past the end of the "
                        + len + "-byte delta";
            }
            MemorySegment.copy(src, i, page, ValueLayout.JAVA_BYTE, pageOffset + d, changed);
            i += changed;
            d += changed;
        }
        return null;
    }

    /** A ULEB128 value of one or two bytes as {@code (bytes used << 32) | value}, or -1 when malformed. */
    private static long uleb(byte[] b, int i, int len) {
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

    /** Writes the payload of an XBZRLE record: encoding, length, {@code len} bytes of {@code delta}. */
    public static void putPayload(MigrationFile f, byte[] delta, int len) throws IOException {
        f.putByte(ENCODING_XBZRLE);
        f.putBe16(len);
        f.putBytes(delta, 0, len);
    }

    /**
     * Reads the payload of an XBZRLE record into {@code into} (at least {@code pageSize} bytes).
     *
     * @return the delta's length
     * @throws StreamFormatException on another encoding byte or a delta longer than a page, at the payload's offset
     */
    public static int readPayload(MigrationFile f, byte[] into, int pageSize) throws IOException {
        long at = f.position();
        int encoding = f.getByte();
        if (encoding != ENCODING_XBZRLE) {
            throw new StreamFormatException("XBZRLE record with encoding " + encoding + ", only "
                    + ENCODING_XBZRLE + " exists", at);
        }
        int len = f.getBe16();
        if (len > pageSize) {
            throw new StreamFormatException("XBZRLE delta of " + len + " bytes is longer than a "
                    + pageSize + "-byte page", at + 1);
        }
        f.getBytes(into, 0, len);
        return len;
    }
}
