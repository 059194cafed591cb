package org.livemig.stream;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * QEMU 7.2's multifd wire format (qemu-stream-format.md §8): the 64-byte initial packet each
 * multifd channel starts with, and the header of each page packet, whose page data follows it.
 *
 * <p>Header layout, big-endian: magic, version, flags, pages_alloc, normal_pages,
 * next_packet_size (be32 each), packet_num (be64), four reserved be64, the block's idstr in
 * 256 NUL-padded bytes, then pages_alloc be64 page offsets of which the first normal_pages
 * count. QEMU 7.2 also sends packets with no pages whose other fields are stale; a reader looks
 * at the block and offsets only when {@code normalPages > 0}.
 *
 * <p>Device-state packets (QEMU 10's MultiFDPacketDeviceState_t, flag
 * {@link #FLAG_DEVICE_STATE}) travel on the same channels: a device's opaque state for the
 * destination's device to load, in place of page offsets and pages.
 * <pre>
 *  0      4        8      12             268           272              276
 *  +------+--------+------+--------------+-------------+----------------+----------------------+
 *  |magic |version |flags | idstr[256]   | instance_id | next_packet_   | data[next_packet_    |
 *  |      |   1    | 0x40 | NUL-padded   |   be32      |  size be32     |  size]               |
 *  +------+--------+------+--------------+-------------+----------------+----------------------+
 * </pre>
 * A reader that takes only RAM ({@link #readHeader}) refuses the flag as an unknown bit, as QEMU
 * 7.2 does; {@link #readPacket} takes both kinds.
 */
public final class MultifdPacket {
    public static final int MAGIC = 0x11223344;
    public static final int VERSION = 1;
    /** The packet ends a sync round: the receiver reports it and waits for the main channel. */
    public static final int FLAG_SYNC = 1;
    /** Bits 1..3: compression; 0 none, 2 zlib, 4 zstd. */
    public static final int FLAG_COMPRESSION_MASK = 0xE;
    public static final int FLAG_ZLIB = 1 << 1;
    public static final int FLAG_ZSTD = 2 << 1;
    /** The packet carries a device's state, not pages (QEMU 10's MULTIFD_FLAG_DEVICE_STATE, {@code 32 << 1}). */
    public static final int FLAG_DEVICE_STATE = 32 << 1;
    /** Bytes of a device-state packet's header: magic, version, flags, idstr, instance id, size. */
    public static final int DEVICE_STATE_HEADER_BYTES = 3 * 4 + 256 + 4 + 4;
    public static final int DEVICE_STATE_IDSTR_OFFSET = 12;
    public static final int DEVICE_STATE_INSTANCE_OFFSET = 268;
    public static final int DEVICE_STATE_SIZE_OFFSET = 272;
    /** Offset slots per packet in QEMU 7.2: 512 KiB of 4 KiB pages. */
    public static final int PAGES_PER_PACKET = 128;
    public static final int INIT_PACKET_BYTES = 64;
    public static final int IDSTR_BYTES = 256;
    /** Header bytes before the offset list. */
    public static final int FIXED_HEADER_BYTES = 6 * 4 + 8 + 4 * 8 + IDSTR_BYTES;

    private MultifdPacket() {}

    /** Bytes of a header with {@code pagesAlloc} offset slots. */
    public static int headerBytes(int pagesAlloc) {
        return FIXED_HEADER_BYTES + 8 * pagesAlloc;
    }

    /** Writes a channel's initial packet: magic, version, the VM's 16-byte UUID, the channel id. */
    public static void writeInit(MigrationFile f, byte[] uuid, int channelId) throws IOException {
        if (uuid.length != 16) {
            throw new IllegalArgumentException("uuid must be 16 bytes, not " + uuid.length);
        }
        if (channelId < 0 || channelId > 255) {
            throw new IllegalArgumentException("channel id must be 0..255, not " + channelId);
        }
        f.putBe32(MAGIC);
        f.putBe32(VERSION);
        f.putBytes(uuid);
        f.putByte(channelId);
        f.putBytes(new byte[7 + 4 * 8]);
    }

    /** A channel's initial packet as read. */
    public record Init(byte[] uuid, int channelId) {}

    /**
     * Reads and checks a channel's initial packet.
     *
     * @throws StreamFormatException on a wrong magic or version, naming the value and offset
     */
    public static Init readInit(MigrationFile f) throws IOException {
        readMagicAndVersion(f, "multifd channel: initial packet");
        byte[] uuid = f.getBytes(16);
        int id = f.getByte();
        f.skip(7 + 4 * 8);
        return new Init(uuid, id);
    }

    /** Reads and checks the magic and version that start both kinds of packet. */
    private static void readMagicAndVersion(MigrationFile f, String what) throws IOException {
        long at = f.position();
        int magic = f.getBe32();
        if (magic != MAGIC) {
            throw new StreamFormatException(String.format("%s magic 0x%08x, expected 0x%08x", what, magic, MAGIC), at);
        }
        int version = f.getBe32();
        if (version != VERSION) {
            throw new StreamFormatException(what + " version " + version + ", expected " + VERSION, at + 4);
        }
    }

    /**
     * Writes a page packet's header; {@code offsets} holds {@code normalPages} page offsets within
     * {@code block}, and the slots up to {@code pagesAlloc} are sent as zero.
     */
    public static void writeHeader(MigrationFile f, int flags, int pagesAlloc, long packetNum, String block,
                                   long[] offsets, int normalPages, int pageSize) throws IOException {
        writeHeaderWithDataSize(f, flags, pagesAlloc, packetNum, block, offsets, normalPages, normalPages * pageSize);
    }

    /**
     * As {@link #writeHeader}, for a packet whose data is not its pages verbatim: compressed data
     * of {@code nextPacketSize} bytes follows (see {@link MultifdCompression}).
     */
    public static void writeHeaderWithDataSize(MigrationFile f, int flags, int pagesAlloc, long packetNum, String block,
                                               long[] offsets, int normalPages, int nextPacketSize) throws IOException {
        if (normalPages > pagesAlloc || normalPages > offsets.length) {
            throw new IllegalArgumentException(normalPages + " pages do not fit " + pagesAlloc + " slots");
        }
        f.putBe32(MAGIC);
        f.putBe32(VERSION);
        f.putBe32(flags);
        f.putBe32(pagesAlloc);
        f.putBe32(normalPages);
        f.putBe32(nextPacketSize);
        f.putBe64(packetNum);
        for (int i = 0; i < 4; i++) {
            f.putBe64(0);
        }
        byte[] name = new byte[IDSTR_BYTES];
        if (block != null) {
            byte[] b = block.getBytes(StandardCharsets.UTF_8);
            if (b.length >= IDSTR_BYTES) {
                throw new IllegalArgumentException("block name too long for a multifd packet: " + block);
            }
            System.arraycopy(b, 0, name, 0, b.length);
        }
        f.putBytes(name);
        for (int i = 0; i < pagesAlloc; i++) {
            f.putBe64(i < normalPages ? offsets[i] : 0);
        }
    }

    /** What a channel reads next: a page packet's header, or a device-state packet's. */
    public sealed interface Packet permits Header, DeviceStateHeader {
        /** Offset of the packet's first byte in its channel. */
        long at();
    }

    /** A page packet's header as read; {@code block} and {@code offsets} mean something only with pages. */
    public record Header(long at, int flags, int pagesAlloc, int normalPages, int nextPacketSize, long packetNum,
                         String block, long[] offsets) implements Packet {
        public boolean sync() {
            return (flags & FLAG_SYNC) != 0;
        }

        public int compression() {
            return flags & FLAG_COMPRESSION_MASK;
        }
    }

    /**
     * Reads a page packet's header, checking what can be checked without knowing the RAM: magic,
     * version, flags, counts within {@code maxPagesAlloc} slots, and for uncompressed data that
     * {@code next_packet_size} is exactly the pages' bytes.
     *
     * @throws StreamFormatException naming the field, its value and the packet's offset
     */
    public static Header readHeader(MigrationFile f, int maxPagesAlloc, int pageSize) throws IOException {
        long at = f.position();
        readMagicAndVersion(f, "multifd packet");
        return readPageHeader(f, at, f.getBe32(), maxPagesAlloc, pageSize);
    }

    /**
     * Reads the next packet's header, of either kind: a page packet's as {@link #readHeader}, or
     * a device-state packet's, whose data ({@code size} bytes) the caller reads next. A
     * device-state packet must have no other flag (QEMU sends it uncompressed and never with
     * SYNC), a NUL-terminated idstr and a size of at most {@code maxDeviceStateBytes}.
     *
     * @throws StreamFormatException naming the field, its value and the packet's offset
     */
    public static Packet readPacket(MigrationFile f, int maxPagesAlloc, int pageSize, int maxDeviceStateBytes)
            throws IOException {
        long at = f.position();
        readMagicAndVersion(f, "multifd packet");
        int flags = f.getBe32();
        if ((flags & FLAG_DEVICE_STATE) == 0) {
            return readPageHeader(f, at, flags, maxPagesAlloc, pageSize);
        }
        if (flags != FLAG_DEVICE_STATE) {
            throw new StreamFormatException(String.format("multifd device-state packet flags 0x%x: only 0x%x"
                    + " (device state, uncompressed, no SYNC) is valid", flags, FLAG_DEVICE_STATE), at + 8);
        }
        byte[] name = f.getBytes(IDSTR_BYTES);
        int len = 0;
        while (len < IDSTR_BYTES && name[len] != 0) {
            len++;
        }
        if (len == 0 || len == IDSTR_BYTES) {
            throw new StreamFormatException("multifd device-state packet idstr is "
                    + (len == 0 ? "empty" : "not NUL-terminated"), at + DEVICE_STATE_IDSTR_OFFSET);
        }
        String idstr = new String(name, 0, len, StandardCharsets.UTF_8);
        int instance = f.getBe32();
        int size = f.getBe32();
        if (size < 0 || size > maxDeviceStateBytes) {
            throw new StreamFormatException("multifd device-state packet for '" + idstr + "' instance "
                    + Integer.toUnsignedString(instance) + " says " + Integer.toUnsignedString(size)
                    + " data bytes follow, more than the " + maxDeviceStateBytes + " allowed", at + DEVICE_STATE_SIZE_OFFSET);
        }
        return new DeviceStateHeader(at, idstr, instance, size);
    }

    /** A device-state packet's header as read: whose state it is, and how many bytes of it follow. */
    public record DeviceStateHeader(long at, String idstr, int instanceId, int size) implements Packet {}

    /** A device's state for one device-state packet, written by a channel thread straight after the header. */
    public interface DeviceStatePayload {
        /** Bytes {@link #write} puts (the packet's next_packet_size). */
        int size();

        /** Writes exactly {@link #size} bytes; called on a multifd channel thread, without the BQL. */
        void write(MigrationFile f) throws IOException;
    }

    /** Writes a device-state packet's header; {@code size} bytes of the device's data must follow. */
    public static void writeDeviceStateHeader(MigrationFile f, String idstr, int instanceId, int size)
            throws IOException {
        byte[] b = idstr.getBytes(StandardCharsets.UTF_8);
        if (b.length == 0 || b.length >= IDSTR_BYTES) {
            throw new IllegalArgumentException("idstr of a device-state packet must be 1..255 bytes: " + idstr);
        }
        if (size < 0) {
            throw new IllegalArgumentException("negative device-state size " + size);
        }
        f.putBe32(MAGIC);
        f.putBe32(VERSION);
        f.putBe32(FLAG_DEVICE_STATE);
        byte[] name = new byte[IDSTR_BYTES];
        System.arraycopy(b, 0, name, 0, b.length);
        f.putBytes(name);
        f.putBe32(instanceId);
        f.putBe32(size);
    }

    private static Header readPageHeader(MigrationFile f, long at, int flags, int maxPagesAlloc, int pageSize)
            throws IOException {
        if ((flags & ~(FLAG_SYNC | FLAG_COMPRESSION_MASK)) != 0) {
            throw new StreamFormatException(String.format("multifd packet flags 0x%x: unknown bits", flags), at + 8);
        }
        int pagesAlloc = f.getBe32();
        if (pagesAlloc < 0 || pagesAlloc > maxPagesAlloc) {
            throw new StreamFormatException("multifd packet with " + Integer.toUnsignedString(pagesAlloc)
                    + " page slots, at most " + maxPagesAlloc + " expected", at + 12);
        }
        int normalPages = f.getBe32();
        if (normalPages < 0 || normalPages > pagesAlloc) {
            throw new StreamFormatException("multifd packet with " + Integer.toUnsignedString(normalPages)
                    + " pages in " + pagesAlloc + " slots", at + 16);
        }
        int nextPacketSize = f.getBe32();
        long packetNum = f.getBe64();
        f.skip(4 * 8);
        byte[] name = f.getBytes(IDSTR_BYTES);
        long[] offsets = new long[normalPages];
        for (int i = 0; i < pagesAlloc; i++) {
            long off = f.getBe64();
            if (i < normalPages) {
                offsets[i] = off;
            }
        }
        String block = null;
        if (normalPages > 0) {
            int len = 0;
            while (len < IDSTR_BYTES && name[len] != 0) {
                len++;
            }
            if (len == IDSTR_BYTES) {
                throw new StreamFormatException("multifd packet block name is not NUL-terminated", at + 64);
            }
            block = new String(Arrays.copyOf(name, len), StandardCharsets.UTF_8);
            if ((flags & FLAG_COMPRESSION_MASK) == 0 && (long) normalPages * pageSize != Integer.toUnsignedLong(nextPacketSize)) {
                throw new StreamFormatException("multifd packet of " + normalPages + " pages says "
                        + Integer.toUnsignedString(nextPacketSize) + " data bytes follow, expected "
                        + (long) normalPages * pageSize, at + 20);
            }
        }
        return new Header(at, flags, pagesAlloc, normalPages, nextPacketSize, packetNum, block, offsets);
    }
}
