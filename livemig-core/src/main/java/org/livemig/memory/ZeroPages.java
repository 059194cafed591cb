package org.livemig.memory;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * Zero-page detection. {@link MemorySegment#mismatch} against a zeroed page is vectorised by the
 * JIT, so a page that is not zero is usually rejected within its first cache line.
 */
public final class ZeroPages {
    private static final MemorySegment ZERO = Arena.global().allocate(RamBlock.PAGE_SIZE, 64);

    private ZeroPages() {}

    /** True when every byte of the page at {@code offset} of {@code ram} is zero (no view made). */
    public static boolean isZeroPage(MemorySegment ram, long offset) {
        if (ram.get(java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED, offset) != 0) {
            return false;
        }
        return MemorySegment.mismatch(ram, offset, offset + RamBlock.PAGE_SIZE, ZERO, 0, RamBlock.PAGE_SIZE) == -1;
    }

    /** True when every byte of {@code page} (at most one page long) is zero. */
    public static boolean isZero(MemorySegment page) {
        long n = page.byteSize();
        if (n > ZERO.byteSize()) {
            for (long off = 0; off < n; off += ZERO.byteSize()) {
                if (!isZero(page.asSlice(off, Math.min(ZERO.byteSize(), n - off)))) {
                    return false;
                }
            }
            return true;
        }
        // Most non-zero pages differ in their first word: answer those without the compare's setup.
        if (n >= 8 && page.get(java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED, 0) != 0) {
            return false;
        }
        return MemorySegment.mismatch(page, 0, n, ZERO, 0, n) == -1;
    }
}
