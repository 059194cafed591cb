package org.livemig.stream;

import java.io.IOException;
import java.nio.charset.StandardCharsets;

/**
 * A section's header and its footer: the one codec for them, used by the saver, the loader, the
 * analyzer and the rewriter.
 *
 * <pre>
 * START (0x01), FULL (0x04): a section that names what it is
 *   0      1            5      6          6+n            10+n          14+n
 *   +------+------------+------+----------+--------------+-------------+
 *   | type | section id | n    | idstr    | instance id  | version id  |
 *   | u8   | be32       | u8   | n bytes  | be32         | be32        |
 *   +------+------------+------+----------+--------------+-------------+
 *
 * PART (0x02), END (0x03): more of a section started earlier, named by its id
 *   0      1            5
 *   +------+------------+
 *   | type | section id |
 *   +------+------------+
 *
 * FOOTER (0x7e), after every section's body once the stream has a configuration section
 *   0      1            5
 *   +------+------------+
 *   | 0x7e | section id |
 *   +------+------------+
 * </pre>
 *
 * The idstr is kept as ISO-8859-1 text, one char per byte, so that it writes back to the same
 * bytes whatever they were; {@link #display} gives its UTF-8 reading for people.
 *
 * @param type       {@link QemuStream#SECTION_START}, {@code _PART}, {@code _END} or {@code _FULL}
 * @param idstr      for PART and END, copied from the START with the same id (not on the wire)
 * @param instanceId likewise
 * @param versionId  likewise
 * @param offset     stream offset of the type byte
 */
public record SectionHeader(int type, int sectionId, String idstr, int instanceId, int versionId, long offset) {
    /** Bytes of a PART or END header, and of a footer. */
    public static final int SHORT_BYTES = 5;

    /** True for START and FULL, whose header names the section. */
    public static boolean namesSection(int type) {
        return type == QemuStream.SECTION_START || type == QemuStream.SECTION_FULL;
    }

    /**
     * Reads the rest of a START or FULL header, the type byte (at {@code offset}) already read.
     */
    public static SectionHeader readNamed(MigrationFile f, int type, long offset) throws IOException {
        int id = f.getBe32();
        String idstr = readName(f);
        int instance = f.getBe32();
        int version = f.getBe32();
        return new SectionHeader(type, id, idstr, instance, version, offset);
    }

    /** Reads the section id of a PART or END header, the type byte already read. */
    public static int readId(MigrationFile f) throws IOException {
        return f.getBe32();
    }

    /** This START's header as seen again in a PART or END of type {@code newType} at {@code newOffset}. */
    public SectionHeader as(int newType, long newOffset) {
        return new SectionHeader(newType, sectionId, idstr, instanceId, versionId, newOffset);
    }

    /** Writes this header: all of it for START and FULL, type and id for PART and END. */
    public void write(MigrationFile f) throws IOException {
        if (namesSection(type)) {
            writeNamed(f, type, sectionId, idstr, instanceId, versionId);
        } else {
            writeShort(f, type, sectionId);
        }
    }

    /** Writes a START or FULL header. */
    public static void writeNamed(MigrationFile f, int type, int sectionId, String idstr, int instanceId,
            int versionId) throws IOException {
        f.putByte(type);
        f.putBe32(sectionId);
        writeName(f, idstr);
        f.putBe32(instanceId);
        f.putBe32(versionId);
    }

    /** Writes a PART or END header. */
    public static void writeShort(MigrationFile f, int type, int sectionId) throws IOException {
        f.putByte(type);
        f.putBe32(sectionId);
    }

    /** Writes the footer of section {@code sectionId}. */
    public static void writeFooter(MigrationFile f, int sectionId) throws IOException {
        f.putByte(QemuStream.SECTION_FOOTER);
        f.putBe32(sectionId);
    }

    /**
     * Reads the footer that must follow section {@code sectionId}'s body.
     *
     * @throws StreamFormatException when the next byte is not a footer, or the footer names
     *     another section
     */
    public static void readFooter(MigrationFile f, int sectionId) throws IOException {
        long at = f.position();
        int b = f.getByte();
        if (b != QemuStream.SECTION_FOOTER) {
            throw new StreamFormatException(String.format("missing section footer: found byte 0x%02x", b), at);
        }
        int id = f.getBe32();
        if (id != sectionId) {
            throw new StreamFormatException("section footer for id " + id + " after section id " + sectionId, at);
        }
    }

    /** A counted string (u8 length, then the bytes) as ISO-8859-1 text: the bytes, unchanged. */
    public static String readName(MigrationFile f) throws IOException {
        int len = f.getByte();
        return new String(f.getBytes(len), StandardCharsets.ISO_8859_1);
    }

    /**
     * Writes a name read by {@link #readName}, or any name of at most 255 ISO-8859-1 chars (the
     * names livemig gives its sections and RAM blocks are ASCII).
     */
    public static void writeName(MigrationFile f, String name) throws IOException {
        byte[] b = name.getBytes(StandardCharsets.ISO_8859_1);
        if (b.length > QemuStream.MAX_COUNTED_STRING
                || !new String(b, StandardCharsets.ISO_8859_1).equals(name)) {
            throw new IllegalArgumentException("not a name of at most 255 one-byte chars: " + name);
        }
        f.putByte(b.length);
        f.putBytes(b);
    }

    /** The UTF-8 reading of a name kept as ISO-8859-1 text. */
    public static String display(String raw) {
        return new String(raw.getBytes(StandardCharsets.ISO_8859_1), StandardCharsets.UTF_8);
    }

    /** "idstr instance N (section id M)": how errors and reports name a section. */
    public String describe() {
        return display(idstr) + " instance " + instanceId + " (section id " + sectionId + ")";
    }

    public String displayName() {
        return display(idstr);
    }

    /** The "ram" section. */
    public boolean isRam() {
        return idstr.equals("ram");
    }
}
