package org.livemig.stream;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

/**
 * The POSTCOPY_RAM_DISCARD command (6): at the postcopy switch the source names, per block, the
 * byte ranges the destination holds stale copies of (dirtied since sent, or never sent); the
 * destination drops them so that a guest access faults and asks for the page.
 * <pre>
 *  0   1   2         2+n 3+n
 *  +---+---+---------+---+--------------------------------------------+
 *  | 0 | n | name[n] | 0 | k x ( start be64 | length be64 )           |
 *  +---+---+---------+---+--------------------------------------------+
 *  version            NUL  byte ranges in the block        length = 3 + n + 16k
 * </pre>
 * The whole command must fit the be16 command length: at most {@link #maxRanges(int)} ranges.
 * QEMU's source sends {@link #QEMU_RANGES_PER_COMMAND} per command; {@link #batches} does the same.
 */
public record PostcopyRamDiscardCommand(String block, List<Range> ranges) {
    public static final int VERSION_OFFSET = 0;
    public static final int NAME_LENGTH_OFFSET = 1;
    public static final int NAME_OFFSET = 2;
    /** Version byte, the only one defined. */
    public static final int VERSION = 0;
    /** Payload length without the name's bytes and the ranges. */
    public static final int FIXED_LENGTH = 3;
    public static final int RANGE_LENGTH = 16;
    /** Ranges per command as QEMU's source batches them. */
    public static final int QEMU_RANGES_PER_COMMAND = 12;

    /**
     * Bytes {@code [start, start + length)} of the block.
     * <pre>
     *  0              8              16
     *  +--------------+--------------+
     *  | start (be64) | length (be64)|
     *  +--------------+--------------+
     * </pre>
     */
    public record Range(long start, long length) {
        public static final int START_OFFSET = 0;
        public static final int LENGTH_OFFSET = 8;

        public Range {
            if (start < 0 || length < 0 || start > Long.MAX_VALUE - length) {
                throw new IllegalArgumentException("discard range [" + Long.toUnsignedString(start) + ", +"
                        + Long.toUnsignedString(length) + ") is beyond any block");
            }
        }

        /** True when the range is whole pages of {@code pageSize} inside a block of {@code blockLength} bytes. */
        public boolean isWithin(long blockLength, long pageSize) {
            return pageSize > 0 && start % pageSize == 0 && length % pageSize == 0
                    && length <= blockLength && start <= blockLength - length;
        }
    }

    public PostcopyRamDiscardCommand {
        byte[] name = Wire.encodeName("POSTCOPY_RAM_DISCARD", block);
        ranges = List.copyOf(ranges);
        if (ranges.size() > maxRanges(name.length)) {
            throw new IllegalArgumentException("POSTCOPY_RAM_DISCARD: " + ranges.size() + " ranges do not fit one "
                    + "command (at most " + maxRanges(name.length) + " with this block name)");
        }
    }

    /** Most ranges one command can carry with a block name of {@code nameLength} bytes. */
    public static int maxRanges(int nameLength) {
        return (0xFFFF - FIXED_LENGTH - nameLength) / RANGE_LENGTH;
    }

    /** Splits {@code ranges} into commands of at most {@link #QEMU_RANGES_PER_COMMAND} ranges each. */
    public static List<PostcopyRamDiscardCommand> batches(String block, List<Range> ranges) {
        List<PostcopyRamDiscardCommand> out = new ArrayList<>();
        for (int i = 0; i < ranges.size(); i += QEMU_RANGES_PER_COMMAND) {
            out.add(new PostcopyRamDiscardCommand(block,
                    ranges.subList(i, Math.min(ranges.size(), i + QEMU_RANGES_PER_COMMAND))));
        }
        return out;
    }

    public int payloadLength() {
        return FIXED_LENGTH + Wire.encodeName("POSTCOPY_RAM_DISCARD", block).length + RANGE_LENGTH * ranges.size();
    }

    /** Writes the whole command (framing and payload). */
    public void write(MigrationFile f) throws IOException {
        byte[] name = Wire.encodeName("POSTCOPY_RAM_DISCARD", block);
        Wire.putCommandHeader(f, QemuStream.CMD_POSTCOPY_RAM_DISCARD,
                FIXED_LENGTH + name.length + RANGE_LENGTH * ranges.size());
        f.putByte(VERSION);
        f.putByte(name.length);
        f.putBytes(name);
        f.putByte(0);
        for (Range r : ranges) {
            f.putBe64(r.start());
            f.putBe64(r.length());
        }
    }

    /** Reads the whole command; the file must be at its 0x08 byte. */
    public static PostcopyRamDiscardCommand read(MigrationFile f) throws IOException {
        int len = Wire.getCommandHeader(f, QemuStream.CMD_POSTCOPY_RAM_DISCARD);
        return readPayload(f, len);
    }

    /**
     * Reads the payload of a POSTCOPY_RAM_DISCARD whose framing (with {@code length}) was read.
     * Checks the layout and that each range lies inside a 64-bit address space; whether the ranges
     * are page-aligned and inside the named block is for the caller, who knows the block
     * ({@link Range#isWithin}).
     */
    public static PostcopyRamDiscardCommand readPayload(MigrationFile f, int length) throws IOException {
        long at = f.position();
        if (length < FIXED_LENGTH + 1) {
            throw Wire.fail(f, "POSTCOPY_RAM_DISCARD has length " + length + ", shorter than version, "
                    + "a block name and its NUL", at - 2);
        }
        byte[] p = Wire.payload(f, length);
        if (p[VERSION_OFFSET] != VERSION) {
            throw Wire.fail(f, "POSTCOPY_RAM_DISCARD version " + (p[VERSION_OFFSET] & 0xFF) + ", expected "
                    + VERSION, at + VERSION_OFFSET);
        }
        int n = p[NAME_LENGTH_OFFSET] & 0xFF;
        int nulAt = NAME_OFFSET + n;
        if (length < FIXED_LENGTH + n) {
            throw Wire.fail(f, "POSTCOPY_RAM_DISCARD has length " + length + " but its block name is " + n
                    + " bytes", at - 2);
        }
        String name = Wire.decodeName(f, "POSTCOPY_RAM_DISCARD", p, NAME_OFFSET, n, at);
        if (p[nulAt] != 0) {
            throw Wire.fail(f, String.format("POSTCOPY_RAM_DISCARD: byte 0x%02x after the block name, expected 0",
                    p[nulAt] & 0xFF), at + nulAt);
        }
        int rangesAt = nulAt + 1;
        if ((length - rangesAt) % RANGE_LENGTH != 0) {
            throw Wire.fail(f, "POSTCOPY_RAM_DISCARD has " + (length - rangesAt) + " bytes of ranges, not a multiple of "
                    + RANGE_LENGTH, at - 2);
        }
        List<Range> ranges = new ArrayList<>((length - rangesAt) / RANGE_LENGTH);
        for (int i = rangesAt; i < length; i += RANGE_LENGTH) {
            long start = Wire.be64(p, i + Range.START_OFFSET);
            long len = Wire.be64(p, i + Range.LENGTH_OFFSET);
            if (start < 0 || len < 0 || start > Long.MAX_VALUE - len) {
                throw Wire.fail(f, "POSTCOPY_RAM_DISCARD range " + (i - rangesAt) / RANGE_LENGTH + " of block " + name
                        + " [" + Long.toUnsignedString(start) + ", +" + Long.toUnsignedString(len)
                        + ") is beyond any block", at + i);
            }
            ranges.add(new Range(start, len));
        }
        return new PostcopyRamDiscardCommand(name, ranges);
    }
}
