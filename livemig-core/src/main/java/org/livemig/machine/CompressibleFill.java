package org.livemig.machine;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;
import org.livemig.memory.RamBlock;

/**
 * Guest RAM that compresses as real RAM does, for {@link Machine.Fill#TEXT} and
 * {@link Machine.Fill#MIXED}: pages of text (lines of words with numbers among them, each page
 * drawn on its own, so no page repeats another), and for MIXED a page-by-page mixture of text,
 * half-zero pages (a buffer half used: random bytes, then zeros), zero pages and random pages.
 *
 * <p>The RAM depends only on the seed. Called on the thread that builds the machine.
 */
final class CompressibleFill {
    private static final byte[][] WORDS;

    static {
        String text = "the of and to in is that for it as was with be by on not he this are or his from at which but"
                + " have an they you were her she all there would their we him been has when who will more no if out"
                + " so said what up its about into than them can only other new some could time these two may then do"
                + " first any my now such like our over man me even most made after also did many before must through"
                + " back years where much your way well down should because each just those people how too little state"
                + " good very make world still own see men work long get here between both life being under never day"
                + " same another know while last might us great old year off come since against go came right used take"
                + " three memory page migration kernel buffer request thread socket block device guest host vcpu dirty"
                + " bitmap stream channel section record header offset length value error status config cache queue";
        String[] w = text.split(" ");
        WORDS = new byte[w.length][];
        for (int i = 0; i < w.length; i++) {
            WORDS[i] = w[i].getBytes(java.nio.charset.StandardCharsets.US_ASCII);
        }
    }

    private CompressibleFill() {}

    /** Fills all of {@code seg} (a whole number of pages) as {@code fill} says; the same seed, the same RAM. */
    static void fill(MemorySegment seg, Machine.Fill fill, long seed) {
        byte[] page = new byte[RamBlock.PAGE_SIZE];
        long pages = seg.byteSize() / RamBlock.PAGE_SIZE;
        // One generator, no garbage: a gigabyte is a quarter of a million pages.
        SplittableRandom r = new SplittableRandom(seed);
        for (long p = 0; p < pages; p++) {
            int kind = fill == Machine.Fill.TEXT ? 0 : r.nextInt(100);
            if (kind < 45) {
                textPage(page, r);
            } else if (kind < 70) {
                halfZeroPage(page, r);
            } else if (kind < 90) {
                continue; // zero: the memory is zero already
            } else {
                r.nextBytes(page);
            }
            MemorySegment.copy(page, 0, seg, ValueLayout.JAVA_BYTE, p * RamBlock.PAGE_SIZE, page.length);
        }
    }

    /** Lines of words, with now and then a number, until the page is full. */
    static void textPage(byte[] page, SplittableRandom r) {
        int i = 0;
        int line = 0;
        while (i < page.length) {
            int n;
            if (r.nextInt(12) == 0) {
                n = putNumber(page, i, r.nextInt(1_000_000));
            } else {
                byte[] w = WORDS[r.nextInt(WORDS.length)];
                n = Math.min(w.length, page.length - i);
                System.arraycopy(w, 0, page, i, n);
            }
            i += n;
            line += n + 1;
            if (i < page.length) {
                if (line > 60 + r.nextInt(20)) {
                    page[i++] = '\n';
                    line = 0;
                } else {
                    page[i++] = ' ';
                }
            }
        }
    }

    /** Writes {@code v}'s decimal digits at {@code at} (as many as fit); returns how many. */
    private static int putNumber(byte[] page, int at, int v) {
        int digits = v < 10 ? 1 : v < 100 ? 2 : v < 1000 ? 3 : v < 10_000 ? 4 : v < 100_000 ? 5 : 6;
        int n = Math.min(digits, page.length - at);
        for (int k = digits - 1; k >= 0; k--) {
            if (k < n) {
                page[at + k] = (byte) ('0' + v % 10);
            }
            v /= 10;
        }
        return n;
    }

    private static void halfZeroPage(byte[] page, SplittableRandom r) {
        int half = page.length / 2;
        for (int i = 0; i < half; i++) {
            page[i] = (byte) r.nextInt(256);
        }
        java.util.Arrays.fill(page, half, page.length, (byte) 0);
    }
}
