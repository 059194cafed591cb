package org.livemig.memory;

import org.livemig.testing.Smaps;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

class NativeMemoryTest {
    private static final long SIZE = 16L << 20;

    @Test
    void preFaultedRamIsZeroAndEveryPageResident() throws IOException {
        assumeTrue(NativeMemory.mmapAvailable(), "no mmap here");
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment m = NativeMemory.mapAnonymous(SIZE, true, arena);
            // Resident before this process touches it: the pre-fault mapped every page itself.
            assertThat(Smaps.field(m.address(), "Rss:")).as("resident KiB of the mapping").isGreaterThanOrEqualTo(SIZE >> 10);
            for (long off = 0; off < SIZE; off += 4096) {
                assertThat(m.get(ValueLayout.JAVA_BYTE, off)).as("byte at 0x%x", off).isZero();
            }
        }
    }

    /** The fallback where the kernel refuses MADV_POPULATE_WRITE (before Linux 5.14). */
    @Test
    void storingToEveryPageMakesEveryPageResident() throws IOException {
        assumeTrue(NativeMemory.mmapAvailable(), "no mmap here");
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment m = NativeMemory.mapAnonymous(SIZE, false, arena);
            // The kernel may merge the mapping with a neighbour of the same kind, whose pages then
            // count in the same Rss: what the stores add is what says they made every page resident.
            long before = Smaps.field(m.address(), "Rss:");
            NativeMemory.storeEveryPage(m);
            assertThat(Smaps.field(m.address(), "Rss:") - before).as("resident KiB added").isGreaterThanOrEqualTo(SIZE >> 10);
            assertThat(m.get(ValueLayout.JAVA_BYTE, SIZE - 1)).isZero();
        }
    }

    /** Where the kernel offers transparent huge pages on request, pre-faulted RAM gets them (as QEMU's RAM does). */
    @Test
    void preFaultedRamIsBackedByHugePagesWhereTheKernelOffersThem() throws IOException {
        Path thp = Path.of("/sys/kernel/mm/transparent_hugepage/enabled");
        assumeTrue(NativeMemory.mmapAvailable() && Files.isReadable(thp), "no mmap or no transparent huge pages here");
        assumeTrue(!Files.readString(thp).contains("[never]"), "transparent huge pages disabled on this host");
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment m = NativeMemory.mapAnonymous(SIZE, true, arena);
            // At least one 2 MiB page (the mapping may start or end off a 2 MiB boundary, and a
            // fragmented host may refuse some); with small pages mapped first there would be none.
            assertThat(Smaps.field(m.address(), "AnonHugePages:")).as("AnonHugePages KiB of the mapping").isGreaterThanOrEqualTo(2048);
        }
    }
}
