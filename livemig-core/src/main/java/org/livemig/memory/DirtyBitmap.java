package org.livemig.memory;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.BitSet;

/**
 * One bit per target page, set by writers (vCPUs) and harvested by the migration thread.
 *
 * <p>Memory ordering: a writer stores to the page first and then calls {@link #mark}; the harvest
 * ({@link #harvestInto}) atomically swaps each word to zero and only then is the page read. So a
 * write either is seen by a send that follows the harvest, or sets the bit again after it.
 * {@link #mark} fences before its cheap already-dirty check: without it, on x86 the check (a load)
 * may pass the page store, see a bit the harvest is about to clear, and lose the write.
 */
public final class DirtyBitmap {
    private static final VarHandle WORDS = MethodHandles.arrayElementVarHandle(long[].class);

    private final long[] words;
    private final long pages;

    public DirtyBitmap(long pages) {
        if (pages < 0 || (pages + 63) / 64 > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("bad page count " + pages);
        }
        this.pages = pages;
        this.words = new long[(int) ((pages + 63) >>> 6)];
    }

    public long pages() {
        return pages;
    }

    /** Marks a page dirty after it was written; any thread. */
    public void mark(long page) {
        int w = (int) (page >>> 6);
        long bit = 1L << page;
        VarHandle.fullFence();
        if (((long) WORDS.getOpaque(words, w) & bit) != 0) {
            return; // already dirty: the common case of a hot page
        }
        WORDS.getAndBitwiseOr(words, w, bit);
    }

    public boolean isDirty(long page) {
        return ((long) WORDS.getVolatile(words, (int) (page >>> 6)) & (1L << page)) != 0;
    }

    /** Marks every page dirty (the start of a migration: everything must be sent once). */
    public void markAll() {
        for (int w = 0; w < words.length; w++) {
            long mask = -1L;
            if (w == words.length - 1 && (pages & 63) != 0) {
                mask = (1L << (pages & 63)) - 1;
            }
            WORDS.getAndBitwiseOr(words, w, mask);
        }
    }

    public void clearAll() {
        for (int w = 0; w < words.length; w++) {
            WORDS.setVolatile(words, w, 0L);
        }
    }

    /**
     * Moves every dirty bit into {@code target} (OR) and clears it here, atomically per word.
     * Returns the number of pages that were newly set in {@code target}.
     */
    public long harvestInto(BitSet target) {
        long newly = 0;
        for (int w = 0; w < words.length; w++) {
            if ((long) WORDS.getOpaque(words, w) == 0) {
                continue;
            }
            long bits = (long) WORDS.getAndSet(words, w, 0L);
            while (bits != 0) {
                int b = Long.numberOfTrailingZeros(bits);
                bits &= bits - 1;
                int page = (w << 6) + b;
                if (!target.get(page)) {
                    target.set(page);
                    newly++;
                }
            }
        }
        return newly;
    }

    public long count() {
        long n = 0;
        for (int w = 0; w < words.length; w++) {
            n += Long.bitCount((long) WORDS.getOpaque(words, w));
        }
        return n;
    }
}
