package org.livemig.memory;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Zero-page detection. {@link MemorySegment#mismatch} against a zeroed page is vectorised by the
 * JIT, so a page that is not zero is usually rejected within its first cache line.
 */
public final class ZeroPages {
    private static final MemorySegment ZERO = Arena.global().allocate(RamBlock.PAGE_SIZE, 64);

    private ZeroPages() {}

    /** True when every byte of the page at {@code offset} of {@code ram} is zero (no view made). */
    public static boolean isZeroPage(MemorySegment ram, long offset) {
        return isZero(ram, offset, RamBlock.PAGE_SIZE);
    }

    /** True when every byte of {@code bytes} is zero. */
    public static boolean isZero(MemorySegment bytes) {
        long n = bytes.byteSize();
        for (long off = 0; off < n; off += ZERO.byteSize()) {
            if (!isZero(bytes, off, Math.min(ZERO.byteSize(), n - off))) {
                return false;
            }
        }
        return true;
    }

    /** {@code n} (at most a page) bytes of {@code s} from {@code offset}. */
    private static boolean isZero(MemorySegment s, long offset, long n) {
        // Most non-zero pages differ in their first word: answer those without the compare's setup.
        if (n >= 8 && s.get(ValueLayout.JAVA_LONG_UNALIGNED, offset) != 0) {
            return false;
        }
        return MemorySegment.mismatch(s, offset, offset + n, ZERO, 0, n) == -1;
    }
}
