package org.livemig.analyze;

import static org.livemig.stream.QemuStream.*;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;

import org.livemig.analyze.StreamEvents.Capabilities;
import org.livemig.analyze.StreamEvents.Command;
import org.livemig.analyze.StreamEvents.ConfigSubsection;
import org.livemig.analyze.StreamEvents.Configuration;
import org.livemig.analyze.StreamEvents.Decoded;
import org.livemig.analyze.StreamEvents.DeviceBody;
import org.livemig.analyze.StreamEvents.RamBlockEntry;
import org.livemig.analyze.StreamEvents.RamRecord;
import org.livemig.analyze.StreamEvents.Raw;
import org.livemig.analyze.StreamEvents.SectionHeader;
import org.livemig.analyze.StreamEvents.TargetPageBits;
import org.livemig.analyze.StreamEvents.Uuid;
import org.livemig.stream.MigrationFile;

import tools.jackson.databind.JsonNode;

/**
 * Writes a stream back from its decoded form with a {@link MigrationFile}: headers from their
 * fields, device sections re-encoded from their decoded values, RAM records with the same page
 * order, flags and contents, packages re-assembled with their length computed from what was
 * written. Fed by a {@link StreamReader} it reproduces a stream; its methods can also be called
 * directly to compose a stream.
 *
 * <p>XBZRLE and COMPRESS_PAGE records are written with the delta or zlib bytes they carried: the
 * page they decode to does not determine them (QEMU's encoder choices and zlib's output are not
 * part of the format). {@link #reencodePages} instead writes every page record as a plain PAGE.
 *
 * <p>Not thread-safe: called on the reader's thread. IO errors of the writer are rethrown as
 * {@link UncheckedIOException} (a visitor cannot throw checked exceptions).
 */
public final class StreamRewriter implements StreamVisitor {
    private final ArrayDeque<MigrationFile> out = new ArrayDeque<>();
    private final int pageSize;
    private boolean plainPages;
    private boolean flushEachRecord;

    public StreamRewriter(MigrationFile target, int pageSize) {
        out.push(target);
        this.pageSize = pageSize;
    }

    /** Writes XBZRLE and COMPRESS_PAGE records as PAGE records of the decoded page. */
    public StreamRewriter reencodePages() {
        plainPages = true;
        return this;
    }

    /**
     * Flushes after every top-level record (section, command, package, EOF, trailer), as a relay
     * must: the next bytes of a live source may only come after the destination has answered.
     */
    public StreamRewriter flushEachRecord() {
        flushEachRecord = true;
        return this;
    }

    private void recordDone() throws IOException {
        if (flushEachRecord && out.size() == 1) {
            f().flush();
        }
    }

    private MigrationFile f() {
        return out.peek();
    }

    private interface Io {
        void run() throws IOException;
    }

    private static void io(Io body) {
        try {
            body.run();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private void counted(String latin1) throws IOException {
        byte[] b = latin1.getBytes(StandardCharsets.ISO_8859_1);
        f().putByte(b.length);
        f().putBytes(b);
    }

    @Override
    public void header(int magic, int version) {
        io(() -> {
            f().putBe32(magic);
            f().putBe32(version);
        });
    }

    @Override
    public void configuration(Configuration c) {
        io(() -> {
            byte[] name = c.machine().getBytes(StandardCharsets.ISO_8859_1);
            f().putByte(SECTION_CONFIGURATION);
            f().putBe32(name.length);
            f().putBytes(name);
            for (ConfigSubsection s : c.subsections()) {
                f().putByte(SECTION_SUBSECTION);
                counted(s.name());
                f().putBe32(s.version());
                switch (s) {
                    case TargetPageBits t -> f().putBe32(t.bits());
                    case Capabilities caps -> {
                        f().putBe32(caps.capabilities().size());
                        for (String cap : caps.capabilities()) {
                            counted(cap);
                        }
                    }
                    case Uuid u -> f().putBytes(u.uuid());
                }
            }
            recordDone();
        });
    }

    @Override
    public void command(Command c) {
        io(() -> {
            f().putByte(SECTION_COMMAND);
            f().putBe16(c.command());
            f().putBe16(c.payload().length);
            f().putBytes(c.payload());
            recordDone();
        });
    }

    @Override
    public void packageStart(Command c, int blobLength) {
        out.push(MigrationFile.toMemory());
    }

    @Override
    public void packageEnd(byte[] trailing) {
        io(() -> {
            f().putBytes(trailing);
            byte[] blob = out.pop().toByteArray();
            f().putByte(SECTION_COMMAND);
            f().putBe16(CMD_PACKAGED);
            f().putBe16(4);
            f().putBe32(blob.length);
            f().putBytes(blob);
            recordDone();
        });
    }

    @Override
    public void sectionStart(SectionHeader h) {
        io(() -> {
            f().putByte(h.type());
            f().putBe32(h.sectionId());
            if (h.type() == SECTION_START || h.type() == SECTION_FULL) {
                counted(h.idstr());
                f().putBe32(h.instanceId());
                f().putBe32(h.versionId());
            }
        });
    }

    @Override
    public void ramRecord(SectionHeader h, RamRecord r) {
        io(() -> {
            long header = r.header();
            boolean plain = plainPages && (r.kind() == StreamEvents.RamKind.XBZRLE
                    || r.kind() == StreamEvents.RamKind.COMPRESS_PAGE);
            if (plain) {
                header = (header & ~(long) (pageSize - 1)) | (header & RAM_FLAG_CONTINUE) | RAM_FLAG_PAGE;
            }
            f().putBe64(header);
            if (r.block() != null) {
                counted(r.block());
            }
            switch (r.kind()) {
                case MEM_SIZE -> {
                    for (RamBlockEntry b : r.blocks()) {
                        counted(b.name());
                        f().putBe64(b.usedLength());
                        if (b.pageSize() != null) {
                            f().putBe64(b.pageSize());
                        }
                        if (b.mrAddr() != null) {
                            f().putBe64(b.mrAddr());
                        }
                    }
                }
                case ZERO -> f().putByte(r.fill());
                case PAGE -> f().putBytes(r.page().toArray(ValueLayout.JAVA_BYTE));
                case XBZRLE -> {
                    if (plain) {
                        f().putBytes(r.page().toArray(ValueLayout.JAVA_BYTE));
                    } else {
                        f().putByte(r.encoding());
                        f().putBe16(r.encoded().length);
                        f().putBytes(r.encoded());
                    }
                }
                case COMPRESS_PAGE -> {
                    if (plain) {
                        f().putBytes(r.page().toArray(ValueLayout.JAVA_BYTE));
                    } else {
                        f().putBe32(r.encoded().length);
                        f().putBytes(r.encoded());
                    }
                }
                case EOS, MULTIFD_FLUSH -> {
                }
            }
        });
    }

    @Override
    public void deviceSection(SectionHeader h, DeviceBody body) {
        io(() -> {
            switch (body) {
                case Decoded d -> writeStruct(d.value());
                case Raw r -> f().putBytes(r.bytes());
            }
        });
    }

    /** Encodes decoded device state: leaves as their bytes, subsections with their headers. */
    private void writeStruct(VmValue.Struct s) throws IOException {
        for (VmValue.Field field : s.fields()) {
            switch (field.value()) {
                case VmValue.Struct inner -> writeStruct(inner);
                case VmValue.Leaf leaf -> {
                    if (leaf.kind() == VmValue.Kind.CAPABILITY) {
                        f().putByte(leaf.raw().length);
                    }
                    f().putBytes(leaf.raw());
                }
            }
        }
        for (VmValue.Subsection sub : s.subsections()) {
            f().putByte(SECTION_SUBSECTION);
            counted(sub.name());
            f().putBe32(sub.version());
            writeStruct(sub.body());
        }
    }

    @Override
    public void sectionEnd(SectionHeader h, boolean footer) {
        io(() -> {
            if (footer) {
                f().putByte(SECTION_FOOTER);
                f().putBe32(h.sectionId());
            }
            recordDone();
        });
    }

    @Override
    public void eof() {
        io(() -> {
            f().putByte(SECTION_EOF);
            recordDone();
        });
    }

    @Override
    public void vmdesc(byte[] json, JsonNode tree) {
        io(() -> {
            f().putByte(SECTION_VMDESCRIPTION);
            f().putBe32(json.length);
            f().putBytes(json);
            recordDone();
        });
    }

    @Override
    public void trailing(byte[] chunk) {
        io(() -> {
            f().putBytes(chunk);
            recordDone();
        });
    }

    @Override
    public void end() {
        io(() -> f().flush());
    }
}
