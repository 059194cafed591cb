package org.livemig.memory;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class ZeroPagesTest {
    @ParameterizedTest(name = "non-zero byte at {0}")
    @ValueSource(ints = {0, 1, 7, 8, 63, 64, 2048, 4095})
    void anyNonZeroByteMakesAPageNonZero(int at) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment page = a.allocate(RamBlock.PAGE_SIZE, 64);
            assertThat(ZeroPages.isZero(page)).isTrue();
            page.set(ValueLayout.JAVA_BYTE, at, (byte) 1);
            assertThat(ZeroPages.isZero(page)).isFalse();
            // Longer than a page: checked page by page.
            MemorySegment two = a.allocate(2L * RamBlock.PAGE_SIZE, 64);
            two.set(ValueLayout.JAVA_BYTE, RamBlock.PAGE_SIZE + at, (byte) 1);
            assertThat(ZeroPages.isZero(two)).isFalse();
            assertThat(ZeroPages.isZero(two.asSlice(0, RamBlock.PAGE_SIZE))).isTrue();
        }
    }
}
