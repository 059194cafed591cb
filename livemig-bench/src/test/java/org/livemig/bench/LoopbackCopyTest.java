package org.livemig.bench;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.SplittableRandom;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The precopy benchmark's baseline copies every byte, whatever the read size. */
class LoopbackCopyTest {
    @TempDir
    Path dir;

    @ParameterizedTest
    @CsvSource({"TCP, 8388608", "UNIX, 8388608", "TCP, 4096", "UNIX, 4096"})
    void copiesEveryByteToTheSameOffsets(LoopbackCopy.Transport transport, int readBytes) throws Exception {
        long bytes = (3L << 20) + 4096 * 5; // not a multiple of the read size of the large case
        try (Arena arena = Arena.ofShared()) { // the sender thread reads src
            MemorySegment src = arena.allocate(bytes + 4096, 4096);
            MemorySegment dst = arena.allocate(bytes + 4096, 4096);
            SplittableRandom r = new SplittableRandom(42);
            for (long i = 0; i < src.byteSize() / 8; i++) {
                src.setAtIndex(ValueLayout.JAVA_LONG, i, r.nextLong());
            }
            dst.fill((byte) 0x11);

            LoopbackCopy.Result result = LoopbackCopy.copy(transport, src, dst, bytes, dir, readBytes);

            assertThat(dst.asSlice(0, bytes).mismatch(src.asSlice(0, bytes))).isEqualTo(-1);
            // Nothing past the copied bytes was written.
            assertThat(dst.get(ValueLayout.JAVA_BYTE, bytes)).isEqualTo((byte) 0x11);
            assertThat(result.nanos()).isPositive();
            // No read is larger than asked for.
            assertThat(result.reads()).isGreaterThanOrEqualTo((bytes + readBytes - 1) / readBytes);
        }
    }
}
