package org.livemig.bench.micro;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.concurrent.TimeUnit;
import org.livemig.memory.RamBlock;
import org.livemig.stream.XbzrleCodec;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * XBZRLE on 128 text pages, each changed in a few places since its cached copy (what an XBZRLE
 * pass sees of a guest that rewrites a counter or a word per page): encoding each page against
 * its copy and decoding the delta onto the copy, beside copying the same 512 KiB.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
public class XbzrleBench {
    static final int PAGES = 128;
    static final int PAGE = RamBlock.PAGE_SIZE;

    /** Bytes changed per page since the cached copy. */
    @Param({"8", "256"})
    public int changed;

    private Arena arena;
    private MemorySegment old;
    private MemorySegment cur;
    private MemorySegment copy;
    private final byte[][] deltas = new byte[PAGES][];
    private final int[] lengths = new int[PAGES];
    private final byte[] out = new byte[PAGE];

    @Setup
    public void setup() {
        arena = Arena.ofConfined();
        old = arena.allocate((long) PAGES * PAGE, 4096);
        cur = arena.allocate(old.byteSize(), 4096);
        copy = arena.allocate(old.byteSize(), 4096);
        TextPages.fill(old, 3);
        cur.copyFrom(old);
        java.util.SplittableRandom r = new java.util.SplittableRandom(5);
        for (int p = 0; p < PAGES; p++) {
            for (int i = 0; i < changed; i++) {
                long at = (long) p * PAGE + r.nextInt(PAGE);
                cur.set(ValueLayout.JAVA_BYTE, at, (byte) (cur.get(ValueLayout.JAVA_BYTE, at) + 1));
            }
        }
        for (int p = 0; p < PAGES; p++) {
            int n = XbzrleCodec.encode(old, (long) p * PAGE, cur, (long) p * PAGE, PAGE, out, PAGE - 1);
            lengths[p] = Math.max(n, 0);
            deltas[p] = java.util.Arrays.copyOf(out, Math.max(n, 0));
        }
        copy.copyFrom(old);
    }

    @TearDown
    public void tearDown() {
        arena.close();
    }

    @Benchmark
    public int encode() {
        int total = 0;
        for (int p = 0; p < PAGES; p++) {
            total += XbzrleCodec.encode(old, (long) p * PAGE, cur, (long) p * PAGE, PAGE, out, PAGE - 1);
        }
        return total;
    }

    /** Each delta applied onto the old page (the destination's copy), in place. */
    @Benchmark
    public MemorySegment decode() {
        copy.copyFrom(old); // part of the measure: the baseline copies the same bytes once too
        for (int p = 0; p < PAGES; p++) {
            String err = XbzrleCodec.decode(deltas[p], lengths[p], copy, (long) p * PAGE, PAGE);
            if (err != null) {
                throw new IllegalStateException(err);
            }
        }
        return copy;
    }

    /** Copying the same 512 KiB. */
    @Benchmark
    public MemorySegment baseline() {
        return copy.copyFrom(cur);
    }
}
