package org.livemig.analyze;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.livemig.stream.QemuStream.*;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.livemig.analyze.StreamEvents.Command;
import org.livemig.analyze.StreamEvents.Configuration;
import org.livemig.analyze.StreamEvents.Decoded;
import org.livemig.analyze.StreamEvents.DeviceBody;
import org.livemig.analyze.StreamEvents.RamRecord;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.RamPageRecord;
import org.livemig.stream.SectionHeader;
import org.livemig.stream.StreamFormatException;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * Stream shapes the fixtures do not cover, composed from the decoded pc-16M-paused fixture with
 * {@link StreamRewriter}: a postcopy stream (device state in a PACKAGED blob, RAM discarded and
 * re-sent after it, no vmdesc trailer), and an old-machine stream without configuration section
 * and section footers (as pc-i440fx-2.3 writes them).
 */
class SyntheticStreamsTest {
    static Configuration config;
    static final List<RamRecord> ramStart = new ArrayList<>();
    static final List<RamRecord> ramPart = new ArrayList<>();
    static final List<RamRecord> ramEnd = new ArrayList<>();
    static final List<SectionHeader> devHeaders = new ArrayList<>();
    static final List<DeviceBody> devBodies = new ArrayList<>();
    static byte[] vmdesc;
    static SectionHeader ramHeader;
    static JsonNode pausedState;
    static final Arena ARENA = Arena.ofShared();

    @BeforeAll
    static synchronized void decodePaused() throws Exception {
        if (config != null) {
            return;
        }
        byte[] paused = Fixtures.bytes("pc-16M-paused.mig");
        StreamVisitor rec = new StreamVisitor() {
            @Override
            public void configuration(Configuration c) {
                config = c;
            }

            @Override
            public void ramRecord(SectionHeader h, RamRecord r) {
                ramHeader = h.type() == SECTION_START ? h : ramHeader;
                MemorySegment page = null;
                if (r.page() != null) {
                    page = ARENA.allocate(r.page().byteSize());
                    page.copyFrom(r.page());
                }
                RamRecord copy = new RamRecord(r.offset(), r.header(), r.kind(), r.block(), r.blockOf(), r.fill(),
                        r.encoding(), r.encoded(), page, r.blocks());
                (h.type() == SECTION_START ? ramStart : h.type() == SECTION_PART ? ramPart : ramEnd).add(copy);
            }

            @Override
            public void deviceSection(SectionHeader h, DeviceBody body) {
                devHeaders.add(h);
                devBodies.add(body);
            }

            @Override
            public void vmdesc(byte[] json, JsonNode tree) {
                vmdesc = json;
            }
        };
        try (StreamReader r = new StreamReader(rec, Limits.DEFAULT, Analyzer.locateTrailer(paused, Limits.DEFAULT),
                null, false)) {
            r.read(MigrationFile.ofBytes(paused));
        }
        try (Analysis a = Analyzer.analyze(paused, Analyzer.Options.DEFAULT)) {
            pausedState = a.state();
        }
        assertThat(devBodies).hasSize(30).allMatch(b -> b instanceof Decoded);
    }

    static byte[] be(long... v) {
        ByteBuffer b = ByteBuffer.allocate(8 * v.length);
        for (long x : v) {
            b.putLong(x);
        }
        return b.array();
    }

    static Command cmd(int c, byte[] payload) {
        return new Command(c, payload, -1);
    }

    static SectionHeader ram(int type) {
        return ramHeader.as(type, -1);
    }

    static void section(StreamRewriter w, SectionHeader h, List<RamRecord> records, boolean footers) {
        w.sectionStart(h);
        for (RamRecord r : records) {
            w.ramRecord(h, r);
        }
        w.sectionEnd(h, footers);
    }

    static final RamRecord EOS = new RamRecord(-1, RamPageRecord.FLAG_EOS, RamPageRecord.Kind.EOS, null, null, 0, 0, null, null, null);

    /** The pc.ram page records again, the first naming the block, as postcopy re-sends them. */
    static List<RamRecord> pcRamAgain() {
        List<RamRecord> out = new ArrayList<>();
        for (RamRecord r : ramPart) {
            if ("pc.ram".equals(r.blockOf())) {
                long header = r.header();
                String block = null;
                if (out.isEmpty()) {
                    header &= ~(long) RamPageRecord.FLAG_CONTINUE;
                    block = "pc.ram";
                } else {
                    header |= RamPageRecord.FLAG_CONTINUE;
                }
                out.add(new RamRecord(-1, header, r.kind(), block, r.blockOf(), r.fill(), 0, null, r.page(), null));
            }
        }
        out.add(EOS);
        return out;
    }

    static byte[] postcopyStream() throws Exception {
        MigrationFile out = MigrationFile.toMemory();
        StreamRewriter w = new StreamRewriter(out, 4096);
        w.header(MAGIC, VERSION);
        w.configuration(config);
        w.command(cmd(CMD_OPEN_RETURN_PATH, new byte[0]));
        w.command(cmd(CMD_PING, new byte[] {0, 0, 0, 1}));
        w.command(cmd(CMD_POSTCOPY_ADVISE, be(0x1000, 0x1000)));
        section(w, ram(SECTION_START), ramStart, true);
        section(w, ram(SECTION_PART), ramPart, true);
        byte[] discard = ByteBuffer.allocate(3 + 6 + 16).put((byte) 0).put((byte) 6).put("pc.ram".getBytes())
                .put((byte) 0).putLong(0).putLong(16 << 20).array();
        w.command(cmd(CMD_POSTCOPY_RAM_DISCARD, discard));
        w.command(cmd(CMD_PING, new byte[] {0, 0, 0, 2}));
        w.packageStart(cmd(CMD_PACKAGED, new byte[4]), 0);
        w.command(cmd(CMD_POSTCOPY_LISTEN, new byte[0]));
        for (int i = 0; i < devHeaders.size(); i++) {
            w.sectionStart(devHeaders.get(i));
            w.deviceSection(devHeaders.get(i), devBodies.get(i));
            w.sectionEnd(devHeaders.get(i), true);
        }
        w.command(cmd(CMD_PING, new byte[] {0, 0, 0, 3}));
        w.command(cmd(CMD_POSTCOPY_RUN, new byte[0]));
        w.packageEnd(new byte[0]);
        w.command(cmd(CMD_PING, new byte[] {0, 0, 0, 4}));
        section(w, ram(SECTION_PART), pcRamAgain(), true);
        section(w, ram(SECTION_END), List.of(EOS), true);
        w.eof();
        w.end();
        return out.toByteArray();
    }

    @Test
    void postcopyStreamReadsWithoutDescriptionsAndSaysWhy() throws Exception {
        try (Analysis a = Analyzer.analyze(postcopyStream(), Analyzer.Options.DEFAULT)) {
            assertThat(a.desc()).isNull();
            assertThat(a.commands()).extracting(Command::name).containsExactly("OPEN_RETURN_PATH", "PING",
                    "POSTCOPY_ADVISE", "POSTCOPY_RAM_DISCARD", "PING", "PACKAGED", "POSTCOPY_LISTEN", "PING",
                    "POSTCOPY_RUN", "PING");
            assertThat(a.undecoded()).hasSize(30).allSatisfy(u -> assertThat(u.reason())
                    .contains("no vmdesc trailer").contains("no -dump-vmstate"));
            assertThat(a.state().get("timer (0)").get("undecoded").stringValue()).contains("no vmdesc trailer");
            assertThat(a.state().get("ram (2)")).isEqualTo(pausedState.get("ram (2)"));
            try (Analysis paused = Analyzer.analyze(Fixtures.bytes("pc-16M-paused.mig"), Analyzer.Options.DEFAULT)) {
                for (RamImage.Block b : paused.ram().blocks().values()) {
                    int len = (int) b.usedLength();
                    assertThat(a.ram().read(b.name(), 0, len)).as(b.name())
                            .isEqualTo(paused.ram().read(b.name(), 0, len));
                }
            }
        }
    }

    @Test
    void discardedPagesThatAreNotResentAreZero() throws Exception {
        MigrationFile out = MigrationFile.toMemory();
        StreamRewriter w = new StreamRewriter(out, 4096);
        w.header(MAGIC, VERSION);
        w.configuration(config);
        w.command(cmd(CMD_POSTCOPY_ADVISE, be(0x1000, 0x1000)));
        section(w, ram(SECTION_START), ramStart, true);
        section(w, ram(SECTION_PART), ramPart, true);
        byte[] discard = ByteBuffer.allocate(3 + 7 + 32).put((byte) 0).put((byte) 7).put("pc.bios".getBytes())
                .put((byte) 0).putLong(0).putLong(0x10000).putLong(0x30000).putLong(0x10000).array();
        w.command(cmd(CMD_POSTCOPY_RAM_DISCARD, discard));
        section(w, ram(SECTION_END), List.of(EOS), true);
        w.eof();
        w.end();
        try (Analysis a = Analyzer.analyze(out.toByteArray(), Analyzer.Options.DEFAULT);
             Analysis paused = Analyzer.analyze(Fixtures.bytes("pc-16M-paused.mig"), Analyzer.Options.DEFAULT)) {
            byte[] before = paused.ram().read("pc.bios", 0, 0x40000);
            byte[] after = a.ram().read("pc.bios", 0, 0x40000);
            assertThat(java.util.Arrays.copyOfRange(before, 0x30000, 0x40000)).containsAnyOf((byte) 0x55, (byte) 0xAA);
            assertThat(java.util.Arrays.copyOfRange(after, 0, 0x10000)).containsOnly(0);
            assertThat(java.util.Arrays.copyOfRange(after, 0x30000, 0x40000)).containsOnly(0);
            assertThat(java.util.Arrays.copyOfRange(after, 0x10000, 0x30000))
                    .isEqualTo(java.util.Arrays.copyOfRange(before, 0x10000, 0x30000));
        }
    }

    @Test
    void postcopyStreamDecodesWithDumpVmstateWhereTheDumpSuffices() throws Exception {
        VmstateDump dump = VmstateDump.parse(Fixtures.bytes("vmstate-dump-pc-i440fx-7.2.json"), Limits.DEFAULT);
        try (Analysis a = Analyzer.analyze(postcopyStream(), Analyzer.Options.DEFAULT.withDump(dump))) {
            ObjectNode state = a.state();
            List<String> decoded = new ArrayList<>();
            for (var e : state.properties()) {
                if (!e.getValue().has("undecoded")) {
                    decoded.add(e.getKey());
                }
            }
            // sections whose VMSDs are plain scalars decode exactly as with the vmdesc
            assertThat(decoded).contains("i8259 (15)", "i8259 (16)", "port92 (27)", "ram (2)");
            for (String key : List.of("i8259 (15)", "i8259 (16)", "port92 (27)")) {
                assertThat(state.get(key)).as(key).isEqualTo(pausedState.get(key));
            }
            // the rest is reported with the reason, e.g. devices -dump-vmstate does not list (cpu, timer)
            assertThat(a.undecoded()).isNotEmpty().allSatisfy(u -> assertThat(u.reason()).isNotBlank());
            assertThat(a.undecoded()).anySatisfy(u -> {
                assertThat(u.section()).startsWith("cpu ");
                assertThat(u.reason()).contains("-dump-vmstate has no VMSD named like it");
            });
            assertThat(a.undecoded().size() + decoded.size()).isEqualTo(31);
        }
    }

    @Test
    void postcopyStreamRoundTrips() throws Exception {
        byte[] s = postcopyStream();
        assertThat(java.util.Arrays.mismatch(RoundTripTest.rewriteRaw(s), s)).isEqualTo(-1);
    }

    /** An old machine type's stream: no configuration section, no footers, with a vmdesc trailer. */
    static byte[] oldMachineStream() throws Exception {
        MigrationFile out = MigrationFile.toMemory();
        StreamRewriter w = new StreamRewriter(out, 4096);
        w.header(MAGIC, VERSION);
        section(w, ram(SECTION_START), ramStart, false);
        section(w, ram(SECTION_PART), ramPart, false);
        section(w, ram(SECTION_END), ramEnd, false);
        for (int i = 0; i < devHeaders.size(); i++) {
            w.sectionStart(devHeaders.get(i));
            w.deviceSection(devHeaders.get(i), devBodies.get(i));
            w.sectionEnd(devHeaders.get(i), false);
        }
        w.eof();
        w.vmdesc(vmdesc, null);
        w.end();
        return out.toByteArray();
    }

    @Test
    void oldMachineStreamReadsFromMemoryWithItsTrailer() throws Exception {
        try (Analysis a = Analyzer.analyze(oldMachineStream(), Analyzer.Options.DEFAULT)) {
            assertThat(a.state()).isEqualTo(pausedState);
        }
    }

    @Test
    void oldMachineStreamWithoutConfigurationOrFootersReadsFromAFile(@TempDir Path dir) throws Exception {
        Path f = dir.resolve("old.mig");
        Files.write(f, oldMachineStream());
        try (Analysis a = Analyzer.analyzeFile(f, Analyzer.Options.DEFAULT)) {
            assertThat(a.configuration()).isNull();
            assertThat(a.stats().footers).isZero();
            assertThat(a.undecoded()).isEmpty();
            assertThat(a.state()).isEqualTo(pausedState);
        }
    }

    @Test
    void oldMachineStreamOverAChannelCannotBeSplitWithoutFooters() throws Exception {
        assertThatThrownBy(() -> Analyzer.analyze(Fixtures.channel(oldMachineStream()), Analyzer.Options.DEFAULT))
                .isInstanceOf(StreamFormatException.class)
                .hasMessageContaining("cannot find the end of section timer")
                .satisfies(e -> assertThat(((StreamFormatException) e).offset()).isPositive());
    }

    /** Postcopy with a huge-page block: its MEM_SIZE entry carries the block's page size. */
    @Test
    void postcopyBlockPageSizeIsRecognised() throws Exception {
        MigrationFile out = MigrationFile.toMemory();
        StreamRewriter w = new StreamRewriter(out, 4096);
        w.header(MAGIC, VERSION);
        w.configuration(config);
        w.command(cmd(CMD_POSTCOPY_ADVISE, be(0x201000, 0x1000)));
        List<RamPageRecord.BlockEntry> blocks = List.of(
                new RamPageRecord.BlockEntry("mem0", 0x400000, 0x200000L, null),
                new RamPageRecord.BlockEntry("pc.bios", 0x2000, null, null));
        SectionHeader start = ram(SECTION_START);
        w.sectionStart(start);
        w.ramRecord(start, new RamRecord(-1, 0x402000 | RamPageRecord.FLAG_MEM_SIZE, RamPageRecord.Kind.MEM_SIZE, null, null, 0, 0, null,
                null, blocks));
        w.ramRecord(start, EOS);
        w.sectionEnd(start, true);
        section(w, ram(SECTION_END), List.of(EOS), true);
        w.eof();
        w.end();
        byte[] stream = out.toByteArray();
        List<RamPageRecord.BlockEntry> seen = new ArrayList<>();
        StreamVisitor v = new StreamVisitor() {
            @Override
            public void ramRecord(SectionHeader h, RamRecord r) {
                if (r.kind() == RamPageRecord.Kind.MEM_SIZE) {
                    seen.addAll(r.blocks());
                }
            }
        };
        try (StreamReader r = new StreamReader(v, Limits.DEFAULT, null, null, false)) {
            r.read(MigrationFile.ofBytes(stream));
        }
        assertThat(seen).isEqualTo(blocks);
        assertThat(java.util.Arrays.mismatch(RoundTripTest.rewriteRaw(stream), stream)).isEqualTo(-1);
    }
}
