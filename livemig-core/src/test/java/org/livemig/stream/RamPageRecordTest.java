package org.livemig.stream;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.channels.Channels;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The RAM record codec and the section header codec: byte layout, round trips, the zero run. */
class RamPageRecordTest {
    private static final int PAGE = 4096;

    @Test
    void recordsHaveQemusByteLayout() throws IOException {
        MigrationFile f = MigrationFile.toMemory();
        RamPageRecord.writeMemSize(f, 0x2000_0000L, List.of(new RamPageRecord.BlockEntry("pc.ram", 0x2000_0000L, null, null)));
        RamPageRecord.writeZero(f, 0x3000, "pc.ram", 0);
        RamPageRecord.writeZero(f, 0x4000, null, 0);
        RamPageRecord.writeXbzrle(f, 0x5000, null, new byte[] {1, 2, 3}, 2);
        RamPageRecord.writeCompressed(f, 0x6000, "pc.ram", new byte[] {9, 8}, 2);
        RamPageRecord.writeEos(f);
        assertThat(f.toByteArray()).isEqualTo(Hex.bytes("""
                00000000 20000004 06 "pc.ram" 00000000 20000000
                00000000 00003002 06 "pc.ram" 00
                00000000 00004022 00
                00000000 00005060 01 0002 0102
                00000000 00006100 06 "pc.ram" 00000002 0908
                00000000 00000010"""));
    }

    @Test
    void sectionHeadersAndFootersHaveQemusByteLayout() throws IOException {
        MigrationFile f = MigrationFile.toMemory();
        new SectionHeader(QemuStream.SECTION_START, 2, "ram", 0, 4, 0).write(f);
        SectionHeader.writeShort(f, QemuStream.SECTION_PART, 2);
        SectionHeader.writeFooter(f, 2);
        assertThat(f.toByteArray()).isEqualTo(Hex.bytes("""
                01 00000002 03 "ram" 00000000 00000004
                02 00000002
                7e 00000002"""));
    }

    @Test
    void aSectionHeaderReadsBackAndAFooterIsChecked() throws IOException {
        MigrationFile w = MigrationFile.toMemory();
        SectionHeader.writeNamed(w, QemuStream.SECTION_FULL, 7, "serial\u00e9", 3, 1);
        SectionHeader.writeFooter(w, 7);
        SectionHeader.writeFooter(w, 8);
        MigrationFile r = MigrationFile.ofBytes(w.toByteArray());
        int type = r.getByte();
        SectionHeader h = SectionHeader.readNamed(r, type, 0);
        assertThat(h).isEqualTo(new SectionHeader(QemuStream.SECTION_FULL, 7, "serial\u00e9", 3, 1, 0));
        SectionHeader.readFooter(r, 7);
        long at = r.position();
        assertThatThrownBy(() -> SectionHeader.readFooter(r, 7)).isInstanceOf(StreamFormatException.class)
                .hasMessageContaining("section footer for id 8 after section id 7").hasMessageContaining("offset " + at);
        MigrationFile bad = MigrationFile.ofBytes(new byte[] {4, 0, 0, 0, 7});
        assertThatThrownBy(() -> SectionHeader.readFooter(bad, 7)).hasMessageContaining("missing section footer: found byte 0x04");
    }

    @Test
    void namesThatAreNotOneByteCharsAreRefused() {
        MigrationFile f = MigrationFile.toMemory();
        assertThatThrownBy(() -> SectionHeader.writeName(f, "\u20ac")).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> SectionHeader.writeName(f, "x".repeat(256))).isInstanceOf(IllegalArgumentException.class);
    }

    /** Seeded random records written and read back field by field; the seed is in the failure. */
    @ParameterizedTest
    @ValueSource(longs = {1, 2, 3, 42, 20261207})
    void randomRecordsRoundTrip(long seed) throws IOException {
        SplittableRandom rnd = new SplittableRandom(seed);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment ram = arena.allocate(64L * PAGE);
            for (long i = 0; i < ram.byteSize(); i++) {
                ram.set(ValueLayout.JAVA_BYTE, i, (byte) rnd.nextInt());
            }
            record Rec(RamPageRecord.Kind kind, long offset, String block, int fill) {}
            List<Rec> sent = new ArrayList<>();
            MigrationFile w = MigrationFile.toMemory();
            for (int i = 0; i < 200; i++) {
                long offset = (long) rnd.nextInt(64) * PAGE;
                String block = rnd.nextBoolean() ? null : "b" + rnd.nextInt(5);
                if (rnd.nextBoolean()) {
                    int fill = rnd.nextInt(256);
                    RamPageRecord.writeZero(w, offset, block, fill);
                    sent.add(new Rec(RamPageRecord.Kind.ZERO, offset, block, fill));
                } else {
                    RamPageRecord.writePage(w, offset, block, ram, offset, PAGE);
                    sent.add(new Rec(RamPageRecord.Kind.PAGE, offset, block, 0));
                }
            }
            RamPageRecord.writeEos(w);
            MigrationFile r = MigrationFile.ofBytes(w.toByteArray());
            RamPageRecord rec = new RamPageRecord(PAGE);
            MemorySegment page = arena.allocate(PAGE);
            for (Rec s : sent) {
                rec.readHeader(r);
                String why = "seed " + seed + ", record " + s;
                assertThat(rec.kind()).as(why).isEqualTo(s.kind());
                assertThat(rec.address()).as(why).isEqualTo(s.offset());
                assertThat(rec.continues()).as(why).isEqualTo(s.block() == null);
                if (!rec.continues()) {
                    assertThat(rec.readBlockName(r)).as(why).isEqualTo(s.block());
                }
                if (s.kind() == RamPageRecord.Kind.ZERO) {
                    assertThat(rec.readFill(r)).as(why).isEqualTo(s.fill());
                } else {
                    rec.readPage(r, page, 0);
                    assertThat(page.mismatch(ram.asSlice(s.offset(), PAGE))).as(why).isEqualTo(-1);
                }
            }
            rec.readHeader(r);
            assertThat(rec.kind()).isEqualTo(RamPageRecord.Kind.EOS);
            assertThat(r.atEof()).isTrue();
        }
    }

    @Test
    void aZeroRunIsTakenUpToTheFirstRecordThatDoesNotContinueIt() throws IOException {
        MigrationFile w = MigrationFile.toMemory();
        RamPageRecord.writeZero(w, 0, "pc.ram", 0);
        RamPageRecord.writeZeroRun(w, PAGE, PAGE, 5);
        RamPageRecord.writeZero(w, 7L * PAGE, null, 0); // skips page 6: a new run
        RamPageRecord.writeEos(w);
        MigrationFile r = MigrationFile.ofBytes(w.toByteArray());
        RamPageRecord rec = new RamPageRecord(PAGE);
        rec.readHeader(r);
        rec.readBlockName(r);
        assertThat(rec.readFill(r)).isZero();
        assertThat(rec.takeZeroRun(r, 100)).isEqualTo(5);
        rec.readHeader(r);
        assertThat(rec.address()).isEqualTo(7L * PAGE);
        assertThat(rec.readFill(r)).isZero();
        assertThat(rec.takeZeroRun(r, 100)).isZero();
        rec.readHeader(r);
        assertThat(rec.kind()).isEqualTo(RamPageRecord.Kind.EOS);
    }

    @Test
    void aZeroRunStopsAtItsLimitAtANonZeroFillAndAtWhatIsNotBuffered() throws IOException {
        MigrationFile w = MigrationFile.toMemory();
        RamPageRecord.writeZero(w, 0, "pc.ram", 0);
        RamPageRecord.writeZeroRun(w, PAGE, PAGE, 3);
        RamPageRecord.writeZero(w, 4L * PAGE, null, 0xff);
        byte[] bytes = w.toByteArray();
        RamPageRecord rec = new RamPageRecord(PAGE);
        MigrationFile r = MigrationFile.ofBytes(bytes);
        rec.readHeader(r);
        rec.readBlockName(r);
        rec.readFill(r);
        assertThat(rec.takeZeroRun(r, 2)).isEqualTo(2);
        // a reader that gets one byte per read: nothing is buffered past the first record
        MigrationFile slow = MigrationFile.forReading(Channels.newChannel(new OneByteAtATime(bytes)));
        rec.readHeader(slow);
        rec.readBlockName(slow);
        rec.readFill(slow);
        assertThat(rec.takeZeroRun(slow, 100)).isZero();
        MigrationFile all = MigrationFile.ofBytes(bytes);
        rec.readHeader(all);
        rec.readBlockName(all);
        rec.readFill(all);
        assertThat(rec.takeZeroRun(all, 100)).as("the record with fill 0xff ends the run").isEqualTo(3);
    }

    @Test
    void kindsAreTheExactFlagValues() {
        assertThat(RamPageRecord.kindOf(RamPageRecord.FLAG_PAGE)).isEqualTo(RamPageRecord.Kind.PAGE);
        assertThat(RamPageRecord.kindOf(RamPageRecord.FLAG_PAGE | RamPageRecord.FLAG_ZERO)).isEqualTo(RamPageRecord.Kind.INVALID);
        assertThat(RamPageRecord.kindOf(0)).isEqualTo(RamPageRecord.Kind.INVALID);
        assertThat(RamPageRecord.kindOf(RamPageRecord.FLAG_HOOK)).isEqualTo(RamPageRecord.Kind.HOOK);
    }

    /** An input stream that hands out one byte per read call. */
    private static final class OneByteAtATime extends InputStream {
        private final byte[] bytes;
        private int pos;

        OneByteAtATime(byte[] bytes) {
            this.bytes = bytes;
        }

        @Override
        public int read() {
            return pos < bytes.length ? bytes[pos++] & 0xFF : -1;
        }

        @Override
        public int read(byte[] b, int off, int len) {
            if (pos >= bytes.length) {
                return -1;
            }
            if (len == 0) {
                return 0;
            }
            b[off] = bytes[pos++];
            return 1;
        }
    }
}
