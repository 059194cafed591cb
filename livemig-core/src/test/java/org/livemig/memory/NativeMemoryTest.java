package org.livemig.memory;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;

class NativeMemoryTest {
    private static final long SIZE = 16L << 20;

    @Test
    void preFaultedRamIsZeroAndEveryPageResident() throws IOException {
        assumeTrue(NativeMemory.mmapAvailable(), "no mmap here");
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment m = NativeMemory.mapAnonymous(SIZE, true, arena);
            for (long off = 0; off < SIZE; off += 4096) {
                assertThat(m.get(ValueLayout.JAVA_BYTE, off)).as("byte at 0x%x", off).isZero();
            }
            assertThat(mappingField(m, "Rss:")).as("resident KiB of the mapping").isGreaterThanOrEqualTo(SIZE >> 10);
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
            assertThat(mappingField(m, "AnonHugePages:")).as("AnonHugePages KiB of the mapping").isGreaterThanOrEqualTo(2048);
        }
    }

    /** A "Field: N kB" value of the mapping in /proc/self/smaps that holds {@code m}'s address. */
    private static long mappingField(MemorySegment m, String field) throws IOException {
        List<String> lines = Files.readAllLines(Path.of("/proc/self/smaps"));
        for (int i = 0; i < lines.size(); i++) {
            java.util.regex.Matcher range = java.util.regex.Pattern.compile("^([0-9a-f]+)-([0-9a-f]+) ").matcher(lines.get(i));
            if (!range.find() || Long.parseUnsignedLong(range.group(1), 16) > m.address()
                    || Long.parseUnsignedLong(range.group(2), 16) <= m.address()) {
                continue;
            }
            for (int j = i + 1; j < lines.size() && !lines.get(j).matches("^[0-9a-f]+-[0-9a-f]+ .*"); j++) {
                if (lines.get(j).startsWith(field)) {
                    return Long.parseLong(lines.get(j).substring(field.length()).trim().split("\\s+")[0]);
                }
            }
        }
        throw new AssertionError("no mapping at 0x" + Long.toHexString(m.address()) + " with " + field + " in /proc/self/smaps");
    }
}
