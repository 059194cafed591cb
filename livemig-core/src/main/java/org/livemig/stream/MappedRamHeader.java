package org.livemig.stream;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * QEMU 9.0's mapped-ram header (its MappedRamHeader), which follows each RAM block's entry in the
 * MEM_SIZE record of a mapped-ram stream. The block's pages are not in the stream: they lie at
 * fixed offsets of the file, and the stream goes on after them.
 *
 * <pre>
 *   0          4                 12                    20                   28
 *   +----------+-----------------+---------------------+--------------------+
 *   | be32     | be64 page size  | be64 bitmap offset  | be64 pages offset  |   packed, 28 bytes
 *   | version  | (target page)   | (in the file)       | (in the file)      |
 *   +----------+-----------------+---------------------+--------------------+
 *
 * In the file, after the header:
 *   bitmap offset  a bitmap of the block's pages, one bit a page (set: the page is in the file,
 *                  clear: the page is zero), as host-order 64-bit words: little-endian on x86-64
 *                  and aarch64, whole words (BITS_TO_LONGS(pages) * 8 bytes); written last
 *   pages offset   the block's pages, page i at pages offset + i * page size; QEMU puts it at the
 *                  next 1 MiB boundary after the bitmap ({@link #FILE_OFFSET_ALIGNMENT}), so that
 *                  O_DIRECT can read and write it; a reader checks only page alignment
 *   pages offset + used length   where the stream goes on (the next block's entry, or EOS)
 * </pre>
 *
 * Offsets are absolute offsets in the file (a {@code file:} URI's {@code offset=} included).
 * Codec only: what the offsets may be is the caller's to check.
 */
public record MappedRamHeader(int version, long pageSize, long bitmapOffset, long pagesOffset) {
    /** QEMU's MAPPED_RAM_HDR_VERSION. */
    public static final int VERSION = 1;
    /** sizeof(MappedRamHeader), packed. */
    public static final int SIZE = 28;
    /** QEMU's MAPPED_RAM_FILE_OFFSET_ALIGNMENT: where a block's pages start. */
    public static final long FILE_OFFSET_ALIGNMENT = 0x100000;
    /** QEMU's MAPPED_RAM_LOAD_BUF_SIZE: the most a load reads at once. */
    public static final int LOAD_BUF_SIZE = 0x100000;

    /** The header of a block of {@code usedLength} bytes whose header starts at file offset {@code at}, laid out as QEMU does. */
    public static MappedRamHeader layout(long at, long usedLength, int pageSize) {
        long bitmap = at + SIZE;
        long pages = roundUp(bitmap + bitmapBytes(usedLength / pageSize), FILE_OFFSET_ALIGNMENT);
        return new MappedRamHeader(VERSION, pageSize, bitmap, pages);
    }

    /** Bytes of the bitmap of a block of {@code pages} pages: whole 64-bit words. */
    public static long bitmapBytes(long pages) {
        return ((pages + 63) >>> 6) * 8;
    }

    static long roundUp(long v, long align) {
        return (v + align - 1) / align * align;
    }

    public void write(MigrationFile f) throws IOException {
        f.putBe32(version);
        f.putBe64(pageSize);
        f.putBe64(bitmapOffset);
        f.putBe64(pagesOffset);
    }

    /** Reads the 28 bytes of a header; a short stream fails with QEMU's words. */
    public static MappedRamHeader read(MigrationFile f) throws IOException {
        long at = f.position();
        try {
            return new MappedRamHeader(f.getBe32(), f.getBe64(), f.getBe64(), f.getBe64());
        } catch (StreamFormatException e) {
            throw new StreamFormatException("Could not read whole mapped-ram migration header (expected " + SIZE
                    + " bytes, got " + (f.position() - at) + ")", at);
        }
    }

    /**
     * Whether the next bytes of {@code f} are a mapped-ram header (any version from 1 to 255, a
     * page size that is a power of two from 1 KiB to 64 KiB), reading nothing. After a block
     * entry they can be nothing else: the next entry starts with its name's length (never 0),
     * the EOS record with seven zero bytes and 0x10 (a version 0).
     */
    public static boolean follows(MigrationFile f) throws IOException {
        long version = 0;
        long pageSize = 0;
        for (int i = 0; i < 12; i++) {
            int b = f.peekByte(i);
            if (b < 0) {
                return false;
            }
            if (i < 4) {
                version = version << 8 | b;
            } else {
                pageSize = pageSize << 8 | b;
            }
        }
        return version >= 1 && version <= 255 && Long.bitCount(pageSize) == 1 && pageSize >= 1024 && pageSize <= 65536;
    }

    /** The bitmap words as the file holds them (little-endian 64-bit words). */
    public static ByteBuffer encodeBitmap(long[] words, long pages) {
        ByteBuffer b = ByteBuffer.allocateDirect((int) bitmapBytes(pages)).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < b.capacity() / 8; i++) {
            b.putLong(i < words.length ? words[i] : 0L);
        }
        return b.flip();
    }

    /** The words of a bitmap read from the file ({@code bytes} holds whole little-endian words). */
    public static long[] decodeBitmap(ByteBuffer bytes) {
        ByteBuffer b = bytes.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        long[] words = new long[b.remaining() / 8];
        for (int i = 0; i < words.length; i++) {
            words[i] = b.getLong();
        }
        return words;
    }
}
