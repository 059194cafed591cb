package org.livemig.analyze;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.livemig.analyze.StreamEvents.Command;
import org.livemig.analyze.StreamEvents.Configuration;
import org.livemig.analyze.StreamEvents.Decoded;
import org.livemig.analyze.StreamEvents.DeviceBody;
import org.livemig.analyze.StreamEvents.RamRecord;
import org.livemig.analyze.StreamEvents.Raw;
import org.livemig.stream.QemuStream;
import org.livemig.stream.RamPageRecord;
import org.livemig.stream.SectionHeader;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * What {@code livemig analyze} learns from a stream: the device state in analyze-migration.py's
 * {@code --dump state} shape, the vmdesc ({@code --dump desc}), the RAM the stream leaves, the
 * configuration, the commands, statistics, and the sections it could not decode with the reason.
 *
 * <p>Filled by the reader's thread through its {@link StreamVisitor} side, then read-only. Owns
 * the {@link RamImage}: {@link #close()} frees it.
 */
public final class Analysis implements StreamVisitor, AutoCloseable {
    /** A section that is not decoded, and why. */
    public record Undecoded(String section, long offset, int bytes, String reason) {
    }

    /**
     * One COLO checkpoint of the primary's stream: where it began, what its RAM part held (page
     * records by kind) and its device state (sections and bytes).
     */
    public record ColoCheckpoint(int number, long offset, Map<RamPageRecord.Kind, Long> ramRecords, int deviceSections,
                                 long deviceBytes, boolean complete) {
    }

    /** Counts of what the stream held. */
    public static final class Stats {
        public final Map<Integer, Integer> sectionsByType = new LinkedHashMap<>();
        public final Map<RamPageRecord.Kind, Long> ramRecords = new EnumMap<>(RamPageRecord.Kind.class);
        public int footers;
        /**
         * Subsections at the top level of device sections (as the fixtures' walker counts them;
         * nested ones and configuration subsections not counted).
         */
        public int subsections;
        public long bytes;
        public long trailingBytes;

        public int sections(int type) {
            return sectionsByType.getOrDefault(type, 0);
        }

        public long ram(RamPageRecord.Kind kind) {
            return ramRecords.getOrDefault(kind, 0L);
        }
    }

    private final Map<Integer, String> keys = new LinkedHashMap<>();
    private final Map<Integer, JsonNode> values = new LinkedHashMap<>();
    private final Map<Integer, ObjectNode> ramSizes = new LinkedHashMap<>();
    private final List<org.livemig.analyze.StreamEvents.MappedRamBlock> mappedRam = new ArrayList<>();
    /** Undecoded sections by the offset of their header. */
    private final Map<Long, Undecoded> undecoded = new LinkedHashMap<>();
    private final List<Command> commands = new ArrayList<>();
    private final Stats stats = new Stats();
    private Configuration configuration;
    private JsonNode desc;
    private RamImage ram;
    private int pageSize = QemuStream.TARGET_PAGE_SIZE;
    private boolean eof;
    private final List<ColoCheckpoint> colo = new ArrayList<>();
    /** The checkpoint being read: its number (0: none), offset, records and device sections. */
    private int coloNumber;
    private long coloOffset;
    private Map<RamPageRecord.Kind, Long> coloRam;
    private int coloDevices;

    Analysis() {
    }

    void finish(StreamReader reader, long bytes) {
        this.ram = reader.takeRam();
        this.pageSize = reader.pageSize();
        this.stats.bytes = bytes;
        if (desc == null && reader.vmdesc() != null) {
            desc = reader.vmdesc().tree();
        }
    }

    // ------------------------------------------------------------------ results

    /** The device state as analyze-migration.py's {@code --dump state} prints it. */
    public ObjectNode state() {
        ObjectNode o = StateJson.F.objectNode();
        for (var e : keys.entrySet()) {
            o.set(e.getValue(), values.get(e.getKey()));
        }
        return o;
    }

    /** The COLO checkpoints as JSON ({@code livemig analyze --dump colo}). */
    public ObjectNode coloJson() {
        ObjectNode o = StateJson.F.objectNode();
        var list = o.putArray("checkpoints");
        for (ColoCheckpoint c : colo()) {
            ObjectNode e = list.addObject();
            e.put("checkpoint", c.number());
            e.put("offset", c.offset());
            ObjectNode pages = e.putObject("ram records");
            c.ramRecords().entrySet().stream().sorted(Map.Entry.comparingByKey())
                    .forEach(r -> pages.put(r.getKey().name().toLowerCase(java.util.Locale.ROOT), r.getValue()));
            e.put("device sections", c.deviceSections());
            e.put("device bytes", c.deviceBytes());
            e.put("complete", c.complete());
        }
        return o;
    }

    /** The vmdesc trailer (analyze-migration.py's {@code --dump desc}), or null when there is none. */
    public JsonNode desc() {
        return desc;
    }

    public RamImage ram() {
        return ram;
    }

    public int pageSize() {
        return pageSize;
    }

    public Configuration configuration() {
        return configuration;
    }

    public List<Command> commands() {
        return Collections.unmodifiableList(commands);
    }

    /** The COLO checkpoints after the initial migration, in order (a last one may be incomplete). */
    public List<ColoCheckpoint> colo() {
        List<ColoCheckpoint> all = new ArrayList<>(colo);
        if (coloNumber != 0) {
            all.add(new ColoCheckpoint(coloNumber, coloOffset, Map.copyOf(coloRam), coloDevices, 0, false));
        }
        return all;
    }

    public List<Undecoded> undecoded() {
        return List.copyOf(undecoded.values());
    }

    public Stats stats() {
        return stats;
    }

    /**
     * Writes each RAM block's final contents to a file under {@code dir} (named after the block,
     * its slashes making subdirectories as analyze-migration.py's extract does) and the device
     * state to {@code dir/state.json}. Returns the files written.
     */
    public List<Path> extract(Path dir) throws IOException {
        Files.createDirectories(dir);
        List<Path> out = new ArrayList<>();
        for (RamImage.Block b : ram.blocks().values()) {
            Path f = dir.resolve(RamImage.fileName(b.name()));
            Files.createDirectories(f.getParent());
            ram.writeBlock(b, f);
            out.add(f);
        }
        Path stateFile = dir.resolve("state.json");
        Files.writeString(stateFile, PythonJson.write(state()) + "\n", StandardCharsets.UTF_8);
        out.add(stateFile);
        return out;
    }

    @Override
    public void close() {
        if (ram != null) {
            ram.close();
        }
    }

    // ------------------------------------------------------------------ visitor side

    @Override
    public void configuration(Configuration c) {
        configuration = c;
    }

    @Override
    public void command(Command c) {
        commands.add(c);
    }

    @Override
    public void packageStart(Command c, int blobLength) {
        commands.add(c);
    }

    @Override
    public void sectionStart(SectionHeader h) {
        stats.sectionsByType.merge(h.type(), 1, Integer::sum);
        if (h.type() == QemuStream.SECTION_START || h.type() == QemuStream.SECTION_FULL) {
            keys.put(h.sectionId(), h.displayName() + " (" + h.sectionId() + ")");
            if (h.isRam()) {
                ObjectNode sizes = ramSizes.computeIfAbsent(h.sectionId(), k -> StateJson.F.objectNode());
                values.put(h.sectionId(), StateJson.F.objectNode().set("section sizes", sizes));
            } else {
                values.put(h.sectionId(), StateJson.F.objectNode());
            }
        }
    }

    /** Mapped-ram streams: each block's header and pages, beside the ram section's sizes. */
    @Override
    public void mappedRamBlock(SectionHeader h, org.livemig.analyze.StreamEvents.MappedRamBlock b) {
        mappedRam.add(b);
        if (values.get(h.sectionId()) instanceof ObjectNode section) {
            ObjectNode m = section.has("mapped-ram") ? (ObjectNode) section.get("mapped-ram") : section.putObject("mapped-ram");
            ObjectNode e = m.putObject(SectionHeader.display(b.block()));
            e.put("version", b.version());
            e.put("bitmap offset", String.format("0x%016x", b.bitmapOffset()));
            e.put("pages offset", String.format("0x%016x", b.pagesOffset()));
            e.put("pages in file", b.pagesInFile());
            e.put("pages", b.pages());
        }
    }

    /** The blocks of a mapped-ram stream, in stream order (empty for any other stream). */
    public List<org.livemig.analyze.StreamEvents.MappedRamBlock> mappedRam() {
        return List.copyOf(mappedRam);
    }

    @Override
    public void coloCheckpointStart(int n, long offset) {
        coloNumber = n;
        coloOffset = offset;
        coloRam = new EnumMap<>(RamPageRecord.Kind.class);
        coloDevices = 0;
    }

    @Override
    public void coloCheckpointEnd(int n, long deviceBytes) {
        colo.add(new ColoCheckpoint(n, coloOffset, Map.copyOf(coloRam), coloDevices, deviceBytes, true));
        coloNumber = 0;
    }

    @Override
    public void ramRecord(SectionHeader h, RamRecord r) {
        stats.ramRecords.merge(r.kind(), 1L, Long::sum);
        if (coloNumber != 0) {
            coloRam.merge(r.kind(), 1L, Long::sum);
        }
        if (r.kind() == RamPageRecord.Kind.MEM_SIZE) {
            ObjectNode sizes = ramSizes.computeIfAbsent(h.sectionId(), k -> StateJson.F.objectNode());
            for (var b : r.blocks()) {
                sizes.put(SectionHeader.display(b.name()), String.format("0x%016x", b.usedLength()));
            }
        }
    }

    @Override
    public void deviceSection(SectionHeader h, DeviceBody body) {
        if (coloNumber != 0) {
            coloDevices++;
        }
        record(h, body);
    }

    @Override
    public void deviceSectionLate(SectionHeader h, DeviceBody body) {
        record(h, body);
    }

    private void record(SectionHeader h, DeviceBody body) {
        switch (body) {
            case Decoded d -> {
                undecoded.remove(h.offset());
                if (values.containsKey(h.sectionId())) {
                    values.put(h.sectionId(), StateJson.struct(d.value()));
                }
                stats.subsections += d.value().subsections().size();
            }
            case Raw r -> {
                undecoded.put(h.offset(), new Undecoded(h.describe(), h.offset(), r.bytes().length, r.reason()));
                if (values.containsKey(h.sectionId()) && h.type() == QemuStream.SECTION_FULL) {
                    ObjectNode o = StateJson.F.objectNode();
                    o.put("undecoded", r.reason());
                    o.put("size", r.bytes().length);
                    values.put(h.sectionId(), o);
                }
            }
        }
    }

    @Override
    public void sectionEnd(SectionHeader h, boolean footer) {
        if (footer) {
            stats.footers++;
        }
    }

    @Override
    public void eof() {
        eof = true;
    }

    @Override
    public void vmdesc(byte[] json, JsonNode tree) {
        desc = tree;
    }

    @Override
    public void trailing(byte[] chunk) {
        stats.trailingBytes += chunk.length;
    }
}
