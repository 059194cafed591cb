package org.livemig.analyze;

import static org.livemig.stream.QemuStream.*;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.zip.Deflater;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIfSystemProperty;
import org.livemig.analyze.StreamEvents.Command;
import org.livemig.analyze.StreamEvents.Configuration;
import org.livemig.analyze.StreamEvents.RamRecord;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.RamPageRecord;
import org.livemig.stream.SectionHeader;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.node.ArrayNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * Writes the small structured seeds of {@link StreamReaderFuzzTest}'s corpus: streams of a few
 * hundred bytes to a few KiB that still hold every record kind (configuration subsections, all
 * RAM record kinds, device sections with subsections and a vmdesc describing them, commands,
 * a postcopy package, no-footer sections). Run with
 * {@code -Dlivemig.writeSeeds=src/test/resources/org/livemig/analyze/StreamReaderFuzzTestInputs/fuzzReader};
 * {@link #seeds()} also feeds a regression test that the seeds stay readable.
 */
class FuzzSeedGenerator {
    static final Set<String> DEVICES = Set.of("timer", "cpu_common", "fw_cfg", "i8259", "port92", "pckbd");

    static final Arena ARENA = Arena.ofAuto();

    static RamRecord rec(long header, RamPageRecord.Kind kind, String block, String blockOf, int fill, byte[] enc,
                         MemorySegment page, List<RamPageRecord.BlockEntry> blocks) {
        return new RamRecord(-1, header, kind, block, blockOf, fill, 1, enc, page, blocks);
    }

    static MemorySegment page(int seed) {
        MemorySegment p = ARENA.allocate(4096);
        for (int i = 0; i < 4096; i++) {
            p.set(java.lang.foreign.ValueLayout.JAVA_BYTE, i, (byte) (i * seed + seed));
        }
        return p;
    }

    static byte[] deflate(MemorySegment page) {
        Deflater d = new Deflater(1);
        d.setInput(page.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE));
        d.finish();
        byte[] out = new byte[5000];
        int n = d.deflate(out);
        d.end();
        return java.util.Arrays.copyOf(out, n);
    }

    /** Small RAM: two blocks, every record kind. */
    static void ram(StreamRewriter w, SectionHeader start, boolean footers, boolean ignoreShared) {
        List<RamPageRecord.BlockEntry> blocks = List.of(new RamPageRecord.BlockEntry("pc.ram", 0x10000, null, ignoreShared ? 0L : null),
                new RamPageRecord.BlockEntry("pc.bios", 0x2000, null, ignoreShared ? 0xfffe0000L : null));
        w.sectionStart(start);
        w.ramRecord(start, rec(0x12000 | RamPageRecord.FLAG_MEM_SIZE, RamPageRecord.Kind.MEM_SIZE, null, null, 0, null, null, blocks));
        w.ramRecord(start, rec(RamPageRecord.FLAG_EOS, RamPageRecord.Kind.EOS, null, null, 0, null, null, null));
        w.sectionEnd(start, footers);
        SectionHeader part = start.as(SECTION_PART, -1);
        w.sectionStart(part);
        w.ramRecord(part, rec(RamPageRecord.FLAG_ZERO, RamPageRecord.Kind.ZERO, "pc.ram", "pc.ram", 0, null, null, null));
        w.ramRecord(part, rec(0x1000 | RamPageRecord.FLAG_PAGE | RamPageRecord.FLAG_CONTINUE, RamPageRecord.Kind.PAGE, null, "pc.ram", 0, null,
                page(3), null));
        w.ramRecord(part, rec(0x2000 | RamPageRecord.FLAG_ZERO | RamPageRecord.FLAG_CONTINUE, RamPageRecord.Kind.ZERO, null, "pc.ram", 7, null,
                null, null));
        w.ramRecord(part, rec(0x1000 | RamPageRecord.FLAG_XBZRLE | RamPageRecord.FLAG_CONTINUE, RamPageRecord.Kind.XBZRLE, null, "pc.ram", 0,
                new byte[] {0, 1, 0x75, 0x7f, 2, 0x11, 0x15}, null, null));
        w.ramRecord(part, rec(0x1000 | RamPageRecord.FLAG_COMPRESS_PAGE, RamPageRecord.Kind.COMPRESS_PAGE, "pc.bios", "pc.bios", 0,
                deflate(page(5)), null, null));
        w.ramRecord(part, rec(RamPageRecord.FLAG_MULTIFD_FLUSH, RamPageRecord.Kind.MULTIFD_FLUSH, null, null, 0, null, null, null));
        w.ramRecord(part, rec(RamPageRecord.FLAG_EOS, RamPageRecord.Kind.EOS, null, null, 0, null, null, null));
        w.sectionEnd(part, footers);
        SectionHeader end = start.as(SECTION_END, -1);
        w.sectionStart(end);
        w.ramRecord(end, rec(RamPageRecord.FLAG_EOS, RamPageRecord.Kind.EOS, null, null, 0, null, null, null));
        w.sectionEnd(end, footers);
    }

    static void devices(StreamRewriter w, boolean footers) {
        for (int i = 0; i < SyntheticStreamsTest.devHeaders.size(); i++) {
            SectionHeader h = SyntheticStreamsTest.devHeaders.get(i);
            if (DEVICES.contains(h.displayName())) {
                w.sectionStart(h);
                w.deviceSection(h, SyntheticStreamsTest.devBodies.get(i));
                w.sectionEnd(h, footers);
            }
        }
    }

    /** A vmdesc with only the devices written, in the compact shape QEMU writes. */
    static byte[] vmdesc() throws Exception {
        JsonNode full = Json.MAPPER.readTree(SyntheticStreamsTest.vmdesc);
        ObjectNode root = Json.MAPPER.createObjectNode();
        root.put("page_size", 4096);
        ArrayNode devs = root.putArray("devices");
        for (JsonNode d : full.get("devices")) {
            if (DEVICES.contains(d.get("name").stringValue())) {
                devs.add(d);
            }
        }
        return Json.MAPPER.writeValueAsString(root).getBytes(StandardCharsets.UTF_8);
    }

    static Command cmd(int c, byte[] p) {
        return new Command(c, p, -1);
    }

    static List<byte[]> seeds() throws Exception {
        SyntheticStreamsTest.decodePaused();
        SectionHeader ram = new SectionHeader(SECTION_START, 2, "ram", 0, 4, -1);
        Configuration plain = SyntheticStreamsTest.config;
        List<byte[]> seeds = new ArrayList<>();

        // precopy with every RAM record kind, device sections and a trailer
        MigrationFile out = MigrationFile.toMemory();
        StreamRewriter w = new StreamRewriter(out, 4096);
        w.header(MAGIC, VERSION);
        w.configuration(plain);
        w.command(cmd(CMD_OPEN_RETURN_PATH, new byte[0]));
        w.command(cmd(CMD_PING, new byte[] {0, 0, 0, 1}));
        ram(w, ram, true, false);
        devices(w, true);
        w.eof();
        byte[] desc = vmdesc();
        w.vmdesc(desc, null);
        w.end();
        seeds.add(out.toByteArray());

        // configuration subsections, x-ignore-shared block addresses, COLO and RECV_BITMAP commands
        out = MigrationFile.toMemory();
        w = new StreamRewriter(out, 4096);
        w.header(MAGIC, VERSION);
        w.configuration(new Configuration("pc-i440fx-7.2", List.of(
                new StreamEvents.TargetPageBits("configuration/target-page-bits", 1, 12),
                new StreamEvents.Capabilities("configuration/capabilities", 1, List.of("x-ignore-shared")),
                new StreamEvents.Uuid("configuration/uuid", 1, new byte[16])), -1));
        w.command(cmd(CMD_ENABLE_COLO, new byte[0]));
        ram(w, ram, true, true);
        w.command(cmd(CMD_RECV_BITMAP, new byte[] {6, 'p', 'c', '.', 'r', 'a', 'm'}));
        w.command(cmd(CMD_POSTCOPY_RESUME, new byte[0]));
        devices(w, true);
        w.eof();
        w.vmdesc(desc, null);
        w.trailing(new byte[] {0, 0, 0, 1});
        w.end();
        seeds.add(out.toByteArray());

        // postcopy: discard, package with device state, no trailer
        out = MigrationFile.toMemory();
        w = new StreamRewriter(out, 4096);
        w.header(MAGIC, VERSION);
        w.configuration(plain);
        w.command(cmd(CMD_POSTCOPY_ADVISE, ByteBuffer.allocate(16).putLong(0x201000).putLong(0x1000).array()));
        ram(w, ram, true, false);
        w.command(cmd(CMD_POSTCOPY_RAM_DISCARD, ByteBuffer.allocate(3 + 6 + 16).put((byte) 0).put((byte) 6)
                .put("pc.ram".getBytes()).put((byte) 0).putLong(0x1000).putLong(0x2000).array()));
        w.packageStart(cmd(CMD_PACKAGED, new byte[4]), 0);
        w.command(cmd(CMD_POSTCOPY_LISTEN, new byte[0]));
        devices(w, true);
        w.command(cmd(CMD_PING, new byte[] {0, 0, 0, 3}));
        w.command(cmd(CMD_POSTCOPY_RUN, new byte[0]));
        w.packageEnd(new byte[0]);
        w.command(cmd(CMD_SWITCHOVER_START, new byte[0]));
        w.eof();
        w.end();
        seeds.add(out.toByteArray());

        // an old machine: no configuration, no footers
        out = MigrationFile.toMemory();
        w = new StreamRewriter(out, 4096);
        w.header(MAGIC, VERSION);
        ram(w, ram, false, false);
        devices(w, false);
        w.eof();
        w.vmdesc(desc, null);
        w.end();
        seeds.add(out.toByteArray());
        return seeds;
    }

    /**
     * A fixture cut down to a few KiB while staying a valid stream: at most {@code keep} RAM
     * records per section and the first 12 RAM sections (a record whose CONTINUE would now refer
     * to another block names its block), only the {@link #DEVICES} sections, and a vmdesc that
     * describes just those.
     */
    static byte[] reduce(byte[] fixture, int keep) throws Exception {
        MigrationFile out = MigrationFile.toMemory();
        StreamRewriter w = new StreamRewriter(out, 4096);
        List<JsonNode> kept = new ArrayList<>();
        StreamVisitor filter = new StreamVisitor() {
            int ramSections;
            int inSection;
            boolean dropSection;
            String lastBlock;

            @Override
            public void header(int magic, int version) {
                w.header(magic, version);
            }

            @Override
            public void configuration(Configuration c) {
                w.configuration(c);
            }

            @Override
            public void command(Command c) {
                w.command(c);
            }

            @Override
            public void packageStart(Command c, int blobLength) {
                w.packageStart(c, blobLength);
            }

            @Override
            public void packageEnd(byte[] trailing) {
                w.packageEnd(trailing);
            }

            @Override
            public void sectionStart(SectionHeader h) {
                inSection = 0;
                if (h.isRam()) {
                    ramSections++;
                    dropSection = ramSections > 12 && h.type() == SECTION_PART;
                } else {
                    dropSection = !DEVICES.contains(h.displayName());
                }
                if (!dropSection) {
                    w.sectionStart(h);
                }
            }

            @Override
            public void ramRecord(SectionHeader h, RamRecord r) {
                if (dropSection) {
                    return;
                }
                if (r.kind() != RamPageRecord.Kind.EOS && r.kind() != RamPageRecord.Kind.MEM_SIZE && inSection++ >= keep) {
                    return;
                }
                RamRecord k = r;
                if (r.blockOf() != null) {
                    if (r.block() == null && !r.blockOf().equals(lastBlock)) {
                        k = new RamRecord(r.offset(), r.header() & ~(long) RamPageRecord.FLAG_CONTINUE, r.kind(), r.blockOf(),
                                r.blockOf(), r.fill(), r.encoding(), r.encoded(), r.page(), r.blocks());
                    }
                    lastBlock = r.blockOf();
                }
                w.ramRecord(h, k);
            }

            @Override
            public void deviceSection(SectionHeader h, StreamEvents.DeviceBody body) {
                if (!dropSection) {
                    w.deviceSection(h, body);
                }
            }

            @Override
            public void sectionEnd(SectionHeader h, boolean footer) {
                if (!dropSection) {
                    w.sectionEnd(h, footer);
                }
            }

            @Override
            public void eof() {
                w.eof();
            }

            @Override
            public void vmdesc(byte[] json, JsonNode tree) {
                ObjectNode root = Json.MAPPER.createObjectNode();
                root.put("page_size", 4096);
                ArrayNode devs = root.putArray("devices");
                for (JsonNode d : tree.get("devices")) {
                    if (DEVICES.contains(d.get("name").stringValue())) {
                        devs.add(d);
                    }
                }
                byte[] b = Json.MAPPER.writeValueAsString(root).getBytes(StandardCharsets.UTF_8);
                w.vmdesc(b, root);
            }

            @Override
            public void end() {
                w.end();
            }
        };
        try (StreamReader r = new StreamReader(filter, Limits.DEFAULT, Analyzer.locateTrailer(fixture, Limits.DEFAULT),
                null, true)) {
            r.read(MigrationFile.ofBytes(fixture));
        }
        return out.toByteArray();
    }

    @Test
    @EnabledIfSystemProperty(named = "livemig.writeSeeds", matches = ".+")
    void writeSeeds() throws Exception {
        Path dir = Path.of(System.getProperty("livemig.writeSeeds"));
        Files.createDirectories(dir);
        List<byte[]> seeds = seeds();
        String[] names = {"seed-precopy-all-records", "seed-config-subsections-colo", "seed-postcopy-package",
            "seed-old-machine-no-footers"};
        for (int i = 0; i < seeds.size(); i++) {
            Files.write(dir.resolve(names[i]), seeds.get(i));
        }
        for (String f : Fixtures.ALL) {
            Files.write(dir.resolve("reduced-" + f), reduce(Fixtures.bytes(f), f.contains("xbzrle") ? 3 : 12));
        }
    }
}
