package org.livemig.analyze;

import static org.livemig.stream.QemuStream.*;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
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
import org.livemig.stream.AcceleratorState;
import org.livemig.stream.ColoMessage;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.RamPageRecord;
import org.livemig.stream.SectionHeader;
import org.livemig.stream.StreamFormatException;

/**
 * A tolerant, generic reader of QEMU migration streams (format version 3): any machine type,
 * with or without configuration section and footers, every section type and command, postcopy
 * packages, and every RAM record kind of 7.2 and later. It walks the stream once, front to back,
 * over any channel, and reports each record to a {@link StreamVisitor}; the RAM it reconstructs
 * is kept sparse in a {@link RamImage}.
 *
 * <p>Device sections are decoded with the vmdesc trailer. Given one up front (read from the end
 * of a file), sections are decoded as they arrive. Otherwise a section is split off at its footer
 * and decoded once the trailer arrives at the end of the stream, or, for streams without a
 * trailer (postcopy), with a {@code -dump-vmstate} description, or reported raw with the reason.
 *
 * <p>Every malformed input ends in a {@link StreamFormatException} naming the byte offset and
 * section; lengths are checked against {@link Limits} before anything is allocated.
 *
 * <p>Not thread-safe: runs on the caller's thread; the visitor is called on it.
 */
public final class StreamReader implements AutoCloseable {
    private static final int MAX_PAGE_BITS = 16;
    private static final int MIN_PAGE_BITS = 10;

    private final StreamVisitor visitor;
    private final Limits limits;
    private final boolean keepRam;
    private final java.nio.file.Path ramDir;
    private VmDescription vmdesc;
    private final VmstateDump dump;
    private final DeviceDecoder decoder;
    /** COMPRESS_PAGE inflater, made for the stream's page size when first needed. */
    private org.livemig.stream.CompressedPageCodec.Decompressor inflater;

    private int pageBits = TARGET_PAGE_BITS;
    private int pageSize = TARGET_PAGE_SIZE;
    private RamImage ram;
    /** The RAM record codec for the stream's page size, made when the first RAM section comes. */
    private RamPageRecord record;
    private int recordPageSize;
    /** ENABLE_COLO was read: COLO checkpoints follow the vmdesc trailer. */
    private boolean coloEnabled;
    /** Reading a COLO checkpoint's sections (device sections are split at their footers first). */
    private boolean inColoCheckpoint;
    private final Map<Integer, SectionHeader> sections = new HashMap<>();
    private final Map<String, RamPageRecord.BlockEntry> ramBlocks = new LinkedHashMap<>();
    private final Map<String, RamImage.Block> imageBlocks = new HashMap<>();
    private RamPageRecord.BlockEntry currentBlock;
    private boolean hasConfiguration;
    private boolean ignoreShared;
    /** POSTCOPY_ADVISE: page-size summary and target page size, or null. */
    private long[] postcopyAdvise;
    /** Whether sections carry footers: unknown until the first section ends. */
    private Boolean footers;
    private final List<Pending> pending = new ArrayList<>();
    private MemorySegment scratch;
    private final Arena scratchArena = Arena.ofConfined();

    private record Pending(SectionHeader header, byte[] body, long bodyOffset) {
    }

    /**
     * @param visitor receives the records
     * @param limits  bounds on lengths
     * @param vmdesc  the trailer if already known (read from the end of a file), else null
     * @param dump    -dump-vmstate descriptions for sections the trailer does not cover, or null
     * @param keepRam whether to keep RAM contents (needed for {@link #ram()} and extraction);
     *                without, XBZRLE deltas are checked against zero pages
     */
    public StreamReader(StreamVisitor visitor, Limits limits, VmDescription vmdesc, VmstateDump dump,
                        boolean keepRam) {
        this(visitor, limits, vmdesc, dump, keepRam, null);
    }

    /**
     * @param ramDir when not null, RAM blocks are kept as sparse files in this directory (the
     *               extract) instead of in memory
     */
    public StreamReader(StreamVisitor visitor, Limits limits, VmDescription vmdesc, VmstateDump dump,
                        boolean keepRam, java.nio.file.Path ramDir) {
        this.visitor = visitor;
        this.limits = limits;
        this.vmdesc = vmdesc;
        this.dump = dump;
        this.keepRam = keepRam || ramDir != null;
        this.ramDir = ramDir;
        this.decoder = new DeviceDecoder(limits);
        this.ram = newImage();
    }

    private RamImage newImage() {
        return ramDir != null ? RamImage.inDirectory(pageSize, ramDir)
                : RamImage.inMemory(pageSize, keepRam ? limits.maxRamBytes() : 0);
    }

    /** The RAM the stream left; owned by the reader until {@link #takeRam()}. */
    public RamImage ram() {
        return ram;
    }

    /** Hands the RAM image over to the caller, who must close it. */
    public RamImage takeRam() {
        RamImage r = ram;
        ram = null;
        return r;
    }

    /** The vmdesc trailer, once known. */
    public VmDescription vmdesc() {
        return vmdesc;
    }

    public int pageSize() {
        return pageSize;
    }

    /** The RAM blocks of the MEM_SIZE list, in stream order. */
    public Map<String, RamPageRecord.BlockEntry> ramBlocks() {
        return Collections.unmodifiableMap(ramBlocks);
    }

    /** Reads a whole stream from {@code file}, from its current position to its end. */
    public void read(MigrationFile file) throws IOException {
        Input in = new Input(file, 0);
        int magic = in.be32();
        if (magic != MAGIC) {
            throw in.errorAt(String.format("not a QEMU migration stream: magic 0x%08x, expected 0x%08x", magic, MAGIC),
                    0);
        }
        int version = in.be32();
        if (version == VERSION_COMPAT) {
            throw in.errorAt("stream version 2 is obsolete and not supported", 4);
        }
        if (version != VERSION) {
            throw in.errorAt("unsupported stream version " + version, 4);
        }
        visitor.header(magic, version);
        if (in.peek(0) == SECTION_CONFIGURATION) {
            in.u8();
            configuration(in);
        }
        records(in, false);
        afterEof(in);
        visitor.end();
    }

    // ------------------------------------------------------------------ configuration

    private void configuration(Input in) throws IOException {
        long at = in.pos() - 1;
        in.section = "configuration";
        long len = in.be32() & 0xFFFFFFFFL;
        byte[] name = in.bytes(len, limits.maxMachineName(), "machine type name");
        List<ConfigSubsection> subs = new ArrayList<>();
        while (DeviceDecoder.isSubsection(Src.of(in), "configuration")) {
            long subAt = in.pos();
            in.u8();
            String sname = in.countedString();
            int ver = in.be32();
            if (ver != 1) {
                throw in.errorAt("configuration subsection " + SectionHeader.display(sname) + " has version " + ver
                        + ", only 1 exists", subAt);
            }
            switch (sname) {
                case "configuration/target-page-bits" -> {
                    int bits = in.be32();
                    if (bits < MIN_PAGE_BITS || bits > MAX_PAGE_BITS) {
                        throw in.error("target page bits " + bits + " out of range");
                    }
                    pageBits = bits;
                    pageSize = 1 << bits;
                    ram.close();
                    ram = newImage();
                    subs.add(new TargetPageBits(sname, ver, bits));
                }
                case "configuration/capabilities" -> {
                    long n = in.be32() & 0xFFFFFFFFL;
                    if (n > limits.maxCapabilities()) {
                        throw in.error(n + " capabilities is beyond the limit of " + limits.maxCapabilities());
                    }
                    List<String> caps = new ArrayList<>();
                    for (int i = 0; i < n; i++) {
                        String c = in.countedString();
                        caps.add(c);
                        if (c.equals("x-ignore-shared")) {
                            ignoreShared = true;
                        }
                    }
                    subs.add(new Capabilities(sname, ver, caps));
                }
                case "configuration/uuid" -> {
                    byte[] uuid = new byte[16];
                    in.fill(uuid);
                    subs.add(new Uuid(sname, ver, uuid));
                }
                default -> throw in.errorAt("unknown configuration subsection " + SectionHeader.display(sname), subAt);
            }
        }
        hasConfiguration = true;
        in.section = null;
        visitor.configuration(new Configuration(new String(name, java.nio.charset.StandardCharsets.ISO_8859_1),
                subs, at));
    }

    // ------------------------------------------------------------------ record loop

    /**
     * Reads records until EOF (main stream) or until POSTCOPY_RUN or the end of the blob (package).
     */
    private void records(Input in, boolean inPackage) throws IOException {
        while (true) {
            if (inPackage && in.atEof()) {
                return;
            }
            long at = in.pos();
            int type = in.u8();
            switch (type) {
                case SECTION_EOF -> {
                    visitor.eof();
                    return;
                }
                case SECTION_START, SECTION_FULL -> {
                    SectionHeader h = in.with(f -> SectionHeader.readNamed(f, type, at));
                    sections.put(h.sectionId(), h);
                    section(in, h);
                }
                case SECTION_PART, SECTION_END -> {
                    int id = in.with(SectionHeader::readId);
                    SectionHeader start = sections.get(id);
                    if (start == null) {
                        throw in.errorAt((type == SECTION_PART ? "PART" : "END") + " of unknown section id " + id, at);
                    }
                    section(in, start.as(type, at));
                }
                case SECTION_COMMAND -> {
                    if (command(in, at, inPackage)) {
                        return;
                    }
                }
                case SECTION_CONFIGURATION -> throw in.errorAt("configuration section not right after the header", at);
                case SECTION_FOOTER -> throw in.errorAt("section footer outside a section", at);
                case SECTION_VMDESCRIPTION -> throw in.errorAt("vmdesc trailer before EOF", at);
                case SECTION_SUBSECTION -> throw in.errorAt("subsection outside a section", at);
                default -> throw in.errorAt(String.format("unknown section type 0x%02x", type), at);
            }
        }
    }

    private void section(Input in, SectionHeader h) throws IOException {
        in.section = h.describe();
        visitor.sectionStart(h);
        if (h.isRam()) {
            if (h.versionId() != RAM_SECTION_VERSION) {
                throw in.errorAt("ram section version " + h.versionId() + ", only 4 exists", h.offset());
            }
            ramChunk(in, h);
        } else {
            device(in, h);
        }
        boolean footer = footer(in, h);
        in.section = null;
        visitor.sectionEnd(h, footer);
    }

    private boolean footer(Input in, SectionHeader h) throws IOException {
        if (footers == null) {
            footers = in.peek(0) == SECTION_FOOTER;
        }
        if (!footers) {
            return false;
        }
        in.with(f -> {
            SectionHeader.readFooter(f, h.sectionId());
            return null;
        });
        return true;
    }

    // ------------------------------------------------------------------ device sections

    private void device(Input in, SectionHeader h) throws IOException {
        if (h.type() != SECTION_FULL && h.idstr().endsWith(ACCELERATOR_SUFFIX)) {
            visitor.deviceSection(h, accelerator(in, h));
            return;
        }
        VmsdLayout layout = null;
        if (vmdesc != null && h.type() == SECTION_FULL && !inColoCheckpoint) {
            layout = vmdesc.layout(h.displayName(), h.instanceId());
        }
        if (layout != null) {
            StreamValue.Struct v = decoder.decode(layout, Src.of(in), h.versionId());
            visitor.deviceSection(h, new Decoded(v, "vmdesc"));
            return;
        }
        long bodyAt = in.pos();
        byte[] body = splitAtFooter(in, h);
        DeviceBody result;
        if (h.type() != SECTION_FULL) {
            result = new Raw(body, "iterative section " + h.displayName() + " has no generic decoder");
        } else {
            result = decodeRaw(h, body, bodyAt, null);
            if (result instanceof Raw && vmdesc == null) {
                pending.add(new Pending(h, body, bodyAt));
            }
        }
        visitor.deviceSection(h, result);
    }

    /** idstr suffix of livemig's accelerators' iterative sections. */
    private static final String ACCELERATOR_SUFFIX = "/accel";

    /**
     * An accelerator's START, PART or END body (livemig's layout, {@link AcceleratorState}),
     * decoded record by record into leaves that hold the stream's bytes, so that rewriting it
     * gives the same bytes. A chunk's data is kept only with {@code keepRam} (a pass may send
     * hundreds of MiB in one section); without, its leaf is empty, as RAM pages are not kept.
     */
    private DeviceBody accelerator(Input in, SectionHeader h) throws IOException {
        List<StreamValue.Field> fields = new ArrayList<>();
        int chunk = 0;
        while (true) {
            long m = in.with(AcceleratorState::readMarker);
            fields.add(leaf("marker", -1, "uint64", be(m, 8)));
            if (m == AcceleratorState.END_OF_STATE) {
                break;
            } else if (m == AcceleratorState.SETUP) {
                fields.add(leaf("size", -1, "uint64", be(in.be64(), 8)));
                fields.add(leaf("chunk_size", -1, "uint32", be(in.be32(), 4)));
            } else if (m == AcceleratorState.DATA) {
                fields.add(leaf("offset", chunk, "uint64", be(in.be64(), 8)));
                int len = in.be32();
                fields.add(leaf("length", chunk, "uint32", be(len, 4)));
                fields.add(leaf("crc32c", chunk, "uint32", be(in.be32(), 4)));
                long n = len & 0xFFFF_FFFFL;
                byte[] data;
                if (keepRam) {
                    data = in.bytes(n, Integer.MAX_VALUE - 8, "accelerator chunk");
                } else {
                    in.with(f -> {
                        f.skip(n);
                        return null;
                    });
                    data = new byte[0];
                }
                fields.add(new StreamValue.Field("data", chunk, new StreamValue.Leaf("buffer", StreamValue.Kind.BYTES, data)));
                chunk++;
            } else if (m == AcceleratorState.MULTIFD) {
                fields.add(leaf("packets", -1, "uint32", be(in.be32(), 4)));
            } else if (m == AcceleratorState.CONFIG) {
                // the register state (a VMSD no trailer describes), then END_OF_STATE, up to the footer
                byte[] rest = splitAtFooter(in, h);
                if (rest.length < 8 || java.nio.ByteBuffer.wrap(rest, rest.length - 8, 8).getLong()
                        != AcceleratorState.END_OF_STATE) {
                    throw in.error("accelerator section " + h.describe() + ": CONFIG not followed by END_OF_STATE");
                }
                fields.add(new StreamValue.Field("config", -1, new StreamValue.Leaf("buffer", StreamValue.Kind.BYTES,
                        java.util.Arrays.copyOf(rest, rest.length - 8))));
                fields.add(leaf("marker", -1, "uint64", java.util.Arrays.copyOfRange(rest, rest.length - 8, rest.length)));
                break;
            }
        }
        return new Decoded(new StreamValue.Struct(fields, List.of()), "accelerator layout");
    }

    private static StreamValue.Field leaf(String name, int index, String type, byte[] raw) {
        return new StreamValue.Field(name, index, new StreamValue.Leaf(type, StreamValue.Kind.ofType(type), raw));
    }

    private static byte[] be(long v, int bytes) {
        byte[] b = new byte[bytes];
        for (int i = bytes - 1; i >= 0; i--) {
            b[i] = (byte) v;
            v >>>= 8;
        }
        return b;
    }

    /** Decodes a split-off body with the trailer (if known now) or the dump, else says why not. */
    private DeviceBody decodeRaw(SectionHeader h, byte[] body, long bodyAt, VmDescription late)
            throws IOException {
        VmDescription d = late != null ? late : vmdesc;
        String reason;
        if (d != null) {
            VmsdLayout layout = d.layout(h.displayName(), h.instanceId());
            if (layout != null) {
                Src.ArraySrc src = Src.of(body, bodyAt, h.describe());
                try {
                    StreamValue.Struct v = decoder.decode(layout, src, h.versionId());
                    if (src.atEnd()) {
                        return new Decoded(v, "vmdesc");
                    }
                    reason = "the vmdesc description used " + src.at + " of the section's " + body.length + " bytes";
                } catch (StreamFormatException e) {
                    reason = "the vmdesc description does not fit: " + e.getMessage();
                }
                if (inColoCheckpoint) {
                    // The trailer saw the initial migration's copy of this device; a checkpoint's
                    // may carry other subsections.
                    try {
                        return new Decoded(decoder.decodeGuessing(layout.inexact(), body, bodyAt, h.describe(),
                                h.versionId()), "vmdesc");
                    } catch (StreamFormatException e) {
                        reason += "; with its subsections as candidates: " + e.getMessage();
                    }
                }
                return new Raw(body, reason);
            }
            reason = "the vmdesc trailer does not describe it";
        } else {
            reason = "the stream has no vmdesc trailer";
        }
        if (dump != null) {
            VmsdLayout layout = dump.layout(h.displayName());
            if (layout == null) {
                return new Raw(body, reason + " and -dump-vmstate has no VMSD named like it");
            }
            try {
                return new Decoded(decoder.decodeGuessing(layout, body, bodyAt, h.describe(), h.versionId()),
                        "vmstate-dump");
            } catch (StreamFormatException e) {
                return new Raw(body, reason + "; " + e.getMessage());
            }
        }
        return new Raw(body, reason + " and no -dump-vmstate description was given");
    }

    /**
     * Reads a section body whose layout is unknown, up to its footer: the bytes 0x7E + be32 id
     * followed by what can start the next record (or the end of the data).
     */
    private byte[] splitAtFooter(Input in, SectionHeader h) throws IOException {
        if (footers == null) {
            footers = hasConfiguration;
        }
        if (!footers) {
            throw in.error("cannot find the end of section " + h.describe()
                    + ": it has no description and the stream has no section footers");
        }
        int id = h.sectionId();
        ByteArrayOutputStream body = new ByteArrayOutputStream();
        while (true) {
            if (in.peek(0) == SECTION_FOOTER && in.peek(1) == (id >>> 24 & 0xFF) && in.peek(2) == (id >>> 16 & 0xFF)
                    && in.peek(3) == (id >>> 8 & 0xFF) && in.peek(4) == (id & 0xFF)) {
                if (plausibleRecordAt(in, 5)) {
                    return body.toByteArray();
                }
            }
            if (body.size() >= limits.maxSectionBytes()) {
                throw in.error("no footer within " + limits.maxSectionBytes() + " bytes of section " + h.describe());
            }
            body.write(in.u8());
        }
    }

    /**
     * Whether the bytes {@code at} bytes ahead can start what follows a section: the end of the
     * data, EOF followed by the trailer or the end, a section header (a new one with a printable
     * idstr, or PART/END of a section already started) or a known command. A device's bytes
     * can hold a footer's five bytes; they rarely go on like this as well.
     */
    private boolean plausibleRecordAt(Input in, int at) throws IOException {
        int type = in.peek(at);
        switch (type) {
            case -1:
                return true;
            case SECTION_EOF: {
                int after = in.peek(at + 1);
                return after == -1 || after == SECTION_VMDESCRIPTION;
            }
            case SECTION_START:
            case SECTION_FULL: {
                int len = in.peek(at + 5);
                if (len < 1) {
                    return false;
                }
                for (int i = 0; i < len; i++) {
                    int c = in.peek(at + 6 + i);
                    if (c < 0x20 || c > 0x7E) {
                        return false;
                    }
                }
                return true;
            }
            case SECTION_PART:
            case SECTION_END: {
                int id = 0;
                for (int i = 1; i <= 4; i++) {
                    int b = in.peek(at + i);
                    if (b < 0) {
                        return false;
                    }
                    id = id << 8 | b;
                }
                return sections.containsKey(id);
            }
            case SECTION_COMMAND: {
                int hi = in.peek(at + 1);
                int lo = in.peek(at + 2);
                int cmd = hi << 8 | lo;
                return hi == 0 && cmd >= CMD_OPEN_RETURN_PATH && cmd <= CMD_SWITCHOVER_START;
            }
            default:
                return false;
        }
    }

    // ------------------------------------------------------------------ commands

    /** Handles a command; true when it ends the current package (POSTCOPY_RUN). */
    private boolean command(Input in, long at, boolean inPackage) throws IOException {
        int cmd = in.be16();
        int len = in.be16();
        in.section = "command " + commandName(cmd);
        int expected = switch (cmd) {
            case CMD_OPEN_RETURN_PATH, CMD_POSTCOPY_LISTEN, CMD_POSTCOPY_RUN, CMD_ENABLE_COLO, CMD_POSTCOPY_RESUME,
                 CMD_SWITCHOVER_START -> 0;
            case CMD_PING, CMD_PACKAGED -> 4;
            case CMD_POSTCOPY_ADVISE, CMD_POSTCOPY_RAM_DISCARD, CMD_RECV_BITMAP -> -1;
            default -> throw in.errorAt("unknown command " + cmd, at);
        };
        if (expected >= 0 && len != expected) {
            throw in.errorAt("command " + commandName(cmd) + " has length " + len + ", expected " + expected, at);
        }
        byte[] payload = in.bytes(len, 0xFFFF, "command payload");
        Command c = new Command(cmd, payload, at);
        switch (cmd) {
            case CMD_ENABLE_COLO -> coloEnabled = true;
            case CMD_POSTCOPY_ADVISE -> {
                if (len == 16) {
                    long summary = be64(payload, 0);
                    long tps = be64(payload, 8);
                    if (tps != pageSize) {
                        throw in.errorAt("POSTCOPY_ADVISE target page size " + tps + ", stream uses " + pageSize, at);
                    }
                    postcopyAdvise = new long[] {summary, tps};
                } else if (len != 0) {
                    throw in.errorAt("POSTCOPY_ADVISE has length " + len + ", expected 0 or 16", at);
                }
            }
            case CMD_POSTCOPY_RAM_DISCARD -> discard(in, at, payload);
            case CMD_RECV_BITMAP -> {
                if (len < 1 || len != 1 + (payload[0] & 0xFF)) {
                    throw in.errorAt("RECV_BITMAP length " + len + " does not match its block name", at);
                }
            }
            case CMD_PACKAGED -> {
                if (inPackage) {
                    throw in.errorAt("PACKAGED command inside a package", at);
                }
                long blobLen = be32(payload, 0) & 0xFFFFFFFFL;
                if (blobLen > limits.maxPackageBytes()) {
                    throw in.errorAt("package of " + blobLen + " bytes is beyond the limit of "
                            + limits.maxPackageBytes(), at);
                }
                long blobAt = in.pos();
                byte[] blob = in.bytes(blobLen, limits.maxPackageBytes(), "package");
                in.section = null;
                visitor.packageStart(c, (int) blobLen);
                Input nested = new Input(MigrationFile.ofBytes(blob), blobAt);
                records(nested, true);
                int rest = (int) (blobAt + blobLen - nested.pos());
                byte[] trailing = nested.bytes(rest, blobLen, "package remainder");
                visitor.packageEnd(trailing);
                return false;
            }
            default -> {
            }
        }
        in.section = null;
        visitor.command(c);
        return inPackage && cmd == CMD_POSTCOPY_RUN;
    }

    private void discard(Input in, long at, byte[] p) throws IOException {
        if (p.length < 3 || p[0] != 0) {
            throw in.errorAt("POSTCOPY_RAM_DISCARD: bad version or too short", at);
        }
        int nameLen = p[1] & 0xFF;
        int rangesAt = 2 + nameLen + 1;
        if (p.length < rangesAt || p[2 + nameLen] != 0 || (p.length - rangesAt) % 16 != 0) {
            throw in.errorAt("POSTCOPY_RAM_DISCARD: malformed block name or ranges", at);
        }
        String name = new String(p, 2, nameLen, java.nio.charset.StandardCharsets.ISO_8859_1);
        RamPageRecord.BlockEntry b = ramBlocks.get(name);
        if (b == null) {
            throw in.errorAt("POSTCOPY_RAM_DISCARD for unknown RAM block " + SectionHeader.display(name), at);
        }
        for (int i = rangesAt; i < p.length; i += 16) {
            long start = be64(p, i);
            long length = be64(p, i + 8);
            if (start < 0 || length < 0 || start % pageSize != 0 || length % pageSize != 0
                    || length > b.usedLength() || start > b.usedLength() - length) {
                throw in.errorAt("POSTCOPY_RAM_DISCARD range [" + start + ", +" + length + ") is not page-aligned"
                        + " inside block " + SectionHeader.display(name), at);
            }
            if (keepRam) {
                ram.discard(imageBlocks.get(name), start, length);
            }
        }
    }

    // ------------------------------------------------------------------ after EOF

    private void afterEof(Input in) throws IOException {
        if (in.atEof()) {
            lateDecode(null);
            return;
        }
        if (in.peek(0) == SECTION_VMDESCRIPTION) {
            long at = in.pos();
            in.u8();
            in.section = "vmdesc trailer";
            long len = in.be32() & 0xFFFFFFFFL;
            byte[] json = in.bytes(len, limits.maxVmdescBytes(), "vmdesc trailer");
            VmDescription d = VmDescription.parse(json, at, limits);
            in.section = null;
            if (vmdesc == null) {
                vmdesc = d;
            }
            visitor.vmdesc(json, d.tree());
            lateDecode(d);
        } else {
            throw in.error(String.format("byte 0x%02x after EOF where the vmdesc trailer or the end of the stream"
                    + " must be", in.peek(0)));
        }
        if (coloEnabled) {
            coloCheckpoints(in);
            return;
        }
        byte[] chunk = new byte[64 * 1024];
        while (!in.atEof()) {
            int n = 0;
            while (n < chunk.length && in.peek(0) >= 0) {
                chunk[n++] = (byte) in.u8();
            }
            visitor.trailing(java.util.Arrays.copyOf(chunk, n));
        }
    }

    /**
     * The primary's side of COLO after the initial migration: per checkpoint REQUEST, VMSTATE_SEND
     * and the RAM the guest dirtied (sections up to EOF), VMSTATE_SIZE and that many bytes of
     * device state (FULL sections up to EOF). Sections are reported as the initial stream's are,
     * between {@link StreamVisitor#coloCheckpointStart} and {@link StreamVisitor#coloCheckpointEnd}.
     */
    private void coloCheckpoints(Input in) throws IOException {
        int checkpoint = 0;
        while (!in.atEof()) {
            long at = in.pos();
            in.section = "COLO";
            ColoMessage m = in.with(ColoMessage::read);
            switch (m) {
                case CHECKPOINT_REQUEST -> {
                    visitor.coloMessage(m, -1, at);
                    visitor.coloCheckpointStart(++checkpoint, at);
                    inColoCheckpoint = true;
                }
                case VMSTATE_SEND -> {
                    if (checkpoint == 0) {
                        throw in.errorAt("COLO vmstate-send before any checkpoint-request", at);
                    }
                    visitor.coloMessage(m, -1, at);
                    in.section = null;
                    records(in, false);
                }
                case VMSTATE_SIZE -> {
                    long n = in.with(f -> f.getBe64());
                    if (n < 0 || n > Math.min(ColoMessage.MAX_VMSTATE_BYTES, limits.maxPackageBytes())) {
                        throw in.errorAt("COLO device state of " + Long.toUnsignedString(n) + " bytes is beyond the limit", at);
                    }
                    visitor.coloMessage(m, n, at);
                    long blobAt = in.pos();
                    byte[] blob = in.bytes(n, n, "COLO device state");
                    in.section = null;
                    Input nested = new Input(MigrationFile.ofBytes(blob), blobAt);
                    records(nested, true);
                    if (!nested.atEof()) {
                        throw nested.error("COLO device state goes on after its EOF");
                    }
                    visitor.coloCheckpointEnd(checkpoint, n);
                    inColoCheckpoint = false;
                }
                default -> throw in.errorAt("COLO message " + m.qemuName() + " on the primary's stream"
                        + " (the secondary sends it)", at);
            }
        }
        in.section = null;
    }

    private void lateDecode(VmDescription d) throws IOException {
        for (Pending p : pending) {
            visitor.deviceSectionLate(p.header(), decodeRaw(p.header(), p.body(), p.bodyOffset(), d));
        }
        pending.clear();
    }

    // ------------------------------------------------------------------ RAM

    private void ramChunk(Input in, SectionHeader h) throws IOException {
        if (scratch == null) {
            scratch = scratchArena.allocate(1 << MAX_PAGE_BITS, 64);
        }
        if (record == null || recordPageSize != pageSize) {
            record = new RamPageRecord(pageSize);
            recordPageSize = pageSize;
        }
        RamPageRecord rec = record;
        while (true) {
            in.with(f -> {
                rec.readHeader(f);
                return null;
            });
            long at = in.pos() - 8;
            long header = rec.header();
            long addr = rec.address();
            RamRecord r;
            switch (rec.kind()) {
                case MEM_SIZE -> r = memSize(in, at, header, addr);
                case ZERO -> {
                    String name = blockName(in, rec, at);
                    RamImage.Block b = pageBlock(in, addr, at);
                    int fill = in.with(rec::readFill);
                    if (keepRam) {
                        try {
                            ram.fill(b, addr, fill);
                        } catch (RamImage.RamLimitException e) {
                            throw in.errorAt(e.getMessage(), at);
                        }
                    }
                    r = new RamRecord(at, header, RamPageRecord.Kind.ZERO, name, currentBlock.name(), fill, 0, null, null, null);
                }
                case PAGE -> {
                    String name = blockName(in, rec, at);
                    RamImage.Block b = pageBlock(in, addr, at);
                    MemorySegment page = scratch.asSlice(0, pageSize);
                    in.with(f -> {
                        rec.readPage(f, page, 0);
                        return null;
                    });
                    if (keepRam) {
                        try {
                            ram.store(b, addr, page);
                        } catch (RamImage.RamLimitException e) {
                            throw in.errorAt(e.getMessage(), at);
                        }
                    }
                    r = new RamRecord(at, header, RamPageRecord.Kind.PAGE, name, currentBlock.name(), 0, 0, null, page, null);
                }
                case XBZRLE -> {
                    String name = blockName(in, rec, at);
                    RamImage.Block b = pageBlock(in, addr, at);
                    int enc = in.with(rec::readXbzrleEncoding);
                    if (enc != org.livemig.stream.XbzrleCodec.ENCODING_XBZRLE) {
                        throw in.errorAt("XBZRLE record with encoding " + enc + ", only 1 exists", at);
                    }
                    int len = in.with(rec::readXbzrleLength);
                    if (len > pageSize) {
                        throw in.errorAt("XBZRLE delta of " + len + " bytes is longer than a page", at);
                    }
                    byte[] data = in.bytes(len, pageSize, "XBZRLE delta");
                    MemorySegment page = writablePage(in, b, addr, at);
                    String err = org.livemig.stream.XbzrleCodec.decode(data, data.length, page, 0, pageSize);
                    if (err != null) {
                        throw in.errorAt(String.format("XBZRLE record for page 0x%x of %s: %s", addr,
                                SectionHeader.display(currentBlock.name()), err), at);
                    }
                    r = new RamRecord(at, header, RamPageRecord.Kind.XBZRLE, name, currentBlock.name(), 0, enc, data, page, null);
                }
                case COMPRESS_PAGE -> {
                    String name = blockName(in, rec, at);
                    RamImage.Block b = pageBlock(in, addr, at);
                    long len = in.with(rec::readCompressedLength);
                    int max = org.livemig.stream.CompressedPageCodec.compressBound(pageSize);
                    if (len == 0 || len > max) {
                        throw in.errorAt("COMPRESS_PAGE payload of " + len + " bytes (limit " + max + ")", at);
                    }
                    byte[] data = in.bytes(len, max, "compressed page");
                    MemorySegment page = scratch.asSlice(0, pageSize);
                    if (inflater == null || inflater.page().length != pageSize) {
                        if (inflater != null) {
                            inflater.close();
                        }
                        inflater = new org.livemig.stream.CompressedPageCodec.Decompressor(pageSize);
                    }
                    String err = inflater.decompress(data, 0, data.length);
                    if (err != null) {
                        throw in.errorAt(String.format("compressed page 0x%x of %s: %s", addr,
                                SectionHeader.display(currentBlock.name()), err), at);
                    }
                    MemorySegment.copy(inflater.page(), 0, page, java.lang.foreign.ValueLayout.JAVA_BYTE, 0, pageSize);
                    if (keepRam) {
                        try {
                            ram.store(b, addr, page);
                        } catch (RamImage.RamLimitException e) {
                            throw in.errorAt(e.getMessage(), at);
                        }
                    }
                    r = new RamRecord(at, header, RamPageRecord.Kind.COMPRESS_PAGE, name, currentBlock.name(), 0, 0, data, page,
                            null);
                }
                case EOS -> {
                    visitor.ramRecord(h, new RamRecord(at, header, RamPageRecord.Kind.EOS, null, null, 0, 0, null, null, null));
                    return;
                }
                case MULTIFD_FLUSH ->
                        r = new RamRecord(at, header, RamPageRecord.Kind.MULTIFD_FLUSH, null, null, 0, 0, null, null, null);
                case HOOK -> throw in.errorAt("RAM hook record (RDMA only) in a byte stream", at);
                default -> throw in.errorAt(String.format("unknown RAM record flags 0x%x", rec.flags()), at);
            }
            visitor.ramRecord(h, r);
        }
    }

    private MemorySegment writablePage(Input in, RamImage.Block b, long addr, long at) throws IOException {
        if (!keepRam) {
            MemorySegment s = scratch.asSlice(0, pageSize);
            ram.readPage(b, addr, s);
            return s;
        }
        try {
            return ram.pageForWrite(b, addr);
        } catch (RamImage.RamLimitException e) {
            throw in.errorAt(e.getMessage(), at);
        }
    }

    /** Reads the block name unless CONTINUE; makes that block current. Returns the name read or null. */
    private String blockName(Input in, RamPageRecord rec, long at) throws IOException {
        if (rec.continues()) {
            if (currentBlock == null) {
                throw in.errorAt("RAM record with CONTINUE but no previous block", at);
            }
            return null;
        }
        String name = in.with(rec::readBlockName);
        RamPageRecord.BlockEntry b = ramBlocks.get(name);
        if (b == null) {
            throw in.errorAt("RAM record for unknown block " + SectionHeader.display(name), at);
        }
        currentBlock = b;
        return name;
    }

    private RamImage.Block pageBlock(Input in, long addr, long at) throws IOException {
        if (addr < 0 || addr >= currentBlock.usedLength()) {
            throw in.errorAt(String.format("RAM page offset 0x%x outside block %s of 0x%x bytes", addr,
                    SectionHeader.display(currentBlock.name()), currentBlock.usedLength()), at);
        }
        return imageBlocks.get(currentBlock.name());
    }

    private RamRecord memSize(Input in, long at, long header, long total) throws IOException {
        List<RamPageRecord.BlockEntry> list = new ArrayList<>();
        long remaining = total;
        java.util.Set<String> seen = new java.util.HashSet<>();
        while (remaining != 0) {
            if (list.size() >= limits.maxRamBlocks()) {
                throw in.errorAt("more than " + limits.maxRamBlocks() + " RAM blocks", at);
            }
            long entryAt = in.pos();
            long[] advise = postcopyAdvise;
            java.util.function.LongPredicate isPageSize = advise != null && advise[0] != advise[1]
                    ? v -> Long.bitCount(v) == 1 && v > pageSize && (v & advise[0]) != 0 : null;
            RamPageRecord.BlockEntry e = in.with(f -> RamPageRecord.readBlockEntry(f, isPageSize, ignoreShared));
            String name = e.name();
            long used = e.usedLength();
            if (name.isEmpty()) {
                throw in.errorAt("RAM block with an empty name", entryAt);
            }
            if (used <= 0 || Long.compareUnsigned(used, remaining) > 0) {
                throw in.errorAt(String.format("RAM block %s of 0x%x bytes does not fit the 0x%x bytes left of the total",
                        SectionHeader.display(name), used, remaining), entryAt);
            }
            if (!seen.add(name)) {
                throw in.errorAt("RAM block " + SectionHeader.display(name) + " listed twice", entryAt);
            }
            RamPageRecord.BlockEntry old = ramBlocks.get(name);
            if (old != null && old.usedLength() != used) {
                throw in.errorAt("RAM block " + SectionHeader.display(name) + " changes length", entryAt);
            }
            ramBlocks.put(name, e);
            try {
                imageBlocks.put(name, ram.define(name, used));
            } catch (IOException | RuntimeException ex) {
                throw in.errorAt("cannot keep RAM block " + SectionHeader.display(name) + " of " + used + " bytes: "
                        + ex.getMessage(), entryAt);
            }
            list.add(e);
            remaining -= used;
        }
        return new RamRecord(at, header, RamPageRecord.Kind.MEM_SIZE, null, null, 0, 0, null, null, List.copyOf(list));
    }

    static long be64(byte[] b, int i) {
        long v = 0;
        for (int k = 0; k < 8; k++) {
            v = v << 8 | (b[i + k] & 0xFF);
        }
        return v;
    }

    static int be32(byte[] b, int i) {
        return (b[i] & 0xFF) << 24 | (b[i + 1] & 0xFF) << 16 | (b[i + 2] & 0xFF) << 8 | (b[i + 3] & 0xFF);
    }

    @Override
    public void close() {
        if (inflater != null) {
            inflater.close();
        }
        scratchArena.close();
        if (ram != null) {
            ram.close();
        }
    }
}
