package org.livemig.machine;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.foreign.ValueLayout;
import java.util.zip.Deflater;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.livemig.memory.RamBlock;
import org.livemig.memory.ZeroPages;

/** {@code --fill}: what each kind of RAM content is made of, and how well it compresses. */
class FillTest {
    /** zlib level 1 over each page on its own: RAM bytes over compressed bytes. */
    private static double ratio(RamBlock b) {
        Deflater d = new Deflater(1);
        byte[] page = new byte[RamBlock.PAGE_SIZE];
        byte[] out = new byte[2 * RamBlock.PAGE_SIZE];
        long compressed = 0;
        for (long p = 0; p < b.pageCount(); p++) {
            b.memory().asSlice(p * RamBlock.PAGE_SIZE, RamBlock.PAGE_SIZE).asByteBuffer().get(page);
            d.reset();
            d.setInput(page);
            d.finish();
            compressed += d.deflate(out);
        }
        d.end();
        return (double) b.usedLength() / compressed;
    }

    private static double zeroShare(RamBlock b) {
        long zero = 0;
        for (long p = 0; p < b.pageCount(); p++) {
            if (ZeroPages.isZeroPage(b.memory(), p * RamBlock.PAGE_SIZE)) {
                zero++;
            }
        }
        return (double) zero / b.pageCount();
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource({"RANDOM, 0.95, 1.01, 0, 0", "TEXT, 2.0, 5, 0, 0", "MIXED, 2.0, 8, 0.15, 0.25"})
    void eachFillHasItsShape(Machine.Fill fill, double minRatio, double maxRatio, double minZero, double maxZero) {
        try (Machine m = new Machine(Machine.Config.defaults().withRam(8L << 20).withWorkload("idle")
                .withBlobSize(4096).withFill(fill))) {
            RamBlock b = m.mainBlock();
            assertThat(m.ram().isPristine()).isFalse();
            double ratio = ratio(b);
            System.out.printf("%s: zlib-1 ratio %.2f, zero pages %.2f%n", fill, ratio, zeroShare(b));
            assertThat(ratio).as("zlib-1 ratio of %s", fill).isBetween(minRatio, maxRatio);
            assertThat(zeroShare(b)).as("zero pages of %s", fill).isBetween(minZero, maxZero);
            // the same seed gives the same RAM; no two text pages are the same
            try (Machine again = new Machine(m.config().withName("again"))) {
                assertThat(again.mainBlock().memory().mismatch(b.memory())).isEqualTo(-1);
            }
            if (fill == Machine.Fill.TEXT) {
                assertThat(b.memory().asSlice(0, RamBlock.PAGE_SIZE).mismatch(b.memory().asSlice(RamBlock.PAGE_SIZE,
                        RamBlock.PAGE_SIZE))).isNotEqualTo(-1);
                assertThat(b.memory().get(ValueLayout.JAVA_BYTE, 0)).isBetween((byte) '0', (byte) 'z');
            }
        }
    }
}
