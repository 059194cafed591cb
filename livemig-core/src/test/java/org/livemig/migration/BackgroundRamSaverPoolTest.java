package org.livemig.migration;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.lang.foreign.ValueLayout;
import java.time.Duration;
import java.util.Collection;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;
import org.livemig.memory.GuestRam;
import org.livemig.memory.RamBlock;
import org.livemig.memory.postcopy.PageFault;
import org.livemig.memory.postcopy.WriteTracker;

/**
 * While mig/src/main is held (in a write to a slow disk, here: it never runs), the fault thread
 * goes on copying faulted pages past its first 16 MiB pool: the guest writes waiting for them go
 * on without waiting for the file.
 */
class BackgroundRamSaverPoolTest {
    /** More pages than the first pool holds, fewer than the grown one. */
    private static final int FAULTS = BackgroundRamSaver.POOL_PAGES + 2000;

    /** Faults are handed in by the test; saved pages are counted. */
    private static final class FakeTracker implements WriteTracker {
        final LinkedBlockingQueue<PageFault> faults = new LinkedBlockingQueue<>();
        final AtomicLong saved = new AtomicLong();

        @Override public String name() { return "fake"; }
        @Override public void prepare() {}
        @Override public void start() {}
        @Override public boolean isSaved(RamBlock block, long page) { return false; }

        @Override
        public PageFault pollFault(long timeout, TimeUnit unit) throws InterruptedException {
            return faults.poll(timeout, unit);
        }

        @Override
        public int drainFaults(Collection<? super PageFault> sink, int max) {
            return faults.drainTo(sink, max);
        }

        @Override
        public void saved(RamBlock block, long first, long count) {
            saved.addAndGet(count);
        }

        @Override public long waits() { return 0; }
        @Override public long longestWaitNanos() { return 0; }
        @Override public long totalWaitNanos() { return 0; }
        @Override public long[] waitHistogram() { return new long[1]; }
        @Override public void close() {}
    }

    @Test
    void faultedPagesAreCopiedPastTheFirstPoolWhileTheMainThreadIsHeld() {
        GuestRam ram = new GuestRam();
        // 512 MiB, not pre-faulted: a sixteenth is 32 MiB of pool, more than the first 16 MiB.
        RamBlock b = ram.addBlock("pc.ram", 512L << 20, false);
        FakeTracker t = new FakeTracker();
        RamSaver saver = new RamSaver(ram, new RamStats());
        try {
            saver.useWriteTracker(t);
            saver.startDirtyTracking();
            for (int i = 0; i < FAULTS; i++) {
                b.memory().set(ValueLayout.JAVA_BYTE, (long) i << RamBlock.PAGE_BITS, (byte) 1); // not a zero page
            }
            saver.writeTrackingStarted();
            for (int i = 0; i < FAULTS; i++) {
                t.faults.add(new PageFault(b, i, true, System.nanoTime()));
            }
            // mig/src/main never takes the copies out: each one holds a pool page.
            await().atMost(Duration.ofSeconds(30)).until(() -> t.saved.get() == FAULTS);
            assertThat(saver.hasFaultedCopies()).isTrue();
        } finally {
            saver.stopWriteTracking();
            ram.close();
        }
    }
}
