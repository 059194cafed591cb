package org.livemig.machine;

import java.util.concurrent.locks.LockSupport;
import org.livemig.memory.RamBlock;

/**
 * What a machine's vCPUs do. {@link #step} runs a short slice (about a millisecond at most) on
 * a vCPU thread without the BQL, so that the vCPU reaches a safe point often.
 *
 * <p>Specs: {@code ab[:PAGES_PER_SEC][,print|,print-clock]} (QEMU's migration-test guest; with
 * {@code print} it writes 'A' to its serial port once and 'B' after each pass, as QEMU's test guest
 * does, and with {@code print-clock} a digit of the host clock after each 'B', so that two copies
 * of it write different output), {@code random-writes:MIB_PER_SEC}, {@code idle}.
 */
public sealed interface Workload permits Workload.Ab, Workload.RandomWrites, Workload.Idle {
    /** Runs one slice of guest work on the calling vCPU thread. */
    void step(VcpuContext ctx);

    /** Prepares guest RAM before the machine first runs (the guest's own initialisation). */
    default void initialise(RamBlock block) {}

    /** The spec this workload was parsed from. */
    String spec();

    static Workload parse(String spec) {
        String s = spec.trim();
        String option = null;
        int comma = s.indexOf(',');
        if (comma >= 0) {
            option = s.substring(comma + 1);
            s = s.substring(0, comma);
        }
        String[] parts = s.split(":", 2);
        if (option != null && !parts[0].equals("ab")) {
            throw new IllegalArgumentException("workload '" + spec + "': only ab takes an option (print, print-clock)");
        }
        try {
            return switch (parts[0]) {
                case "ab" -> new Ab(parts.length > 1 ? Long.parseLong(parts[1]) : 0,
                        Ab.DEFAULT_START, Ab.DEFAULT_END, Ab.Output.parse(option, spec));
                case "random-writes" -> {
                    if (parts.length < 2) {
                        throw new IllegalArgumentException("random-writes needs a rate: random-writes:MIB_PER_SEC");
                    }
                    yield new RandomWrites(Double.parseDouble(parts[1]));
                }
                case "idle" -> new Idle();
                default -> throw new IllegalArgumentException("unknown workload '" + spec
                        + "' (expected ab[:PAGES_PER_SEC][,print|,print-clock], random-writes:MIB_PER_SEC or idle)");
            };
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("bad number in workload '" + spec + "'", e);
        }
    }

    /** Waits, if needed, so that {@code ctx} does not exceed {@code perSecond} units; at most 1 ms per call. */
    static boolean pace(VcpuContext ctx, double perSecond) {
        if (perSecond <= 0) {
            return true;
        }
        long now = System.nanoTime();
        if (ctx.pacingStartNanos == 0) {
            ctx.pacingStartNanos = now;
        }
        double allowed = (now - ctx.pacingStartNanos) / 1e9 * perSecond;
        if (ctx.pacingDone < allowed) {
            return true;
        }
        long waitNanos = (long) ((ctx.pacingDone - allowed) / perSecond * 1e9);
        LockSupport.parkNanos(Math.min(waitNanos, 1_000_000));
        return false;
    }

    /**
     * QEMU's migration-test guest: increments the first byte of every page of a range, pass after
     * pass, forever. The range ([1 MiB, 100 MiB) by default, clipped to the RAM) is split into one
     * contiguous slice per vCPU, so that each slice holds b+1 up to its cursor and b after it.
     * {@code pagesPerSecond} (all vCPUs together; 0: as fast as it can) caps the dirty rate.
     * {@code output} says what the guest writes to its serial port.
     */
    record Ab(long pagesPerSecond, long startOffset, long endOffset, Output output) implements Workload {
        public static final long DEFAULT_START = 1L << 20;
        public static final long DEFAULT_END = 100L << 20;
        private static final int PAGES_PER_STEP = 256;
        /** Register holding the next page to increment (the guest's loop variable). */
        static final int CURSOR = 5;
        /** Register that says the guest has written its 'A' (vCPU 0's). */
        static final int GREETED = 6;

        /** What the guest writes to its serial port. */
        public enum Output {
            /** Nothing. */
            NONE,
            /** 'A' once, then 'B' after each pass over a vCPU's pages, as QEMU's test guest. */
            PRINT,
            /** As PRINT, with a digit of the host clock after each 'B': two copies of the guest diverge. */
            PRINT_CLOCK;

            static Output parse(String option, String spec) {
                if (option == null) {
                    return NONE;
                }
                return switch (option) {
                    case "print" -> PRINT;
                    case "print-clock" -> PRINT_CLOCK;
                    default -> throw new IllegalArgumentException("workload '" + spec + "': unknown option '" + option
                            + "' (print or print-clock)");
                };
            }
        }

        public Ab(long pagesPerSecond, long startOffset, long endOffset) {
            this(pagesPerSecond, startOffset, endOffset, Output.NONE);
        }

        @Override
        public String spec() {
            String base = pagesPerSecond > 0 ? "ab:" + pagesPerSecond : "ab";
            return switch (output) {
                case NONE -> base;
                case PRINT -> base + ",print";
                case PRINT_CLOCK -> base + ",print-clock";
            };
        }

        /** First and last+1 page of the whole range in a block of the given size. */
        public long[] pageRange(long blockSize) {
            long end = Math.min(endOffset, blockSize);
            long start = Math.min(startOffset, end);
            return new long[] {start >>> RamBlock.PAGE_BITS, end >>> RamBlock.PAGE_BITS};
        }

        /** First and last+1 page of vCPU {@code index}'s slice. */
        public long[] slice(long blockSize, int index, int count) {
            long[] r = pageRange(blockSize);
            long n = r[1] - r[0];
            return new long[] {r[0] + n * index / count, r[0] + n * (index + 1) / count};
        }

        @Override
        public void initialise(RamBlock block) {
            long[] r = pageRange(block.usedLength());
            for (long p = r[0]; p < r[1]; p++) {
                block.memory().set(java.lang.foreign.ValueLayout.JAVA_BYTE, p << RamBlock.PAGE_BITS, (byte) 0);
            }
        }

        @Override
        public void step(VcpuContext ctx) {
            RamBlock b = ctx.mainBlock();
            long[] s = slice(b.usedLength(), ctx.index(), ctx.vcpuCount());
            if (s[1] <= s[0]) {
                LockSupport.parkNanos(1_000_000);
                return;
            }
            // The guest's position lives in its registers, so that it moves with the vCPU state
            // in a migration and the guest goes on where it stopped.
            CpuState r = ctx.regs();
            if (r.regs[CURSOR] < s[0] || r.regs[CURSOR] >= s[1]) {
                r.regs[CURSOR] = s[0];
            }
            if (output != Output.NONE && ctx.index() == 0 && r.regs[GREETED] == 0) {
                r.regs[GREETED] = 1;
                ctx.serialWrite((byte) 'A');
            }
            double rate = pagesPerSecond > 0 ? (double) pagesPerSecond / ctx.vcpuCount() : 0;
            for (int i = 0; i < PAGES_PER_STEP; i++) {
                if (!pace(ctx, rate)) {
                    return;
                }
                long off = r.regs[CURSOR] << RamBlock.PAGE_BITS;
                byte v = ctx.ram().readByte(b, off);
                ctx.ram().writeByte(b, off, (byte) (v + 1));
                ctx.pacingDone++;
                r.regs[0] = off;
                r.regs[1] = (v + 1) & 0xFF;
                r.rip = 0x7c00 + (i & 0xFF);
                r.instructions++;
                if (++r.regs[CURSOR] >= s[1]) {
                    r.regs[CURSOR] = s[0];
                    r.regs[2]++; // completed passes
                    printPass(ctx);
                }
            }
        }

        /** The end of a pass: 'B' (and with print-clock a digit of the host clock). */
        private void printPass(VcpuContext ctx) {
            if (output == Output.NONE) {
                return;
            }
            ctx.serialWrite((byte) 'B');
            if (output == Output.PRINT_CLOCK) {
                ctx.serialWrite((byte) ('0' + (System.nanoTime() / 1_000_000) % 10));
            }
        }
    }

    /** Random 8-byte writes to random pages of the main block at a given rate (MiB of pages per second). */
    record RandomWrites(double mibPerSecond) implements Workload {
        private static final int WRITES_PER_STEP = 256;

        @Override
        public String spec() {
            return "random-writes:" + (mibPerSecond == Math.rint(mibPerSecond) ? String.valueOf((long) mibPerSecond) : String.valueOf(mibPerSecond));
        }

        @Override
        public void step(VcpuContext ctx) {
            RamBlock b = ctx.mainBlock();
            double pagesPerSecond = mibPerSecond * (1 << 20) / RamBlock.PAGE_SIZE / ctx.vcpuCount();
            long pages = b.pageCount();
            for (int i = 0; i < WRITES_PER_STEP; i++) {
                if (!pace(ctx, pagesPerSecond)) {
                    return;
                }
                long page = ctx.random().nextLong(pages);
                long off = (page << RamBlock.PAGE_BITS) + ((long) ctx.random().nextInt(RamBlock.PAGE_SIZE / 8) << 3);
                long value = ctx.random().nextLong();
                ctx.ram().writeLong(b, off, value);
                ctx.pacingDone++;
                CpuState r = ctx.regs();
                r.regs[3] = off;
                r.regs[4] = value;
                r.instructions++;
            }
        }
    }

    /** A guest that does nothing (its vCPUs halt). */
    record Idle() implements Workload {
        @Override
        public String spec() {
            return "idle";
        }

        @Override
        public void step(VcpuContext ctx) {
            LockSupport.parkNanos(1_000_000);
        }
    }
}
