package org.livemig.stream;

import java.io.IOException;

/**
 * The PACKAGED command (7): a nested stream (LISTEN, device sections, RUN) sent as one blob at
 * the postcopy switch, so the destination has all device state before it starts the guest.
 * <pre>
 *  0          4
 *  +----------+                         +--------------------------+
 *  | len be32 |   command length 4, then | blob[len], not counted   |
 *  +----------+                         |  in the command length   |
 *                                       +--------------------------+
 * </pre>
 * A blob is held in memory whole, so its length is checked against a limit before anything is
 * allocated: {@link #MAX_LENGTH} by default. QEMU refuses blobs over {@link #QEMU_MAX_LENGTH}
 * on both sides, so a source talking to QEMU must stay under that.
 */
public record PackagedCommand(int length) {
    public static final int BLOB_LENGTH_OFFSET = 0;
    public static final int LENGTH = 4;
    /** Largest blob livemig reads or writes. */
    public static final int MAX_LENGTH = 256 << 20;
    /** Largest blob QEMU accepts (its MAX_VM_CMD_PACKAGED_SIZE). */
    public static final int QEMU_MAX_LENGTH = 16 << 20;

    public PackagedCommand {
        if (length < 0 || length > MAX_LENGTH) {
            throw new IllegalArgumentException("PACKAGED blob of " + Integer.toUnsignedString(length)
                    + " bytes, limit " + MAX_LENGTH);
        }
    }

    /** Writes the command only; the caller writes the {@link #length()} bytes of blob next. */
    public void write(MigrationFile f) throws IOException {
        Wire.putCommandHeader(f, QemuStream.CMD_PACKAGED, LENGTH);
        f.putBe32(length);
    }

    /** Writes the command and the blob after it. */
    public static void write(MigrationFile f, byte[] blob) throws IOException {
        new PackagedCommand(blob.length).write(f);
        f.putBytes(blob);
    }

    /** Reads the command (not the blob) with the default limit; the file must be at its 0x08 byte. */
    public static PackagedCommand read(MigrationFile f) throws IOException {
        int len = Wire.getCommandHeader(f, QemuStream.CMD_PACKAGED);
        return readPayload(f, len, MAX_LENGTH);
    }

    /** Reads the payload of a PACKAGED whose framing (with {@code length}) was read. */
    public static PackagedCommand readPayload(MigrationFile f, int length) throws IOException {
        return readPayload(f, length, MAX_LENGTH);
    }

    /** As {@link #readPayload(MigrationFile, int)}, with a blob limit at most {@link #MAX_LENGTH}. */
    public static PackagedCommand readPayload(MigrationFile f, int length, int maxBlob) throws IOException {
        long at = f.position();
        if (length != LENGTH) {
            throw Wire.fail(f, "PACKAGED has length " + length + ", expected " + LENGTH, at - 2);
        }
        long blob = f.getBe32() & 0xFFFF_FFFFL;
        long limit = Math.min(maxBlob, MAX_LENGTH);
        if (blob > limit) {
            throw Wire.fail(f, "PACKAGED blob of " + blob + " bytes is beyond the limit of " + limit, at);
        }
        return new PackagedCommand((int) blob);
    }

    /** Reads the blob that follows the command (its length was checked when the command was read). */
    public byte[] readBlob(MigrationFile f) throws IOException {
        return f.getBytes(length);
    }
}
