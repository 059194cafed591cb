package org.livemig.stream;

import java.io.IOException;

/**
 * The RECV_BITMAP command (10): on a recovered postcopy channel the source asks for the
 * destination's received bitmap of one block; the answer is a RECV_BITMAP return-path message.
 * <pre>
 *  0   1
 *  +---+-----------+
 *  | n | name[n]   |   length = 1 + n, n = 1..255
 *  +---+-----------+
 * </pre>
 */
public record RecvBitmapCommand(String block) {
    public static final int NAME_LENGTH_OFFSET = 0;
    public static final int NAME_OFFSET = 1;

    public RecvBitmapCommand {
        Wire.checkName("RECV_BITMAP", block);
    }

    public int payloadLength() {
        return 1 + Wire.encodeName("RECV_BITMAP", block).length;
    }

    /** Writes the whole command (framing and payload). */
    public void write(MigrationFile f) throws IOException {
        byte[] name = Wire.encodeName("RECV_BITMAP", block);
        Wire.putCommandHeader(f, QemuStream.CMD_RECV_BITMAP, 1 + name.length);
        f.putByte(name.length);
        f.putBytes(name);
    }

    /** Reads the whole command; the file must be at its 0x08 byte. */
    public static RecvBitmapCommand read(MigrationFile f) throws IOException {
        int len = Wire.getCommandHeader(f, QemuStream.CMD_RECV_BITMAP);
        return readPayload(f, len);
    }

    /** Reads the payload of a RECV_BITMAP command whose framing (with {@code length}) was read. */
    public static RecvBitmapCommand readPayload(MigrationFile f, int length) throws IOException {
        long at = f.position();
        if (length < 2) {
            throw Wire.fail(f, "RECV_BITMAP command has length " + length
                    + ", expected 1 + block name length (at least 1)", at - 2);
        }
        byte[] p = Wire.payload(f, length);
        int n = p[NAME_LENGTH_OFFSET] & 0xFF;
        if (length != 1 + n) {
            throw Wire.fail(f, "RECV_BITMAP command has length " + length + " but its block name is " + n
                    + " bytes (expected length " + (1 + n) + ")", at - 2);
        }
        return new RecvBitmapCommand(Wire.decodeName(f, "RECV_BITMAP command", p, NAME_OFFSET, n, at));
    }
}
