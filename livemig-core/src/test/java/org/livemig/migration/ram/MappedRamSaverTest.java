package org.livemig.migration.ram;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.livemig.memory.GuestRam;
import org.livemig.memory.RamBlock;
import org.livemig.stream.MappedRamHeader;
import org.livemig.stream.MigrationFile;

/**
 * mapped-ram's saver with channels: a section's end hands the current run over without waiting
 * for the channels, and a page written again in a later section still ends up in the file with
 * its newer content (it goes to the same channel, behind its older copy).
 */
class MappedRamSaverTest {
    @TempDir
    Path dir;

    @Test
    void pagesWrittenAgainInLaterSectionsLandOverTheirOlderCopies() throws Exception {
        try (GuestRam ram = new GuestRam()) {
            check(ram.addBlock("pc.ram", 16L << 20, false));
        }
    }

    private void check(RamBlock b) throws Exception {
        int pages = (int) b.pageCount();
        Path path = dir.resolve("mr.mig");
        AtomicLong written = new AtomicLong();
        MappedRamHeader header;
        try (FileChannel main = FileChannel.open(path, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE,
                StandardOpenOption.READ);
             MappedRamSaver s = MappedRamSaver.open(new MappedRamOptions(path, 0, 4, false, true), main, List.of(b),
                     written::addAndGet)) {
            MigrationFile f = MigrationFile.forWriting(main);
            s.setupBlock(f, b);
            f.flush();
            header = MappedRamHeader.layout(0, b.usedLength(), RamBlock.PAGE_SIZE);
            for (int round = 1; round <= 20; round++) {
                // Every page in the first round, then every third page, each with the round's number.
                for (int p = 0; p < pages; p += round == 1 ? 1 : 3) {
                    b.memory().set(ValueLayout.JAVA_INT, (long) p << RamBlock.PAGE_BITS, round);
                    s.writePage(b, p);
                    if (p % 1000 == 999) {
                        s.endSection(); // mid-run: the run so far goes out, the next page starts a new one
                    }
                }
                s.endSection();
            }
            s.writeBitmaps();
            assertThat(s.account()).contains("flushes 1 ").contains("channels writing");
        }
        try (FileChannel in = FileChannel.open(path, StandardOpenOption.READ)) {
            ByteBuffer page = ByteBuffer.allocate(4).order(java.nio.ByteOrder.nativeOrder());
            for (int p = 0; p < pages; p++) {
                page.clear();
                in.read(page, header.pagesOffset() + ((long) p << RamBlock.PAGE_BITS));
                int want = p % 3 == 0 ? 20 : 1;
                assertThat(page.getInt(0)).as("page %d", p).isEqualTo(want);
            }
        }
        assertThat(written.get()).isGreaterThanOrEqualTo((long) pages * RamBlock.PAGE_SIZE);
    }
}
