package org.livemig.machine;

import java.lang.foreign.ValueLayout;
import org.livemig.memory.RamBlock;

/**
 * Proves a RAM image is a consistent state of the {@link Workload.Ab} guest: in each vCPU's slice
 * the first byte of every page is b+1 up to some page and b from there on (mod 256; all equal is
 * allowed). A page lost or sent stale in a migration breaks this.
 */
public final class AbChecker {
    private AbChecker() {}

    /** Result of a check: ok, or the first page that breaks the pattern. */
    public record Result(boolean ok, String detail) {}

    public static Result check(RamBlock block, Workload.Ab ab, int vcpus) {
        StringBuilder summary = new StringBuilder();
        for (int i = 0; i < vcpus; i++) {
            long[] s = ab.slice(block.usedLength(), i, vcpus);
            if (s[1] <= s[0]) {
                continue;
            }
            int first = value(block, s[0]);
            int second = -1;
            long stepAt = -1;
            for (long p = s[0] + 1; p < s[1]; p++) {
                int v = value(block, p);
                if (second < 0) {
                    if (v == first) {
                        continue;
                    }
                    if (v != ((first - 1) & 0xFF)) {
                        return new Result(false, String.format(
                                "vCPU %d slice: page 0x%x holds %d after pages holding %d (expected %d or %d)",
                                i, p << RamBlock.PAGE_BITS, v, first, first, (first - 1) & 0xFF));
                    }
                    second = v;
                    stepAt = p;
                } else if (v != second) {
                    return new Result(false, String.format(
                            "vCPU %d slice: page 0x%x holds %d, expected %d (the step to %d was at page 0x%x)",
                            i, p << RamBlock.PAGE_BITS, v, second, second, stepAt << RamBlock.PAGE_BITS));
                }
            }
            summary.append(String.format("vCPU %d: %d pages, b=%d%s; ", i, s[1] - s[0],
                    second < 0 ? first : second, stepAt < 0 ? "" : " step at 0x" + Long.toHexString(stepAt << RamBlock.PAGE_BITS)));
        }
        return new Result(true, summary.toString().trim());
    }

    private static int value(RamBlock b, long page) {
        return b.memory().get(ValueLayout.JAVA_BYTE, page << RamBlock.PAGE_BITS) & 0xFF;
    }
}
