package org.livemig.stream;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.util.zip.CRC32C;

/**
 * The wire layout of an accelerator's state (livemig's iterative device; the layout is
 * livemig's, made in the manner of QEMU's VFIO sections). Stateless codec.
 *
 * <p>Section bodies (START, PART, END, each followed by the section footer) are runs of records,
 * each led by a be64 marker and ended by {@link #END_OF_STATE}:
 * <pre>
 *  SETUP          | be64 memory size | be32 chunk size |                           START
 *  DATA           | be64 offset | be32 length | be32 crc32c | data[length] |       PART, END
 *  INIT_DATA_SENT |                                                                PART: the first pass is out
 *  MULTIFD        | be32 packets |      END: the final state follows on the multifd channels
 *  CONFIG         | the device's VMSD body |                                       END, without multifd
 *  END_OF_STATE
 * </pre>
 * A device-state packet's data (QEMU 10's MultiFDPacketDeviceState_t carries it, see
 * {@link MultifdPacket}) is, like VFIO's VFIODeviceStatePacket, a small header and the state:
 * <pre>
 *  0          4      8        12
 *  +----------+------+--------+-----------------------------------------------------------+
 *  |version 1 | idx  | flags  | DATA records without their marker, to the end, or         |
 *  |  be32    | be32 | be32   | with flags CONFIG (1): the VMSD body; idx = data packets  |
 *  +----------+------+--------+-----------------------------------------------------------+
 * </pre>
 * Each chunk carries a CRC-32C of its bytes, so that a chunk damaged on the way is refused
 * rather than loaded (QEMU's device data has no checksum; a device's memory has no other check).
 * Every field is checked before any byte of device memory is written.
 */
public final class AcceleratorState {
    private static final long MARKER_BASE = 0xffffffff_ac000000L;
    public static final long END_OF_STATE = MARKER_BASE | 1;
    public static final long SETUP = MARKER_BASE | 2;
    public static final long DATA = MARKER_BASE | 3;
    public static final long INIT_DATA_SENT = MARKER_BASE | 4;
    public static final long MULTIFD = MARKER_BASE | 5;
    public static final long CONFIG = MARKER_BASE | 6;

    /** Bytes of a DATA record before its data, marker included. */
    public static final int DATA_RECORD_HEADER_BYTES = 8 + 8 + 4 + 4;
    /** Bytes of a chunk's header inside a device-state packet (no marker). */
    public static final int PACKET_CHUNK_HEADER_BYTES = 8 + 4 + 4;
    public static final int PACKET_HEADER_BYTES = 12;
    public static final int PACKET_VERSION = 1;
    public static final int PACKET_FLAG_CONFIG = 1;

    private AcceleratorState() {}

    /** QEMU-style name of a marker, for errors. */
    public static String markerName(long marker) {
        if (marker == END_OF_STATE) {
            return "END_OF_STATE";
        } else if (marker == SETUP) {
            return "SETUP";
        } else if (marker == DATA) {
            return "DATA";
        } else if (marker == INIT_DATA_SENT) {
            return "INIT_DATA_SENT";
        } else if (marker == MULTIFD) {
            return "MULTIFD";
        } else if (marker == CONFIG) {
            return "CONFIG";
        }
        return String.format("0x%016x", marker);
    }

    /** Reads a record's marker, refusing one this layout does not have. */
    public static long readMarker(MigrationFile f) throws IOException {
        long at = f.position();
        long m = f.getBe64();
        if ((m & 0xffffffff_ffffff00L) != MARKER_BASE || m < END_OF_STATE || m > CONFIG) {
            throw new StreamFormatException(String.format("accelerator state: unknown record marker 0x%016x", m), at);
        }
        return m;
    }

    public static void writeSetup(MigrationFile f, long size, int chunkSize) throws IOException {
        f.putBe64(SETUP);
        f.putBe64(size);
        f.putBe32(chunkSize);
    }

    /** What a SETUP record says: the source device's memory size and chunk size. */
    public record Setup(long size, int chunkSize) {}

    /** Reads a SETUP record's payload (its marker is read). */
    public static Setup readSetup(MigrationFile f) throws IOException {
        return new Setup(f.getBe64(), f.getBe32());
    }

    /**
     * Writes a DATA record of {@code length} bytes of {@code memory} at {@code offset}. While the
     * device may write them ({@code stable} false: the guest runs), they are copied through
     * {@code scratch} first, so that the checksum and the bytes sent are of the same copy; a
     * chunk written meanwhile is dirty again and goes again. With the device stopped they go
     * straight from its memory.
     */
    public static void writeData(MigrationFile f, MemorySegment memory, long offset, int length, boolean stable,
                                 byte[] scratch) throws IOException {
        f.putBe64(DATA);
        f.putBe64(offset);
        f.putBe32(length);
        if (stable) {
            f.putBe32(crc(memory, offset, length));
            f.putRam(memory, offset, length);
        } else {
            MemorySegment.copy(memory, java.lang.foreign.ValueLayout.JAVA_BYTE, offset, scratch, 0, length);
            CRC32C c = new CRC32C();
            c.update(scratch, 0, length);
            f.putBe32((int) c.getValue());
            f.putBytes(scratch, 0, length);
        }
    }

    /** A DATA record's header: where its bytes go, how many, and their checksum. */
    public record Chunk(long at, long offset, int length, int crc) {}

    /**
     * Reads a DATA record's header (its marker is read, {@code markerAt} is where it was) and
     * checks that it lies whole inside a memory of {@code size} bytes, on a chunk boundary.
     */
    public static Chunk readChunk(MigrationFile f, long markerAt, long size, int chunkSize) throws IOException {
        long offset = f.getBe64();
        int length = f.getBe32();
        int crc = f.getBe32();
        return checkChunk(new Chunk(markerAt, offset, length, crc), size, chunkSize);
    }

    private static Chunk checkChunk(Chunk c, long size, int chunkSize) throws StreamFormatException {
        long offset = c.offset();
        int length = c.length();
        if (offset < 0 || offset % chunkSize != 0 || length <= 0 || length > chunkSize || offset > size - length) {
            throw new StreamFormatException(String.format("accelerator chunk 0x%x+0x%x outside its memory of 0x%x"
                    + " bytes or not on a chunk (0x%x) boundary", offset, Integer.toUnsignedLong(length), size, chunkSize),
                    c.at());
        }
        return c;
    }

    /** CRC-32C of {@code length} bytes of {@code memory} at {@code offset}. */
    public static int crc(MemorySegment memory, long offset, int length) {
        CRC32C c = new CRC32C();
        c.update(memory.asSlice(offset, length).asByteBuffer());
        return (int) c.getValue();
    }

    /** Fails when a chunk's bytes, now at {@code offset} of {@code memory}, do not match its checksum. */
    public static void checkCrc(Chunk c, MemorySegment memory, String device) throws StreamFormatException {
        int got = crc(memory, c.offset(), c.length());
        if (got != c.crc()) {
            throw new StreamFormatException(String.format("accelerator '%s': chunk at 0x%x (0x%x bytes) is damaged:"
                    + " CRC-32C 0x%08x, the source sent 0x%08x", device, c.offset(), c.length(), got, c.crc()), c.at());
        }
    }

    // ------------------------------------------------------------------ device-state packets

    /**
     * A data packet: the chunks at {@code offsets[0..count)} of {@code memory} (the device
     * stopped), each {@code chunkSize} bytes, checksummed and written by the channel thread.
     */
    public static MultifdPacket.DeviceStatePayload dataPacket(int idx, MemorySegment memory, long[] offsets, int count,
                                                              int chunkSize) {
        long[] mine = java.util.Arrays.copyOf(offsets, count);
        int size = PACKET_HEADER_BYTES + count * (PACKET_CHUNK_HEADER_BYTES + chunkSize);
        return new MultifdPacket.DeviceStatePayload() {
            @Override
            public int size() {
                return size;
            }

            @Override
            public void write(MigrationFile f) throws IOException {
                f.putBe32(PACKET_VERSION);
                f.putBe32(idx);
                f.putBe32(0);
                for (long off : mine) {
                    f.putBe64(off);
                    f.putBe32(chunkSize);
                    f.putBe32(crc(memory, off, chunkSize));
                    f.putRam(memory, off, chunkSize);
                }
            }
        };
    }

    /** The config packet, last of a device's packets: {@code idx} is the number of data packets before it. */
    public static MultifdPacket.DeviceStatePayload configPacket(int idx, byte[] vmsdBody) {
        byte[] body = vmsdBody.clone();
        return new MultifdPacket.DeviceStatePayload() {
            @Override
            public int size() {
                return PACKET_HEADER_BYTES + body.length;
            }

            @Override
            public void write(MigrationFile f) throws IOException {
                f.putBe32(PACKET_VERSION);
                f.putBe32(idx);
                f.putBe32(PACKET_FLAG_CONFIG);
                f.putBytes(body);
            }
        };
    }

    /** A device-state packet's header as read from its data. */
    public record PacketHeader(int idx, boolean config) {}

    /**
     * Reads the header at the start of a device-state packet's {@code data}. {@code at} is where
     * the data starts in its channel, for errors.
     */
    public static PacketHeader readPacketHeader(ByteBuffer data, long at) throws StreamFormatException {
        if (data.remaining() < PACKET_HEADER_BYTES) {
            throw new StreamFormatException("accelerator device-state packet of " + data.remaining()
                    + " bytes, shorter than its " + PACKET_HEADER_BYTES + "-byte header", at);
        }
        int version = data.getInt();
        if (version != PACKET_VERSION) {
            throw new StreamFormatException("accelerator device-state packet version " + Integer.toUnsignedString(version)
                    + ", expected " + PACKET_VERSION, at);
        }
        int idx = data.getInt();
        int flags = data.getInt();
        if ((flags & ~PACKET_FLAG_CONFIG) != 0 || idx < 0) {
            throw new StreamFormatException(String.format("accelerator device-state packet idx %s flags 0x%x: unknown"
                    + " flags or idx out of range", Integer.toUnsignedString(idx), flags), at + 4);
        }
        return new PacketHeader(idx, flags == PACKET_FLAG_CONFIG);
    }

    /**
     * The next chunk header of a data packet's {@code data} (positioned after the previous
     * chunk's bytes), checked against the memory; the caller takes the chunk's bytes next.
     * {@code dataAt} is where {@code data}'s position 0 is in its channel.
     */
    public static Chunk readPacketChunk(ByteBuffer data, long dataAt, long size, int chunkSize)
            throws StreamFormatException {
        long at = dataAt + data.position();
        if (data.remaining() < PACKET_CHUNK_HEADER_BYTES) {
            throw new StreamFormatException("accelerator device-state packet ends inside a chunk header ("
                    + data.remaining() + " bytes left)", at);
        }
        Chunk c = checkChunk(new Chunk(at, data.getLong(), data.getInt(), data.getInt()), size, chunkSize);
        if (data.remaining() < c.length()) {
            throw new StreamFormatException("accelerator device-state packet ends inside the chunk at 0x"
                    + Long.toHexString(c.offset()) + " (" + data.remaining() + " of " + c.length() + " bytes)", at);
        }
        return c;
    }

    /** CRC-32C of {@code length} bytes of {@code data} from its position (which is not moved). */
    public static int crc(ByteBuffer data, int length) {
        CRC32C c = new CRC32C();
        ByteBuffer d = data.duplicate();
        d.limit(d.position() + length);
        c.update(d);
        return (int) c.getValue();
    }
}
