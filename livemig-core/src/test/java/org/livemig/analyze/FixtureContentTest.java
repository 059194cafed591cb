package org.livemig.analyze;

import static org.assertj.core.api.Assertions.assertThat;
import static org.livemig.stream.QemuStream.*;
import static org.livemig.stream.RamPageRecord.Kind.*;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.livemig.analyze.StreamEvents.Capabilities;
import org.livemig.analyze.StreamEvents.Uuid;
import org.livemig.stream.SectionHeader;
import tools.jackson.databind.node.ObjectNode;

/**
 * What the fixtures hold, as their MANIFEST.md states it: the independent walker's counts for
 * every fixture, and for the four fixtures analyze-migration.py cannot read (XBZRLE, compressed
 * pages, configuration subsections, return-path commands) the guest RAM and configuration that
 * the MANIFEST describes.
 */
class FixtureContentTest {

    /** MANIFEST "independent walker" lines: START, PART, END, FULL, footers, subsections, ZERO, PAGE, XBZRLE, COMPRESS_PAGE, EOS. */
    static Stream<Arguments> walkerCounts() {
        return Stream.of(
                Arguments.of("pc-16M-paused.mig", new long[] {1, 1, 1, 30, 33, 4, 4177, 49, 0, 0, 3}),
                Arguments.of("q35-32M-paused.mig", new long[] {1, 2, 1, 29, 33, 3, 8271, 51, 0, 0, 4}),
                Arguments.of("pc-16M-pattern-memfile.mig", new long[] {1, 1, 1, 30, 33, 4, 3919, 307, 0, 0, 3}),
                Arguments.of("pc-16M-dirtyloop-xbzrle.mig",
                        new long[] {1, 3140, 1, 30, 3172, 4, 4172, 9, 6273, 0, 3142}),
                Arguments.of("pc-16M-pattern-compress.mig", new long[] {1, 2, 1, 30, 34, 4, 3919, 3, 0, 304, 4}),
                Arguments.of("pc-16M-ignore-shared-uuid.mig", new long[] {1, 1, 1, 30, 33, 4, 4177, 49, 0, 0, 3}),
                Arguments.of("pc-16M-live-tcp-returnpath.mig",
                        new long[] {1, 1, 1, 30, 33, 5, 4115, 111, 0, 0, 3}));
    }

    @ParameterizedTest
    @MethodSource("walkerCounts")
    void countsMatchTheManifestWalker(String fixture, long[] c) throws Exception {
        try (Analysis a = Analyzer.analyzeFile(Fixtures.path(fixture), Analyzer.Options.DEFAULT)) {
            Analysis.Stats s = a.stats();
            assertThat(new long[] {s.sections(SECTION_START), s.sections(SECTION_PART), s.sections(SECTION_END),
                    s.sections(SECTION_FULL), s.footers, s.subsections, s.ram(ZERO), s.ram(PAGE), s.ram(XBZRLE),
                    s.ram(COMPRESS_PAGE), s.ram(EOS)}).isEqualTo(c);
            assertThat(s.bytes).isEqualTo(Files.size(Fixtures.path(fixture)));
            assertThat(a.undecoded()).isEmpty();
        }
    }

    /** patternA-16M.bin as MANIFEST.md describes it (the file itself is not stored). */
    private static byte[] pattern;

    static synchronized byte[] patternA() {
        if (pattern == null) {
            pattern = makePatternA();
        }
        return pattern;
    }

    private static byte[] makePatternA() {
        byte[] p = new byte[16 << 20];
        for (int page = 256; page < 512; page++) {
            int off = page * 4096;
            for (int i = 0; i < 8; i++) {
                p[off + i] = (byte) (((long) page) >>> (56 - 8 * i));
            }
            java.util.Arrays.fill(p, off + 8, off + 4096, (byte) page);
        }
        java.util.Arrays.fill(p, 0xF00000, 0xF01000, (byte) 0xFF);
        p[0x7FFFFF] = 1;
        return p;
    }

    @Test
    void patternIsWhatTheManifestHashes() throws Exception {
        var sha = java.security.MessageDigest.getInstance("SHA-256").digest(patternA());
        assertThat(HexFormat.of().formatHex(sha))
                .isEqualTo("49097836ceb72252f02120079bcde649bd30c7d84435cae0ebc2a756bcaac918");
    }

    @Test
    void compressedPagesExtractToThePatternFile(@TempDir Path dir) throws Exception {
        try (Analysis a = Analyzer.analyzeFile(Fixtures.path("pc-16M-pattern-compress.mig"),
                Analyzer.Options.DEFAULT)) {
            List<Path> files = a.extract(dir);
            assertThat(Files.readAllBytes(dir.resolve("mem0"))).isEqualTo(patternA());
            assertThat(files).contains(dir.resolve("rom@etc/acpi/tables"), dir.resolve("pc.bios"),
                    dir.resolve("state.json"));
            assertThat(Files.size(dir.resolve("pc.bios"))).isEqualTo(0x40000);
        }
    }

    @Test
    void ramCanGoStraightToSparseFiles(@TempDir Path dir) throws Exception {
        try (Analysis a = Analyzer.analyzeFile(Fixtures.path("pc-16M-pattern-compress.mig"),
                Analyzer.Options.DEFAULT.withRamDir(dir))) {
            assertThat(a.ram().allocatedBytes()).isZero();
            a.extract(dir);
        }
        assertThat(Files.readAllBytes(dir.resolve("mem0"))).isEqualTo(patternA());
        assertThat(Files.size(dir.resolve("rom@etc/table-loader"))).isEqualTo(0x1000);
        assertThat(Files.readString(dir.resolve("state.json"))).startsWith("{\n    \"ram (2)\": {");
    }

    @Test
    void plainPatternStreamHoldsThePatternToo() throws Exception {
        try (Analysis a = Analyzer.analyzeFile(Fixtures.path("pc-16M-pattern-memfile.mig"),
                Analyzer.Options.DEFAULT)) {
            assertThat(a.ram().read("mem0", 0, 16 << 20)).isEqualTo(patternA());
        }
    }

    @Test
    void xbzrleStreamLeavesTheDirtyLoopCounters(@TempDir Path dir) throws Exception {
        try (Analysis a = Analyzer.analyzeFile(Fixtures.path("pc-16M-dirtyloop-xbzrle.mig"),
                Analyzer.Options.DEFAULT)) {
            a.extract(dir);
            byte[] ram = Files.readAllBytes(dir.resolve("pc.ram"));
            assertThat(ram).hasSize(16 << 20);
            int first = (ram[0x8000] & 0xFF) | (ram[0x8001] & 0xFF) << 8;
            int second = (ram[0x9002] & 0xFF) | (ram[0x9003] & 0xFF) << 8;
            // inc word [0x8000] runs just before inc word [0x9002]: equal, or the first one ahead by one
            assertThat((first - second) & 0xFFFF).as("counters %d and %d", first, second).isIn(0, 1);
            // thousands of XBZRLE rounds were sent for the two pages, so the guest ran a long time
            assertThat(first).isNotZero();
            // nothing else of pc.ram was written by the guest
            byte[] rest = ram.clone();
            rest[0x8000] = rest[0x8001] = rest[0x9002] = rest[0x9003] = 0;
            assertThat(java.util.Arrays.mismatch(rest, new byte[rest.length])).as("first non-zero byte").isEqualTo(-1);
            assertThat(Files.readAllBytes(dir.resolve("pc.bios"))).isEqualTo(Fixtures.bytes("dirtyloop-bios.bin"));
        }
    }

    @Test
    void ignoreSharedStreamHasItsConfigurationAndTheSameGuestAsThePausedOne() throws Exception {
        try (Analysis a = Analyzer.analyzeFile(Fixtures.path("pc-16M-ignore-shared-uuid.mig"),
                Analyzer.Options.DEFAULT);
             Analysis paused = Analyzer.analyzeFile(Fixtures.path("pc-16M-paused.mig"), Analyzer.Options.DEFAULT)) {
            var subs = a.configuration().subsections();
            assertThat(a.configuration().machine()).isEqualTo("pc-i440fx-7.2");
            assertThat(subs).hasSize(2);
            assertThat(((Capabilities) subs.get(0)).capabilities()).containsExactly("x-ignore-shared");
            assertThat(HexFormat.of().formatHex(((Uuid) subs.get(1)).uuid()))
                    .isEqualTo("c0ffee00123456789abcdef012345678");
            for (RamImage.Block b : paused.ram().blocks().values()) {
                int len = (int) b.usedLength();
                assertThat(a.ram().read(b.name(), 0, len)).as(b.name()).isEqualTo(paused.ram().read(b.name(), 0, len));
            }
            ObjectNode mine = a.state().deepCopy();
            ObjectNode theirs = paused.state().deepCopy();
            // the RTC carries wall-clock time (MANIFEST: the only section that differs between runs)
            mine.remove("mc146818rtc (19)");
            theirs.remove("mc146818rtc (19)");
            assertThat(mine).isEqualTo(theirs);
        }
    }

    @Test
    void ignoreSharedBlockListCarriesTheMemoryRegionAddresses() throws Exception {
        Map<String, Long> addr = new LinkedHashMap<>();
        StreamVisitor v = new StreamVisitor() {
            @Override
            public void ramRecord(SectionHeader h, StreamEvents.RamRecord r) {
                if (r.kind() == MEM_SIZE) {
                    r.blocks().forEach(b -> addr.put(b.name(), b.mrAddr()));
                }
            }
        };
        try (StreamReader r = new StreamReader(v, Limits.DEFAULT, null, null, false)) {
            r.read(org.livemig.stream.MigrationFile.ofBytes(Fixtures.bytes("pc-16M-ignore-shared-uuid.mig")));
        }
        assertThat(addr).containsEntry("pc.bios", 0xfffc0000L).containsEntry("pc.rom", 0xc0000L).hasSize(6);
    }

    @Test
    void returnPathStreamHasItsCommandsAndTheDefaultFirmware() throws Exception {
        try (Analysis a = Analyzer.analyzeFile(Fixtures.path("pc-16M-live-tcp-returnpath.mig"),
                Analyzer.Options.DEFAULT);
             Analysis paused = Analyzer.analyzeFile(Fixtures.path("pc-16M-paused.mig"), Analyzer.Options.DEFAULT)) {
            assertThat(a.commands()).extracting(StreamEvents.Command::name)
                    .containsExactly("OPEN_RETURN_PATH", "PING");
            assertThat(StreamReader.be32(a.commands().get(1).payload(), 0)).isEqualTo(1);
            // both guests run QEMU's default SeaBIOS image
            assertThat(a.ram().read("pc.bios", 0, 0x40000)).isEqualTo(paused.ram().read("pc.bios", 0, 0x40000));
            assertThat(a.state().propertyNames()).containsExactlyElementsOf(paused.state().propertyNames());
            // the guest ran: its CPU is not at the reset vector any more
            assertThat(a.state().get("cpu (5)").get("env.eip")).isNotEqualTo(paused.state().get("cpu (5)").get("env.eip"));
        }
    }
}
