package org.livemig.stream;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;

/**
 * Helpers shared by the postcopy codecs: block names as QEMU sends them (a counted string of
 * 1..255 bytes, no NUL, here UTF-8 like {@link MigrationFile#putCountedString}), big-endian
 * access to a payload already read into an array, command framing, and errors that stick to
 * the file they were found in. Stateless.
 */
final class Wire {
    private Wire() {}

    /** Encodes a RAM block name, refusing what QEMU could not send or would misread. */
    static byte[] encodeName(String what, String name) {
        if (name == null || name.isEmpty()) {
            throw new IllegalArgumentException(what + ": block name must not be empty");
        }
        byte[] b = name.getBytes(StandardCharsets.UTF_8);
        if (b.length > QemuStream.MAX_COUNTED_STRING) {
            throw new IllegalArgumentException(what + ": block name is " + b.length + " bytes, at most "
                    + QemuStream.MAX_COUNTED_STRING + ": " + name);
        }
        for (byte x : b) {
            if (x == 0) {
                throw new IllegalArgumentException(what + ": block name contains a NUL byte: " + name);
            }
        }
        return b;
    }

    /** Checks a name for {@link #encodeName} at construction of a record (same rules). */
    static String checkName(String what, String name) {
        encodeName(what, name);
        return name;
    }

    /**
     * Decodes {@code len} name bytes at {@code off} of {@code p}; {@code at} is the stream offset of
     * {@code p[0]}, for the error.
     */
    static String decodeName(MigrationFile f, String what, byte[] p, int off, int len, long at)
            throws StreamFormatException {
        if (len == 0) {
            throw fail(f, what + ": empty block name", at + off - 1);
        }
        for (int i = off; i < off + len; i++) {
            if (p[i] == 0) {
                throw fail(f, what + ": block name contains a NUL byte", at + i);
            }
        }
        try {
            CharBuffer cb = StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(p, off, len));
            return cb.toString();
        } catch (CharacterCodingException e) {
            throw fail(f, what + ": block name is not valid UTF-8", at + off);
        }
    }

    /** Makes a format error at {@code at} and records it as the file's sticky error. */
    static StreamFormatException fail(MigrationFile f, String message, long at) {
        StreamFormatException e = new StreamFormatException(message, at);
        f.setError(e);
        return e;
    }

    static long be64(byte[] p, int off) {
        long v = 0;
        for (int i = 0; i < 8; i++) {
            v = (v << 8) | (p[off + i] & 0xFF);
        }
        return v;
    }

    static long be32(byte[] p, int off) {
        return ((long) (p[off] & 0xFF) << 24) | ((p[off + 1] & 0xFF) << 16) | ((p[off + 2] & 0xFF) << 8)
                | (p[off + 3] & 0xFF);
    }

    /** Writes the command framing: u8 0x08, be16 command, be16 payload length. */
    static void putCommandHeader(MigrationFile f, int cmd, int length) throws IOException {
        if (length < 0 || length > 0xFFFF) {
            throw new IllegalArgumentException(QemuStream.commandName(cmd) + " payload of " + length
                    + " bytes does not fit the be16 length");
        }
        f.putByte(QemuStream.SECTION_COMMAND);
        f.putBe16(cmd);
        f.putBe16(length);
    }

    /**
     * Reads the command framing and checks it is command {@code cmd}; returns the payload length.
     * The file must be at the 0x08 byte.
     */
    static int getCommandHeader(MigrationFile f, int cmd) throws IOException {
        long at = f.position();
        int type = f.getByte();
        if (type != QemuStream.SECTION_COMMAND) {
            throw fail(f, String.format("expected a command (0x%02x), found section type 0x%02x",
                    QemuStream.SECTION_COMMAND, type), at);
        }
        int got = f.getBe16();
        if (got != cmd) {
            throw fail(f, "expected command " + QemuStream.commandName(cmd) + ", found "
                    + QemuStream.commandName(got), at + 1);
        }
        return f.getBe16();
    }

    /** Reads a payload whose length a be16 bounds (so at most 64 KiB is allocated). */
    static byte[] payload(MigrationFile f, int length) throws IOException {
        if (length < 0 || length > 0xFFFF) {
            throw new IllegalArgumentException("payload length " + length + " is not a be16");
        }
        return f.getBytes(length);
    }
}
