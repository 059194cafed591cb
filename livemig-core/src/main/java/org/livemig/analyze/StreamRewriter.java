package org.livemig.analyze;

import static org.livemig.stream.QemuStream.*;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import org.livemig.analyze.StreamEvents.Capabilities;
import org.livemig.analyze.StreamEvents.Command;
import org.livemig.analyze.StreamEvents.ConfigSubsection;
import org.livemig.analyze.StreamEvents.Configuration;
import org.livemig.analyze.StreamEvents.Decoded;
import org.livemig.analyze.StreamEvents.DeviceBody;
import org.livemig.analyze.StreamEvents.RamRecord;
import org.livemig.analyze.StreamEvents.Raw;
import org.livemig.analyze.StreamEvents.TargetPageBits;
import org.livemig.analyze.StreamEvents.Uuid;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.RamPageRecord;
import org.livemig.stream.SectionHeader;
import tools.jackson.databind.JsonNode;

/**
 * Writes a stream back from its decoded form with a {@link MigrationFile}: headers from their
 * fields, device sections re-encoded from their decoded values, RAM records with the same page
 * order, flags and contents, packages re-assembled with their length computed from what was
 * written. Fed by a {@link StreamReader} it reproduces a stream; its methods can also be called
 * directly to compose a stream.
 *
 * <p>By default XBZRLE and COMPRESS_PAGE records are written with the delta or zlib bytes they
 * carried. {@link #reencode} computes them from the decoded pages instead: the XBZRLE delta of
 * each page against the rewriter's own copy of what the destination holds, and the zlib stream
 * of the page at a given level; on QEMU 7.2's streams (compress-level 1) this gives QEMU's bytes.
 * {@link #reencodePages} writes every page record as a plain PAGE.
 *
 * <p>Not thread-safe: called on the reader's thread. IO errors of the writer are rethrown as
 * {@link UncheckedIOException} (a visitor cannot throw checked exceptions).
 */
public final class StreamRewriter implements StreamVisitor {
    private final ArrayDeque<MigrationFile> out = new ArrayDeque<>();
    private final int pageSize;
    private boolean plainPages;
    private boolean flushEachRecord;
    /** Re-encoding: the destination's RAM as written so far, and the zlib level; null when off. */
    private RamImage mirror;
    private int compressLevel;
    private final java.util.Map<String, RamImage.Block> mirrorBlocks = new java.util.HashMap<>();

    public StreamRewriter(MigrationFile target, int pageSize) {
        out.push(target);
        this.pageSize = pageSize;
    }

    /**
     * Computes XBZRLE deltas and COMPRESS_PAGE zlib streams from the decoded pages (keeping a
     * sparse off-heap copy of the written RAM to delta against) instead of copying them.
     *
     * @param zlibLevel the source's compress-level (QEMU's default is 1)
     */
    public StreamRewriter reencode(int zlibLevel) {
        mirror = RamImage.inMemory(pageSize, Long.MAX_VALUE);
        compressLevel = zlibLevel;
        return this;
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
                SectionHeader.writeName(f(), s.name());
                f().putBe32(s.version());
                switch (s) {
                    case TargetPageBits t -> f().putBe32(t.bits());
                    case Capabilities caps -> {
                        f().putBe32(caps.capabilities().size());
                        for (String cap : caps.capabilities()) {
                            SectionHeader.writeName(f(), cap);
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
        if (mirror != null && c.command() == CMD_POSTCOPY_RAM_DISCARD) {
            byte[] p = c.payload();
            int n = p[1] & 0xFF;
            RamImage.Block b = mirrorBlocks.get(new String(p, 2, n, StandardCharsets.ISO_8859_1));
            for (int i = 3 + n; b != null && i + 16 <= p.length; i += 16) {
                mirror.discard(b, StreamReader.be64(p, i), StreamReader.be64(p, i + 8));
            }
        }
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
            h.write(f());
        });
    }

    @Override
    public void ramRecord(SectionHeader h, RamRecord r) {
        io(() -> {
            boolean plain = plainPages;
            long address = r.address(pageSize);
            if (mirror != null) {
                mirrorRecord(r);
            }
            switch (r.kind()) {
                case MEM_SIZE -> {
                    for (RamPageRecord.BlockEntry b : r.blocks()) {
                        if (mirror != null) {
                            mirrorBlocks.put(b.name(), mirror.define(b.name(), b.usedLength()));
                        }
                    }
                    RamPageRecord.writeMemSize(f(), address, r.blocks());
                }
                case ZERO -> RamPageRecord.writeZero(f(), address, r.block(), r.fill());
                case PAGE -> writePage(address, r);
                case XBZRLE -> {
                    if (plain) {
                        writePage(address, r);
                    } else {
                        byte[] delta = mirror != null ? xbzrleDelta : r.encoded();
                        RamPageRecord.writeXbzrle(f(), address, r.block(), delta, delta.length);
                    }
                }
                case COMPRESS_PAGE -> {
                    if (plain) {
                        writePage(address, r);
                    } else {
                        byte[] z = mirror != null ? deflate(r.page()) : r.encoded();
                        RamPageRecord.writeCompressed(f(), address, r.block(), z, z.length);
                    }
                }
                case EOS, MULTIFD_FLUSH -> f().putBe64(r.header());
                default -> throw new IllegalArgumentException("cannot write a " + r.kind() + " RAM record");
            }
        });
    }

    /** A PAGE record of the decoded page (its block named unless the record continued one). */
    private void writePage(long address, RamRecord r) throws IOException {
        MemorySegment page = r.page();
        RamPageRecord.writePageHeader(f(), address, RamPageRecord.FLAG_PAGE, r.block());
        f().putBytes(page.toArray(ValueLayout.JAVA_BYTE));
    }

    /** The delta computed for the current XBZRLE record by {@link #mirrorRecord}. */
    private byte[] xbzrleDelta;
    private MemorySegment prev;

    /** Brings the copy of the destination's RAM up to date with a record (computing the XBZRLE delta first). */
    private void mirrorRecord(RamRecord r) throws IOException {
        if (r.blockOf() == null) {
            return;
        }
        RamImage.Block b = mirrorBlocks.get(r.blockOf());
        long addr = r.header() & -(long) pageSize;
        try {
            switch (r.kind()) {
                case ZERO -> mirror.fill(b, addr, r.fill());
                case PAGE, COMPRESS_PAGE -> mirror.store(b, addr, r.page());
                case XBZRLE -> {
                    if (prev == null) {
                        prev = java.lang.foreign.Arena.ofAuto().allocate(pageSize);
                    }
                    mirror.readPage(b, addr, prev);
                    byte[] delta = new byte[pageSize];
                    int n = org.livemig.stream.XbzrleCodec.encode(prev, 0, r.page(), 0, pageSize, delta, pageSize);
                    if (n < 0) {
                        throw new IOException("XBZRLE delta of a page would be longer than the page");
                    }
                    xbzrleDelta = java.util.Arrays.copyOf(delta, n);
                    mirror.store(b, addr, r.page());
                }
                default -> {
                }
            }
        } catch (RamImage.RamLimitException e) {
            throw new IOException(e.getMessage(), e);
        }
    }

    private byte[] deflate(MemorySegment page) {
        java.util.zip.Deflater d = new java.util.zip.Deflater(compressLevel);
        try {
            d.setInput(page.toArray(ValueLayout.JAVA_BYTE));
            d.finish();
            java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
            byte[] buf = new byte[pageSize + 64];
            while (!d.finished()) {
                int n = d.deflate(buf);
                out.write(buf, 0, n);
            }
            return out.toByteArray();
        } finally {
            d.end();
        }
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
    private void writeStruct(StreamValue.Struct s) throws IOException {
        for (StreamValue.Field field : s.fields()) {
            switch (field.value()) {
                case StreamValue.Struct inner -> writeStruct(inner);
                case StreamValue.Leaf leaf -> {
                    if (leaf.kind() == StreamValue.Kind.CAPABILITY) {
                        f().putByte(leaf.raw().length);
                    }
                    f().putBytes(leaf.raw());
                }
            }
        }
        for (StreamValue.Subsection sub : s.subsections()) {
            f().putByte(SECTION_SUBSECTION);
            SectionHeader.writeName(f(), sub.name());
            f().putBe32(sub.version());
            writeStruct(sub.body());
        }
    }

    @Override
    public void sectionEnd(SectionHeader h, boolean footer) {
        io(() -> {
            if (footer) {
                SectionHeader.writeFooter(f(), h.sectionId());
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
    public void coloMessage(org.livemig.stream.ColoMessage message, long value, long offset) {
        io(() -> {
            if (message == org.livemig.stream.ColoMessage.VMSTATE_SIZE) {
                org.livemig.stream.ColoMessage.writeSize(f(), value);
            } else {
                f().putBe32(message.ordinal());
            }
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
        if (mirror != null) {
            mirror.close();
        }
    }
}
