package org.livemig.stream;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.livemig.stream.ReturnPathMessage.Pong;
import org.livemig.stream.ReturnPathMessage.RecvBitmap;
import org.livemig.stream.ReturnPathMessage.ReqPages;
import org.livemig.stream.ReturnPathMessage.ReqPagesId;
import org.livemig.stream.ReturnPathMessage.ResumeAck;
import org.livemig.stream.ReturnPathMessage.Shut;
import org.livemig.stream.ReturnPathMessage.SwitchoverAck;

/**
 * Reads and writes {@link ReturnPathMessage}s; stateless, called by whichever thread owns the
 * {@link MigrationFile}. Knows nothing of the transport: the caller owns
 * the {@link MigrationFile} (the source's {@code mig/src/rp_thr} reads, the destination's
 * writers write under their own lock) and flushes it.
 * <pre>
 *  0        2        4
 *  +--------+--------+---------------------+
 *  |type be16|len be16| payload[len]       |   len &lt;= {@link #MAX_PAYLOAD}
 *  +--------+--------+---------------------+
 *  RECV_BITMAP only: be64 size, size bytes of bitmap, be64 end mark, after the payload
 * </pre>
 * Every field is checked; bad input fails with a {@link StreamFormatException} naming the byte
 * offset, which also becomes the file's sticky error. Nothing is allocated beyond
 * {@link #MAX_PAYLOAD} bytes, or the checked bitmap size.
 */
public final class ReturnPathCodec {
    public static final int TYPE_OFFSET = 0;
    public static final int LENGTH_OFFSET = 2;
    public static final int HEADER_LENGTH = 4;
    /** Longest payload the source accepts (QEMU's return-path buffer). */
    public static final int MAX_PAYLOAD = 512;
    /** Ends the bitmap after a RECV_BITMAP message. */
    public static final long RECV_BITMAP_END_MARK = 0x0123456789ABCDEFL;
    /** Largest bitmap read by default: 64 MiB, a 2 TiB block of 4 KiB pages. */
    public static final long MAX_RECV_BITMAP_BYTES = 64L << 20;

    private static final int BITMAP_CHUNK = 64 * 1024;

    private ReturnPathCodec() {}

    /** QEMU's name of a return-path message type. */
    public static String typeName(int type) {
        return switch (type) {
            case QemuStream.RP_INVALID -> "INVALID";
            case QemuStream.RP_SHUT -> "SHUT";
            case QemuStream.RP_PONG -> "PONG";
            case QemuStream.RP_REQ_PAGES_ID -> "REQ_PAGES_ID";
            case QemuStream.RP_REQ_PAGES -> "REQ_PAGES";
            case QemuStream.RP_RECV_BITMAP -> "RECV_BITMAP";
            case QemuStream.RP_RESUME_ACK -> "RESUME_ACK";
            case QemuStream.RP_SWITCHOVER_ACK -> "SWITCHOVER_ACK";
            default -> "UNKNOWN(" + type + ")";
        };
    }

    /** Writes one message (and, for RECV_BITMAP, its bitmap). Does not flush. */
    public static void write(MigrationFile f, ReturnPathMessage m) throws IOException {
        switch (m) {
            case Shut s -> {
                header(f, m, Shut.LENGTH);
                f.putBe32(s.status());
            }
            case Pong p -> {
                header(f, m, Pong.LENGTH);
                f.putBe32(p.value());
            }
            case ReqPagesId r -> {
                byte[] name = Wire.encodeName("REQ_PAGES_ID", r.block());
                header(f, m, ReqPagesId.FIXED_LENGTH + name.length);
                f.putBe64(r.start());
                f.putBe32((int) r.length());
                f.putByte(name.length);
                f.putBytes(name);
            }
            case ReqPages r -> {
                header(f, m, ReqPages.LENGTH);
                f.putBe64(r.start());
                f.putBe32((int) r.length());
            }
            case RecvBitmap r -> {
                byte[] name = Wire.encodeName("RECV_BITMAP", r.block());
                header(f, m, 1 + name.length);
                f.putByte(name.length);
                f.putBytes(name);
                writeBitmap(f, r.words());
            }
            case ResumeAck a -> {
                header(f, m, ResumeAck.LENGTH);
                f.putBe32(ResumeAck.VALUE);
            }
            case SwitchoverAck a -> header(f, m, SwitchoverAck.LENGTH);
        }
    }

    private static void header(MigrationFile f, ReturnPathMessage m, int length) throws IOException {
        f.putBe16(m.type());
        f.putBe16(length);
    }

    private static void writeBitmap(MigrationFile f, long[] words) throws IOException {
        f.putBe64(8L * words.length);
        ByteBuffer chunk = ByteBuffer.allocate(Math.min(BITMAP_CHUNK, 8 * Math.max(1, words.length)))
                .order(ByteOrder.LITTLE_ENDIAN);
        int i = 0;
        while (i < words.length) {
            chunk.clear();
            while (i < words.length && chunk.remaining() >= 8) {
                chunk.putLong(words[i++]);
            }
            f.putBytes(chunk.array(), 0, chunk.position());
        }
        f.putBe64(RECV_BITMAP_END_MARK);
    }

    /** Reads one message, with a RECV_BITMAP's bitmap of at most {@link #MAX_RECV_BITMAP_BYTES}. */
    public static ReturnPathMessage read(MigrationFile f) throws IOException {
        return read(f, MAX_RECV_BITMAP_BYTES);
    }

    /**
     * Reads one message. {@code maxBitmapBytes} bounds a RECV_BITMAP's bitmap (the source knows
     * the block, so it may pass the exact size it expects as the bound).
     */
    public static ReturnPathMessage read(MigrationFile f, long maxBitmapBytes) throws IOException {
        long at = f.position();
        int type = f.getBe16();
        int len = f.getBe16();
        String name = typeName(type);
        if (type == QemuStream.RP_INVALID || type > QemuStream.RP_SWITCHOVER_ACK) {
            throw Wire.fail(f, "return-path message of unknown type " + type + " (length " + len + ")", at);
        }
        if (len > MAX_PAYLOAD) {
            throw Wire.fail(f, "return-path " + name + " of " + len + " bytes, longer than " + MAX_PAYLOAD,
                    at + LENGTH_OFFSET);
        }
        long p0 = at + HEADER_LENGTH;
        return switch (type) {
            case QemuStream.RP_SHUT -> {
                expect(f, name, len, Shut.LENGTH, at);
                yield new Shut(f.getBe32());
            }
            case QemuStream.RP_PONG -> {
                expect(f, name, len, Pong.LENGTH, at);
                yield new Pong(f.getBe32());
            }
            case QemuStream.RP_REQ_PAGES -> {
                expect(f, name, len, ReqPages.LENGTH, at);
                long start = f.getBe64();
                long length = f.getBe32() & 0xFFFF_FFFFL;
                checkStart(f, name, start, p0);
                yield new ReqPages(start, length);
            }
            case QemuStream.RP_REQ_PAGES_ID -> {
                if (len < ReqPagesId.FIXED_LENGTH + 1) {
                    throw Wire.fail(f, name + " has length " + len + ", expected " + ReqPagesId.FIXED_LENGTH
                            + " + block name length (at least 1)", at + LENGTH_OFFSET);
                }
                byte[] p = Wire.payload(f, len);
                int n = p[ReqPagesId.NAME_OFFSET] & 0xFF;
                if (len != ReqPagesId.FIXED_LENGTH + n) {
                    throw Wire.fail(f, name + " has length " + len + " but its block name is " + n
                            + " bytes (expected length " + (ReqPagesId.FIXED_LENGTH + n) + ")", at + LENGTH_OFFSET);
                }
                long start = Wire.be64(p, ReqPagesId.START_OFFSET);
                checkStart(f, name, start, p0);
                String block = Wire.decodeName(f, name, p, ReqPagesId.NAME_OFFSET + 1, n, p0);
                yield new ReqPagesId(block, start, Wire.be32(p, ReqPagesId.LENGTH_OFFSET));
            }
            case QemuStream.RP_RECV_BITMAP -> {
                if (len < 2) {
                    throw Wire.fail(f, name + " has length " + len + ", expected 1 + block name length (at least 1)",
                            at + LENGTH_OFFSET);
                }
                byte[] p = Wire.payload(f, len);
                int n = p[RecvBitmap.NAME_OFFSET] & 0xFF;
                if (len != 1 + n) {
                    throw Wire.fail(f, name + " has length " + len + " but its block name is " + n
                            + " bytes (expected length " + (1 + n) + ")", at + LENGTH_OFFSET);
                }
                String block = Wire.decodeName(f, name, p, 1, n, p0);
                yield new RecvBitmap(block, readBitmap(f, block, maxBitmapBytes));
            }
            case QemuStream.RP_RESUME_ACK -> {
                expect(f, name, len, ResumeAck.LENGTH, at);
                int v = f.getBe32();
                if (v != ResumeAck.VALUE) {
                    throw Wire.fail(f, name + " value " + Integer.toUnsignedString(v) + ", expected "
                            + ResumeAck.VALUE, p0);
                }
                yield new ResumeAck();
            }
            case QemuStream.RP_SWITCHOVER_ACK -> {
                expect(f, name, len, SwitchoverAck.LENGTH, at);
                yield new SwitchoverAck();
            }
            default -> throw new AssertionError(type);
        };
    }

    private static void expect(MigrationFile f, String name, int len, int want, long at) throws StreamFormatException {
        if (len != want) {
            throw Wire.fail(f, "return-path " + name + " has length " + len + ", expected " + want,
                    at + LENGTH_OFFSET);
        }
    }

    private static void checkStart(MigrationFile f, String name, long start, long p0) throws StreamFormatException {
        if (start < 0) {
            throw Wire.fail(f, name + " start " + Long.toUnsignedString(start) + " is beyond any block", p0);
        }
    }

    private static long[] readBitmap(MigrationFile f, String block, long maxBytes) throws IOException {
        long at = f.position();
        long size = f.getBe64();
        if (size < 0 || size > maxBytes || size > 8L * (Integer.MAX_VALUE - 8)) {
            throw Wire.fail(f, "RECV_BITMAP of block " + block + ": bitmap size " + Long.toUnsignedString(size)
                    + " bytes is beyond the limit of " + maxBytes, at);
        }
        if (size % 8 != 0) {
            throw Wire.fail(f, "RECV_BITMAP of block " + block + ": bitmap size " + size
                    + " bytes is not a multiple of 8", at);
        }
        long[] words = new long[(int) (size / 8)];
        byte[] chunk = new byte[(int) Math.min(BITMAP_CHUNK, size)];
        ByteBuffer le = ByteBuffer.wrap(chunk).order(ByteOrder.LITTLE_ENDIAN);
        int w = 0;
        while (w < words.length) {
            int n = Math.min(chunk.length / 8, words.length - w);
            f.getBytes(chunk, 0, n * 8);
            le.clear();
            for (int i = 0; i < n; i++) {
                words[w++] = le.getLong();
            }
        }
        long markAt = f.position();
        long mark = f.getBe64();
        if (mark != RECV_BITMAP_END_MARK) {
            throw Wire.fail(f, String.format("RECV_BITMAP of block %s: end mark 0x%016x, expected 0x%016x",
                    block, mark, RECV_BITMAP_END_MARK), markAt);
        }
        return words;
    }

    /** The bytes of one message, for tests and logs. */
    static byte[] toBytes(ReturnPathMessage m) throws IOException {
        MigrationFile f = MigrationFile.toMemory();
        write(f, m);
        return f.toByteArray();
    }
}
