package org.livemig.migration;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.function.Consumer;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.livemig.machine.Machine;
import org.livemig.machine.RunState;
import org.livemig.stream.MappedRamHeader;
import org.livemig.stream.StreamFormatException;

/**
 * A mapped-ram file whose header, bitmap or offsets do not fit the block or the file, that is
 * cut short, or whose block list does not match the machine, fails to load with the block and
 * the offset named, before guest RAM is touched where the header is at fault.
 */
class MappedRamBadInputTest {
    /** 4099 pages: the bitmap's last word has bits past the block's end. */
    private static final long RAM = (16L << 20) + 3 * 4096;

    @TempDir
    Path dir;

    private Path good;
    /** File offset of the block's mapped-ram header, and its fields. */
    private int header;
    private long bitmapOffset;
    private long pagesOffset;

    @BeforeEach
    void saveAMappedRamSnapshot() throws Exception {
        good = dir.resolve("good.mig");
        try (Machine m = TestMachines.booted(TestMachines.small("idle").withRam(RAM).withFill(Machine.Fill.RANDOM),
                RunState.RUNNING)) {
            Snapshots.save(m, new Migration(m), good, new Snapshots.SaveOptions(false, true, 2, false, "auto"), null, 60_000);
        }
        byte[] all = Files.readAllBytes(good);
        int name = FileMigrationTest.indexOf(all, "\u0006pc.ram".getBytes(java.nio.charset.StandardCharsets.ISO_8859_1), 0);
        header = name + 7 + 8;
        ByteBuffer b = ByteBuffer.wrap(all);
        assertThat(b.getInt(header)).isEqualTo(1);
        bitmapOffset = b.getLong(header + 12);
        pagesOffset = b.getLong(header + 20);
        assertThat(Snapshots.isMappedRam(good)).isTrue();
    }

    private Path variant(String name, Consumer<FileChannel> change) throws Exception {
        Path f = dir.resolve(name);
        Files.copy(good, f, StandardCopyOption.REPLACE_EXISTING);
        try (FileChannel ch = FileChannel.open(f, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            change.accept(ch);
        }
        return f;
    }

    private static void putLong(FileChannel ch, long at, long v) {
        try {
            ch.write(ByteBuffer.allocate(8).putLong(0, v), at);
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    private static void putInt(FileChannel ch, long at, int v) {
        try {
            ch.write(ByteBuffer.allocate(4).putInt(0, v), at);
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    /** Loads {@code f} into a fresh machine of {@code ram} bytes; the error must name the block and a file offset. */
    private static void failsNamingBlockAndOffset(Path f, long ram, boolean ramUntouched, String... texts) throws Exception {
        try (Machine m = TestMachines.booted(TestMachines.small("idle").withRam(ram), RunState.PAUSED)) {
            String before = TestMachines.fingerprint(m).get("ram").toString();
            assertThatThrownBy(() -> m.mainLoop().call(() -> Snapshots.load(m, f, 2, false, new RamStats()), 60_000))
                    .isInstanceOf(StreamFormatException.class)
                    .hasMessageContaining("'pc.ram'")
                    .hasMessageContaining("0x")
                    .satisfies(e -> {
                        for (String t : texts) {
                            assertThat(e.getMessage()).contains(t);
                        }
                    });
            assertThat(m.runState()).isEqualTo(RunState.PAUSED);
            if (ramUntouched) {
                assertThat(TestMachines.fingerprint(m).get("ram").toString()).as("guest RAM untouched").isEqualTo(before);
            }
        }
    }

    @Test
    void theGoodFileLoads() throws Exception {
        try (Machine m = TestMachines.booted(TestMachines.small("idle").withRam(RAM), RunState.PAUSED)) {
            RamStats st = m.mainLoop().call(() -> Snapshots.load(m, good, 2, false, new RamStats()), 60_000);
            assertThat(st.normalPages.get() + st.zeroPages.get()).isEqualTo(RAM / 4096);
        }
    }

    @Test
    void aBitmapBeyondTheFile() throws Exception {
        long size = Files.size(good);
        Path f = variant("bitmap-beyond.mig", ch -> putLong(ch, header + 12, size));
        failsNamingBlockAndOffset(f, RAM, true, "bitmap at file offset", "does not fit in the file");
    }

    @Test
    void aBitmapInsideItsHeader() throws Exception {
        Path f = variant("bitmap-in-header.mig", ch -> putLong(ch, header + 12, header + 4));
        failsNamingBlockAndOffset(f, RAM, true, "starts before the end of its header");
    }

    @Test
    void aBitmapOverlappingThePages() throws Exception {
        Path f = variant("bitmap-overlap.mig", ch -> putLong(ch, header + 12, pagesOffset + 4096));
        failsNamingBlockAndOffset(f, RAM, true, "overlaps its pages");
    }

    @Test
    void pagesBeyondTheFile() throws Exception {
        long size = Files.size(good);
        Path f = variant("pages-beyond.mig", ch -> putLong(ch, header + 20, (size + 4095) / 4096 * 4096));
        failsNamingBlockAndOffset(f, RAM, true, "pages at file offset", "does not fit in the file");
    }

    @Test
    void pagesAtABadAlignment() throws Exception {
        Path f = variant("pages-misaligned.mig", ch -> putLong(ch, header + 20, pagesOffset + 8));
        failsNamingBlockAndOffset(f, RAM, true, "Error reading ramblock 'pc.ram' pages, region has bad alignment");
    }

    @Test
    void aBitmapMarkingPagesBeyondTheBlock() throws Exception {
        long lastWord = bitmapOffset + MappedRamHeader.bitmapBytes(RAM / 4096) - 8;
        Path f = variant("bitmap-bit-beyond.mig", ch -> {
            ByteBuffer w = ByteBuffer.allocate(8).order(java.nio.ByteOrder.LITTLE_ENDIAN).putLong(0, 1L << 5);
            try {
                ch.write(w, lastWord);
            } catch (java.io.IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        });
        failsNamingBlockAndOffset(f, RAM, true, "marks page 4101, beyond the block's 4099 pages");
    }

    @Test
    void aNewerVersionOrAnotherPageSize() throws Exception {
        failsNamingBlockAndOffset(variant("v2.mig", ch -> putInt(ch, header, 2)), RAM, true,
                "Migration mapped-ram capability version not supported (expected <= 1, got 2)");
        failsNamingBlockAndOffset(variant("p8k.mig", ch -> putLong(ch, header + 4, 8192)), RAM, true, "page size 8192");
    }

    @Test
    void aFileCutInsideThePages() throws Exception {
        Path f = variant("cut-pages.mig", ch -> {
            try {
                ch.truncate(pagesOffset + (8L << 20));
            } catch (java.io.IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        });
        failsNamingBlockAndOffset(f, RAM, true, "does not fit in the file", "truncated");
    }

    @Test
    void aFileCutInsideTheHeader() throws Exception {
        Path f = variant("cut-header.mig", ch -> {
            try {
                ch.truncate(header + 20);
            } catch (java.io.IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        });
        try (Machine m = TestMachines.booted(TestMachines.small("idle").withRam(RAM), RunState.PAUSED)) {
            assertThatThrownBy(() -> m.mainLoop().call(() -> Snapshots.load(m, f), 60_000))
                    .isInstanceOf(StreamFormatException.class)
                    .hasMessageContaining("Could not read whole mapped-ram migration header (expected 28 bytes, got 20)")
                    .hasMessageContaining("at byte offset " + header);
        }
    }

    @ParameterizedTest(name = "machine of {0} bytes")
    @ValueSource(longs = {16L << 20, 32L << 20})
    void aBlockListThatDoesNotMatchTheMachine(long ram) throws Exception {
        try (Machine m = TestMachines.booted(TestMachines.small("idle").withRam(ram), RunState.PAUSED)) {
            assertThatThrownBy(() -> m.mainLoop().call(() -> Snapshots.load(m, good), 60_000))
                    .isInstanceOf(StreamFormatException.class)
                    .hasMessageContaining(String.format("RAM block 'pc.ram' has size 0x%x in the stream but 0x%x here", RAM, ram))
                    .hasMessageContaining("at byte offset " + (header - 15));
        }
    }

    @Test
    void aMappedRamFileWithoutTheCapabilityAndAPlainFileWithIt() throws Exception {
        try (PrecopyTest.Pair p = PrecopyTest.Pair.of(TestMachines.small("idle").withRam(RAM))) {
            p.listen("file:" + good);
            await().atMost(Duration.ofSeconds(30)).until(() -> p.dstMig().incoming().status().isFinal());
            assertThat(p.dstMig().incoming().error()).contains("is followed by a mapped-ram header")
                    .contains("mapped-ram capability");
        }
        Path plain = dir.resolve("plain.mig");
        try (Machine m = TestMachines.booted(TestMachines.small("idle").withRam(RAM), RunState.RUNNING)) {
            m.mainLoop().call(() -> Snapshots.save(m, plain), 60_000);
        }
        try (PrecopyTest.Pair p = PrecopyTest.Pair.of(TestMachines.small("idle").withRam(RAM))) {
            p.dst().mainLoop().call(() -> {
                p.dstMig().setCapability(Capability.MAPPED_RAM, true);
                return null;
            }, 10_000);
            p.listen("file:" + plain);
            await().atMost(Duration.ofSeconds(30)).until(() -> p.dstMig().incoming().status().isFinal());
            assertThat(p.dstMig().incoming().status()).isEqualTo(MigrationStatus.FAILED);
            assertThat(p.dstMig().incoming().error()).contains("'pc.ram'").contains("page size");
        }
    }
}
