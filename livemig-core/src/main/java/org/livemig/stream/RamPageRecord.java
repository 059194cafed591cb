package org.livemig.stream;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.lang.foreign.MemorySegment;

/**
 * The records of the "ram" section's body: the one codec for them, used by the RAM saver and
 * loader, the multifd main stream, the analyzer and the rewriter.
 *
 * <pre>
 * Every record starts with a be64 whose low bits (below the target page size) are flags and whose
 * high bits are a page's offset in its block (or, for MEM_SIZE, the total RAM size):
 *
 *   63                                   12 11        0
 *   +--------------------------------------+-----------+
 *   | page offset in the block             |   flags   |      be64 header
 *   +--------------------------------------+-----------+
 *
 *   flags: 0x002 ZERO   0x004 MEM_SIZE   0x008 PAGE   0x010 EOS   0x020 CONTINUE
 *          0x040 XBZRLE 0x080 HOOK       0x100 COMPRESS_PAGE      0x200 MULTIFD_FLUSH
 *
 * A page record (ZERO, PAGE, XBZRLE, COMPRESS_PAGE) without CONTINUE names its block next, and
 * later records with CONTINUE mean the same block:
 *   +--------+------------+
 *   | u8 n   | n bytes    |   block name (counted string)
 *   +--------+------------+
 * then its payload:
 *   ZERO           u8 fill byte (0 in practice: the page is all that byte)
 *   PAGE           the page, target page size bytes
 *   XBZRLE         u8 encoding (1), be16 length, that many bytes of delta against the last copy sent
 *   COMPRESS_PAGE  be32 length, that many bytes of one zlib stream of the page
 *
 * MEM_SIZE: the header's high bits are the total; then one entry per block until the lengths add
 * up to it (page size only when postcopy's ADVISE said page sizes differ, address only with the
 * x-ignore-shared capability):
 *   +------+--------+----------------+-----------------+---------------+
 *   | u8 n | name   | be64 used len  | [be64 page size]| [be64 address]|
 *   +------+--------+----------------+-----------------+---------------+
 *
 * EOS ends the section's body; MULTIFD_FLUSH (later QEMUs) is a header alone.
 * </pre>
 *
 * <p>Reading is flyweight: one instance per reader holds the record just read
 * ({@link #readHeader}), whose payload the caller then reads through it into wherever the page
 * goes. The caller decides what a record means (which flags it takes, which blocks exist, whether
 * an offset is in range) and says what is wrong in its own terms; this class only frames. Writing
 * is static. Names are ISO-8859-1 text, as in {@link SectionHeader}.
 *
 * <p>Not thread-safe: a reader belongs to the thread reading its stream.
 */
public final class RamPageRecord {
    public static final int FLAG_FULL = 0x001;
    public static final int FLAG_ZERO = 0x002;
    public static final int FLAG_MEM_SIZE = 0x004;
    public static final int FLAG_PAGE = 0x008;
    public static final int FLAG_EOS = 0x010;
    public static final int FLAG_CONTINUE = 0x020;
    public static final int FLAG_XBZRLE = 0x040;
    public static final int FLAG_HOOK = 0x080;
    public static final int FLAG_COMPRESS_PAGE = 0x100;
    public static final int FLAG_MULTIFD_FLUSH = 0x200;

    /** Bytes of a ZERO record that continues its block: the header and the fill byte. */
    public static final int ZERO_RECORD_BYTES = 9;

    /** What a record is, by its flags without CONTINUE; {@link #INVALID} for any other mix. */
    public enum Kind { MEM_SIZE, ZERO, PAGE, XBZRLE, COMPRESS_PAGE, EOS, MULTIFD_FLUSH, HOOK, INVALID }

    /** One MEM_SIZE entry; {@code pageSize} and {@code mrAddr} are null when absent. */
    public record BlockEntry(String name, long usedLength, Long pageSize, Long mrAddr) {}

    private final int pageSize;
    private long at;
    private long header;

    /** A reader for streams of this target page size (4096 for livemig and x86). */
    public RamPageRecord(int pageSize) {
        if (Integer.bitCount(pageSize) != 1) {
            throw new IllegalArgumentException("page size " + pageSize + " is not a power of two");
        }
        this.pageSize = pageSize;
    }

    // ---------------------------------------------------------------- reading

    /** Reads the next record's be64 header. */
    public void readHeader(MigrationFile f) throws IOException {
        at = f.position();
        header = f.getBe64();
    }

    /** Stream offset of the record just read. */
    public long at() {
        return at;
    }

    /** The be64 header as on the wire. */
    public long header() {
        return header;
    }

    public int flags() {
        return (int) (header & (pageSize - 1));
    }

    /** The page's offset in its block; for MEM_SIZE, the total size of RAM. */
    public long address() {
        return header & -(long) pageSize;
    }

    /** True when a page record means the block of the record before it. */
    public boolean continues() {
        return (header & FLAG_CONTINUE) != 0;
    }

    public Kind kind() {
        return kindOf(flags() & ~FLAG_CONTINUE);
    }

    /** The kind of a record whose flags, CONTINUE aside, are {@code flags}. */
    public static Kind kindOf(int flags) {
        return switch (flags) {
            case FLAG_MEM_SIZE -> Kind.MEM_SIZE;
            case FLAG_ZERO -> Kind.ZERO;
            case FLAG_PAGE -> Kind.PAGE;
            case FLAG_XBZRLE -> Kind.XBZRLE;
            case FLAG_COMPRESS_PAGE -> Kind.COMPRESS_PAGE;
            case FLAG_EOS -> Kind.EOS;
            case FLAG_MULTIFD_FLUSH -> Kind.MULTIFD_FLUSH;
            case FLAG_HOOK -> Kind.HOOK;
            default -> Kind.INVALID;
        };
    }

    /** A page record's block name, which follows its header unless it {@link #continues}. */
    public String readBlockName(MigrationFile f) throws IOException {
        return SectionHeader.readName(f);
    }

    /** A ZERO record's fill byte. */
    public int readFill(MigrationFile f) throws IOException {
        return f.getByte();
    }

    /** A PAGE record's page, into {@code dst} at {@code offset}. */
    public void readPage(MigrationFile f, MemorySegment dst, long offset) throws IOException {
        f.readInto(dst, offset, pageSize);
    }

    /**
     * After a ZERO record: takes the zero records that follow it for the next pages of the same
     * block, as many as the file has buffered and at most {@code max}, without reading more. Each
     * must continue the block, be the next page and have fill 0; the first that is not (or is not
     * wholly buffered) stops the run, and is read as a record of its own. Returns how many were
     * taken. The first pass over never-written RAM is a quarter of a million of these a GiB.
     */
    public int takeZeroRun(MigrationFile f, int max) throws IOException {
        long next = (address() + pageSize) | FLAG_ZERO | FLAG_CONTINUE;
        int n = Math.min(max, f.buffered() / ZERO_RECORD_BYTES);
        int taken = 0;
        int off = 0;
        while (taken < n && f.peekBufferedBe64(off) == next && f.peekBufferedByte(off + 8) == 0) {
            next += pageSize;
            off += ZERO_RECORD_BYTES;
            taken++;
        }
        f.skip(off);
        return taken;
    }

    /** An XBZRLE record's encoding byte, read before its length. */
    public int readXbzrleEncoding(MigrationFile f) throws IOException {
        return f.getByte();
    }

    /** An XBZRLE record's delta length, read after its encoding byte. */
    public int readXbzrleLength(MigrationFile f) throws IOException {
        return f.getBe16();
    }

    /** A COMPRESS_PAGE record's payload length (unsigned). */
    public long readCompressedLength(MigrationFile f) throws IOException {
        return f.getBe32() & 0xFFFF_FFFFL;
    }

    /**
     * One MEM_SIZE entry. Whether a page size follows the used length is not in the stream: QEMU
     * sends one when postcopy's ADVISE announced page sizes that differ, which a reader of an
     * unknown stream can only tell by its value; {@code isPageSize} is asked about the be64 after
     * the used length (null: never). {@code withAddress} says whether an address follows
     * (x-ignore-shared).
     */
    public static BlockEntry readBlockEntry(MigrationFile f, java.util.function.LongPredicate isPageSize,
            boolean withAddress) throws IOException {
        String name = SectionHeader.readName(f);
        long used = f.getBe64();
        Long blockPageSize = null;
        if (isPageSize != null && isPageSize.test(peekBe64(f))) {
            blockPageSize = f.getBe64();
        }
        Long addr = withAddress ? f.getBe64() : null;
        return new BlockEntry(name, used, blockPageSize, addr);
    }

    /** The next be64 without reading it, or 0 when fewer than 8 bytes are left. */
    private static long peekBe64(MigrationFile f) throws IOException {
        long v = 0;
        for (int i = 0; i < 8; i++) {
            int b = f.peekByte(i);
            if (b < 0) {
                return 0;
            }
            v = v << 8 | b;
        }
        return v;
    }

    // ---------------------------------------------------------------- writing

    /** The MEM_SIZE record: the total, then each block's name and length (and the optional fields). */
    public static void writeMemSize(MigrationFile f, long total, Iterable<BlockEntry> blocks) throws IOException {
        f.putBe64(total | FLAG_MEM_SIZE);
        for (BlockEntry b : blocks) {
            writeBlockEntry(f, b);
        }
    }

    /** One MEM_SIZE entry (what follows it, such as mapped-ram's header, is the caller's). */
    public static void writeBlockEntry(MigrationFile f, BlockEntry b) throws IOException {
        SectionHeader.writeName(f, b.name());
        f.putBe64(b.usedLength());
        if (b.pageSize() != null) {
            f.putBe64(b.pageSize());
        }
        if (b.mrAddr() != null) {
            f.putBe64(b.mrAddr());
        }
    }

    /**
     * A page record's header: offset and kind flag, CONTINUE when {@code block} is null, else the
     * block name after it. The payload is the caller's to write next.
     */
    public static void writePageHeader(MigrationFile f, long offset, int kindFlag, String block) throws IOException {
        f.putBe64(offset | kindFlag | (block == null ? FLAG_CONTINUE : 0));
        if (block != null) {
            SectionHeader.writeName(f, block);
        }
    }

    /**
     * A PAGE record whose payload is {@code length} bytes of {@code ram} at {@code ramOffset},
     * queued without a copy ({@link MigrationFile#putRam}).
     */
    public static void writePage(MigrationFile f, long offset, String block, MemorySegment ram, long ramOffset,
            int length) throws IOException {
        writePageHeader(f, offset, FLAG_PAGE, block);
        f.putRam(ram, ramOffset, length);
    }

    /** A ZERO record. */
    public static void writeZero(MigrationFile f, long offset, String block, int fill) throws IOException {
        writePageHeader(f, offset, FLAG_ZERO, block);
        f.putByte(fill);
    }

    /**
     * {@code count} ZERO records (fill 0) that continue their block, for consecutive pages from
     * {@code firstOffset}: the sender's half of {@link #takeZeroRun}.
     */
    public static void writeZeroRun(MigrationFile f, long firstOffset, int pageSize, int count) throws IOException {
        long h = firstOffset | FLAG_ZERO | FLAG_CONTINUE;
        for (int i = 0; i < count; i++) {
            f.putBe64(h);
            f.putByte(0);
            h += pageSize;
        }
    }

    /** An XBZRLE record with {@code length} bytes of {@code delta}. */
    public static void writeXbzrle(MigrationFile f, long offset, String block, byte[] delta, int length)
            throws IOException {
        writePageHeader(f, offset, FLAG_XBZRLE, block);
        XbzrleCodec.putPayload(f, delta, length);
    }

    /** A COMPRESS_PAGE record with {@code length} bytes of zlib stream. */
    public static void writeCompressed(MigrationFile f, long offset, String block, byte[] zlib, int length)
            throws IOException {
        writePageHeader(f, offset, FLAG_COMPRESS_PAGE, block);
        f.putBe32(length);
        f.putBytes(zlib, 0, length);
    }

    /** Bytes before a COMPRESS_PAGE record's deflated data: be64 header, be32 length. */
    public static final int COMPRESSED_PREFIX_BYTES = 12;

    /**
     * Encodes a CONTINUE record into {@code into} at 0, for a thread that builds records apart
     * from the stream (the compress threads): a ZERO record (header, fill 0) when {@code zero},
     * else a COMPRESS_PAGE record whose {@code compressedLength} bytes of data the caller has put
     * at {@link #COMPRESSED_PREFIX_BYTES}. Returns the record's length.
     */
    public static int encodeContinued(byte[] into, long offset, boolean zero, int compressedLength) {
        ByteBuffer b = ByteBuffer.wrap(into); // big-endian, as the stream
        b.putLong(offset | (zero ? FLAG_ZERO : FLAG_COMPRESS_PAGE) | FLAG_CONTINUE);
        if (zero) {
            b.put((byte) 0);
            return 9;
        }
        b.putInt(compressedLength);
        return COMPRESSED_PREFIX_BYTES + compressedLength;
    }

    /** The end of the section's body. */
    public static void writeEos(MigrationFile f) throws IOException {
        f.putBe64(FLAG_EOS);
    }
}
