package org.livemig.vmstate;

import java.io.IOException;
import org.livemig.stream.MigrationFile;

/**
 * The integer VMState types: QEMU's vmdesc name, width on the wire (big-endian) and signedness.
 * Values travel as {@code long}, normalised to the type's range: unsigned types zero-extended
 * (uint64 keeps its bit pattern), signed types sign-extended.
 */
enum ScalarType {
    UINT8("uint8", 1, false),
    UINT16("uint16", 2, false),
    UINT32("uint32", 4, false),
    UINT64("uint64", 8, false),
    INT8("int8", 1, true),
    INT16("int16", 2, true),
    INT32("int32", 4, true),
    INT64("int64", 8, true);

    final String qemuName;
    final int size;
    final boolean signed;

    ScalarType(String qemuName, int size, boolean signed) {
        this.qemuName = qemuName;
        this.size = size;
        this.signed = signed;
    }

    /** The value as it reads back after a trip through the wire. */
    long normalize(long v) {
        if (size == 8) {
            return v;
        }
        int bits = size * 8;
        if (signed) {
            return (v << (64 - bits)) >> (64 - bits);
        }
        return v & ((1L << bits) - 1);
    }

    boolean inRange(long v) {
        return normalize(v) == v;
    }

    void write(MigrationFile f, long v) throws IOException {
        switch (size) {
            case 1 -> f.putByte((int) v);
            case 2 -> f.putBe16((int) v);
            case 4 -> f.putBe32((int) v);
            default -> f.putBe64(v);
        }
    }

    long read(MigrationFile f) throws IOException {
        long raw = switch (size) {
            case 1 -> f.getByte();
            case 2 -> f.getBe16();
            case 4 -> f.getBe32() & 0xFFFF_FFFFL;
            default -> f.getBe64();
        };
        return normalize(raw);
    }

    static ScalarType byQemuName(String name) {
        for (ScalarType t : values()) {
            if (t.qemuName.equals(name)) {
                return t;
            }
        }
        return null;
    }
}
