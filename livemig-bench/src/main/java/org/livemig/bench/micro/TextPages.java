package org.livemig.bench.micro;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;

/** Text-like guest pages for the codec benchmarks: words from a small vocabulary (zlib level 1 takes them to about half). */
final class TextPages {
    private static final String[] WORDS = {"the ", "migration ", "page ", "of ", "guest ", "ram ", "dirty ", "bitmap ",
        "section ", "device ", "state ", "and ", "a ", "to ", "stream ", "channel ", "qemu ", "livemig ", "0x7f3a ", "\n"};

    private TextPages() {}

    static void fill(MemorySegment s, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        long at = 0;
        while (at < s.byteSize()) {
            String w = WORDS[r.nextInt(WORDS.length)];
            for (int i = 0; i < w.length() && at < s.byteSize(); i++) {
                s.set(ValueLayout.JAVA_BYTE, at++, (byte) w.charAt(i));
            }
        }
    }
}
