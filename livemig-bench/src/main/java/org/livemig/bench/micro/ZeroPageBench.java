package org.livemig.bench.micro;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.TimeUnit;
import org.livemig.memory.RamBlock;
import org.livemig.memory.ZeroPages;
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
 * The zero-page scan over 1 MiB of pages (what the saver does to every dirty page, and the
 * loader to a page it is told is zero), beside copying the same MiB: a page that is zero must be
 * read whole, so the scan of zero pages is bounded by memory bandwidth as the copy is; a page
 * that is not zero should be rejected long before its end.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
public class ZeroPageBench {
    static final int PAGES = 256;

    /** zero: every page zero; first-byte / last-byte: every page non-zero there only. */
    @Param({"zero", "last-byte", "first-byte"})
    public String pages;

    private Arena arena;
    private MemorySegment ram;
    private MemorySegment copy;

    @Setup
    public void setup() {
        arena = Arena.ofConfined();
        ram = arena.allocate((long) PAGES * RamBlock.PAGE_SIZE, 4096);
        copy = arena.allocate(ram.byteSize(), 4096);
        for (int p = 0; p < PAGES; p++) {
            long base = (long) p * RamBlock.PAGE_SIZE;
            switch (pages) {
                case "first-byte" -> ram.set(java.lang.foreign.ValueLayout.JAVA_BYTE, base, (byte) 1);
                case "last-byte" -> ram.set(java.lang.foreign.ValueLayout.JAVA_BYTE, base + RamBlock.PAGE_SIZE - 1, (byte) 1);
                default -> { }
            }
        }
        copy.copyFrom(ram); // both touched before measuring
    }

    @TearDown
    public void tearDown() {
        arena.close();
    }

    @Benchmark
    public int scan() {
        int zero = 0;
        for (int p = 0; p < PAGES; p++) {
            if (ZeroPages.isZeroPage(ram, (long) p * RamBlock.PAGE_SIZE)) {
                zero++;
            }
        }
        return zero;
    }

    /** Copying the same MiB. */
    @Benchmark
    public MemorySegment baseline() {
        return copy.copyFrom(ram);
    }
}
