package org.livemig.memory.postcopy;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * A fixed-size bitmap whose bits any thread may set, clear and test. Setting or clearing is a
 * volatile read-modify-write of the word (a release of everything the thread wrote before);
 * testing is a volatile read (an acquire). Package-private building block of {@link ReceivedMap}
 * and the postcopy backends.
 */
final class AtomicBitmap {
    private static final VarHandle WORDS = MethodHandles.arrayElementVarHandle(long[].class);

    private final long[] words;
    private final long bits;

    AtomicBitmap(long bits) {
        if (bits < 0 || (bits + 63) / 64 > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("bad bitmap size " + bits);
        }
        this.bits = bits;
        this.words = new long[(int) ((bits + 63) >>> 6)];
    }

    long size() {
        return bits;
    }

    int wordCount() {
        return words.length;
    }

    boolean get(long bit) {
        return ((long) WORDS.getVolatile(words, (int) (bit >>> 6)) & (1L << bit)) != 0;
    }

    /** Sets the bit; true when it was clear before (this call set it). */
    boolean set(long bit) {
        long mask = 1L << bit;
        return ((long) WORDS.getAndBitwiseOr(words, (int) (bit >>> 6), mask) & mask) == 0;
    }

    /** Clears the bit; true when it was set before. */
    boolean clear(long bit) {
        long mask = 1L << bit;
        return ((long) WORDS.getAndBitwiseAnd(words, (int) (bit >>> 6), ~mask) & mask) != 0;
    }

    /** Sets bits {@code [from, from + count)}; returns how many were clear before. */
    long setRange(long from, long count) {
        return update(from, count, true);
    }

    /** Clears bits {@code [from, from + count)}; returns how many were set before. */
    long clearRange(long from, long count) {
        return update(from, count, false);
    }

    private long update(long from, long count, boolean set) {
        long changed = 0;
        long end = from + count;
        long b = from;
        while (b < end) {
            int w = (int) (b >>> 6);
            int lo = (int) (b & 63);
            int n = (int) Math.min(64 - lo, end - b);
            long mask = (n == 64 ? -1L : ((1L << n) - 1)) << lo;
            long old = set ? (long) WORDS.getAndBitwiseOr(words, w, mask)
                    : (long) WORDS.getAndBitwiseAnd(words, w, ~mask);
            changed += Long.bitCount(set ? ~old & mask : old & mask);
            b += n;
        }
        return changed;
    }

    long count() {
        long n = 0;
        for (int w = 0; w < words.length; w++) {
            n += Long.bitCount((long) WORDS.getVolatile(words, w));
        }
        return n;
    }

    /** First clear bit at or after {@code from}, or -1 when every bit from there on is set. */
    long nextClear(long from) {
        if (from >= bits) {
            return -1;
        }
        if (from < 0) {
            from = 0;
        }
        for (int w = (int) (from >>> 6); w < words.length; w++) {
            long inv = ~(long) WORDS.getVolatile(words, w);
            if (w == (int) (from >>> 6)) {
                inv &= -1L << (from & 63);
            }
            if (inv != 0) {
                long bit = ((long) w << 6) + Long.numberOfTrailingZeros(inv);
                return bit < bits ? bit : -1;
            }
        }
        return -1;
    }

    /** First set bit at or after {@code from}, or -1. */
    long nextSet(long from) {
        if (from >= bits) {
            return -1;
        }
        if (from < 0) {
            from = 0;
        }
        for (int w = (int) (from >>> 6); w < words.length; w++) {
            long v = (long) WORDS.getVolatile(words, w);
            if (w == (int) (from >>> 6)) {
                v &= -1L << (from & 63);
            }
            if (v != 0) {
                long bit = ((long) w << 6) + Long.numberOfTrailingZeros(v);
                return bit < bits ? bit : -1;
            }
        }
        return -1;
    }

    /** A copy of the words, bit i of word w being bit 64w + i. */
    long[] snapshot() {
        long[] copy = new long[words.length];
        for (int w = 0; w < words.length; w++) {
            copy[w] = (long) WORDS.getVolatile(words, w);
        }
        return copy;
    }
}
