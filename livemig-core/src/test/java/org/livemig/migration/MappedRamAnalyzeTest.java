package org.livemig.migration;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.livemig.analyze.Analysis;
import org.livemig.analyze.Analyzer;
import org.livemig.analyze.StreamEvents.MappedRamBlock;
import org.livemig.machine.Machine;
import org.livemig.machine.RunState;
import org.livemig.memory.RamBlock;
import org.livemig.stream.StreamFormatException;

/**
 * Snapshot files livemig writes round-trip through {@code analyze}: a mapped-ram file (stopped or
 * live, one or several channels) reads with each block's header and its pages taken from their
 * places in the file, and the RAM the analyzer rebuilds is the guest's; a mapped-ram file with a
 * bad bitmap or pages offset, or cut short, fails naming the block and the offset; a mapped-ram
 * stream read from a pipe fails saying its pages lie in the file.
 */
class MappedRamAnalyzeTest {
    /** Half of it written by the fill, half left zero: both kinds of bit in the bitmap. */
    private static final long RAM = 8L << 20;

    @TempDir
    Path dir;

    /** Saves a machine whose RAM is half random, half zero; returns its RAM as it was saved. */
    private byte[] save(Path file, Snapshots.SaveOptions o) throws Exception {
        try (Machine m = TestMachines.booted(TestMachines.small("idle").withRam(RAM).withFill(Machine.Fill.RANDOM),
                RunState.PAUSED)) {
            RamBlock b = m.ram().block("pc.ram");
            m.mainLoop().runAndWait(() -> b.memory().asSlice(RAM / 2, RAM / 2).fill((byte) 0));
            byte[] ram = b.memory().toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
            Snapshots.save(m, new Migration(m), file, o, null, 60_000);
            return ram;
        }
    }

    private void roundTrips(Snapshots.SaveOptions o) throws Exception {
        Path f = dir.resolve("mapped.mig");
        byte[] ram = save(f, o);
        assertThat(Snapshots.isMappedRam(f)).isTrue();
        try (Analysis a = Analyzer.analyzeFile(f, Analyzer.Options.DEFAULT)) {
            List<MappedRamBlock> blocks = a.mappedRam();
            assertThat(blocks).extracting(MappedRamBlock::block).contains("pc.ram");
            MappedRamBlock pc = blocks.stream().filter(x -> x.block().equals("pc.ram")).findFirst().orElseThrow();
            assertThat(pc.version()).isEqualTo(1);
            assertThat(pc.pages()).isEqualTo(RAM / RamBlock.PAGE_SIZE);
            // The zero half is not in the file; the random half is (a random page is never zero).
            assertThat(pc.pagesInFile()).isEqualTo(RAM / RamBlock.PAGE_SIZE / 2);
            assertThat(pc.pagesOffset() % RamBlock.PAGE_SIZE).isZero();
            assertThat(a.ram().read("pc.ram", 0, (int) RAM)).isEqualTo(ram);
            assertThat(a.state().toString()).contains("mapped-ram").contains("pages in file");
            assertThat(a.stats().trailingBytes).isZero();
        }
    }

    @Test
    void aStoppedSaveOverOneChannel() throws Exception {
        roundTrips(new Snapshots.SaveOptions(false, true, 0, false, "auto"));
    }

    @Test
    void aStoppedSaveOverFourChannels() throws Exception {
        roundTrips(new Snapshots.SaveOptions(false, true, 4, false, "auto"));
    }

    @Test
    void aLiveSave() throws Exception {
        roundTrips(new Snapshots.SaveOptions(true, true, 0, false, "checked"));
    }

    @Test
    void aPlainFileHasNoMappedRamBlocks() throws Exception {
        Path f = dir.resolve("plain.mig");
        byte[] ram = save(f, new Snapshots.SaveOptions(false, false, 0, false, "auto"));
        try (Analysis a = Analyzer.analyzeFile(f, Analyzer.Options.DEFAULT)) {
            assertThat(a.mappedRam()).isEmpty();
            assertThat(a.ram().read("pc.ram", 0, (int) RAM)).isEqualTo(ram);
        }
    }

    /** The file offset of pc.ram's mapped-ram header: after its MEM_SIZE entry (name, used length). */
    private static long header(Path f) throws Exception {
        byte[] all = Files.readAllBytes(f);
        int name = FileMigrationTest.indexOf(all, "\u0006pc.ram".getBytes(java.nio.charset.StandardCharsets.ISO_8859_1), 0);
        return name + 7 + 8;
    }

    /** A mapped-ram file with the 8-byte field at {@code fieldAt} of pc.ram's header set to {@code value}. */
    private Path bad(long fieldAt, long value) throws Exception {
        Path f = dir.resolve("bad.mig");
        save(f, new Snapshots.SaveOptions(false, true, 2, false, "auto"));
        long h = header(f);
        try (FileChannel ch = FileChannel.open(f, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.allocate(8).putLong(0, value), h + fieldAt);
        }
        return f;
    }

    @Test
    void aBitmapBeyondTheFileNamesTheBlockAndOffset() throws Exception {
        Path f = bad(12, 1L << 40);
        long h = header(f);
        assertThatThrownBy(() -> Analyzer.analyzeFile(f, Analyzer.Options.DEFAULT))
                .isInstanceOf(StreamFormatException.class)
                .hasMessageContaining("RAM block pc.ram")
                .hasMessageContaining(String.format("mapped-ram header at byte offset 0x%x", h))
                .hasMessageContaining("bitmap at 0x10000000000");
    }

    @Test
    void pagesBeyondTheFileNameTheBlockAndOffset() throws Exception {
        Path f = bad(20, 1L << 40);
        long h = header(f);
        assertThatThrownBy(() -> Analyzer.analyzeFile(f, Analyzer.Options.DEFAULT))
                .isInstanceOf(StreamFormatException.class)
                .hasMessageContaining("RAM block pc.ram")
                .hasMessageContaining(String.format("mapped-ram header at byte offset 0x%x", h))
                .hasMessageContaining("pages at 0x10000000000");
    }

    @Test
    void aFileCutInsideThePagesNamesTheBlockAndOffset() throws Exception {
        Path f = dir.resolve("cut.mig");
        save(f, new Snapshots.SaveOptions(false, true, 2, false, "auto"));
        long h = header(f);
        long pages = ByteBuffer.wrap(Files.readAllBytes(f)).getLong((int) h + 20);
        try (FileChannel ch = FileChannel.open(f, StandardOpenOption.WRITE)) {
            ch.truncate(pages + RAM / 4);
        }
        assertThatThrownBy(() -> Analyzer.analyzeFile(f, Analyzer.Options.DEFAULT))
                .isInstanceOf(StreamFormatException.class)
                .hasMessageContaining("RAM block pc.ram")
                .hasMessageContaining(String.format("0x%x", pages));
    }

    @Test
    void aMappedRamStreamFromAPipeSaysItsPagesAreInTheFile() throws Exception {
        Path f = dir.resolve("pipe.mig");
        save(f, new Snapshots.SaveOptions(false, true, 0, false, "auto"));
        try (var in = java.nio.channels.Channels.newChannel(Files.newInputStream(f))) {
            assertThatThrownBy(() -> Analyzer.analyze(in, Analyzer.Options.DEFAULT))
                    .isInstanceOf(StreamFormatException.class)
                    .hasMessageContaining("RAM block pc.ram")
                    .hasMessageContaining("not a pipe");
        }
    }
}
