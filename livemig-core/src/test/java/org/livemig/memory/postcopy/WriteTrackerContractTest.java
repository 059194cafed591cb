package org.livemig.memory.postcopy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.RepeatedTest;
import org.junit.jupiter.api.RepetitionInfo;
import org.junit.jupiter.api.Test;
import org.livemig.memory.GuestRam;
import org.livemig.memory.RamBlock;

/**
 * What every write tracker (background-snapshot) must do, one subclass per backend. Guest
 * threads write through {@link GuestRam}'s accessors, as vCPUs do; the test plays the saving
 * thread: it copies pages out, then calls {@link WriteTracker#saved}.
 */
abstract class WriteTrackerContractTest {
    static final Duration WAIT = Duration.ofSeconds(20);
    static final int PAGE = RamBlock.PAGE_SIZE;

    GuestRam ram;
    RamBlock block;
    RamBlock other;
    WriteTracker tracker;
    Arena arena;
    private final List<Thread> threads = new ArrayList<>();

    abstract void assumeSupported();

    abstract WriteTracker create(GuestRam ram) throws IOException;

    abstract String expectedName();

    @BeforeEach
    void setUp() throws IOException {
        assumeSupported();
        arena = Arena.ofShared();
        ram = new GuestRam();
        block = ram.addBlock("pc.ram", 256L * PAGE, true);
        other = ram.addBlock("pc.bios", 8L * PAGE, false); // not pre-faulted: never-written pages too
        fill(block, 1);
        ram.markWritten();
        tracker = create(ram);
    }

    @AfterEach
    void tearDown() throws InterruptedException {
        if (tracker != null) {
            tracker.close();
        }
        for (Thread t : threads) {
            t.join(WAIT.toMillis());
            assertThat(t.isAlive()).as("thread %s still running", t.getName()).isFalse();
        }
        if (ram != null) {
            ram.close();
        }
        if (arena != null) {
            arena.close();
        }
    }

    /** Every long of {@code b} set to {@code seed + index} (written directly, before tracking). */
    static void fill(RamBlock b, long seed) {
        for (long i = 0; i < b.usedLength() / 8; i++) {
            b.memory().setAtIndex(ValueLayout.JAVA_LONG, i, seed + i);
        }
    }

    <T> CompletableFuture<T> guest(String name, java.util.concurrent.Callable<T> body) {
        CompletableFuture<T> f = new CompletableFuture<>();
        Thread t = Thread.ofPlatform().daemon().name(name).start(() -> {
            try {
                f.complete(body.call());
            } catch (Throwable e) {
                f.completeExceptionally(e);
            }
        });
        threads.add(t);
        return f;
    }

    /** The saving thread's copy of a page. */
    MemorySegment copyOut(RamBlock b, long page) {
        MemorySegment s = arena.allocate(PAGE, PAGE);
        MemorySegment.copy(b.memory(), page * PAGE, s, 0, PAGE);
        return s;
    }

    PageFault awaitFault() throws Exception {
        PageFault f = tracker.pollFault(WAIT.toMillis(), TimeUnit.MILLISECONDS);
        assertThat(f).as("a fault within %s", WAIT).isNotNull();
        return f;
    }

    @Test
    void nameAndLifeCycleOrder() throws IOException {
        assertThat(tracker.name()).isEqualTo(expectedName());
        assertThatThrownBy(tracker::start).isInstanceOf(IllegalStateException.class);
        tracker.prepare();
        assertThatThrownBy(tracker::prepare).isInstanceOf(IllegalStateException.class);
        tracker.start();
        assertThat(tracker.isSaved(block, 0)).isFalse();
    }

    @Test
    void beforeStartWritesGoStraightThrough() throws Exception {
        tracker.prepare();
        ram.writeLong(block, 8, 77);
        assertThat(ram.readLong(block, 8)).isEqualTo(77);
        assertThat(tracker.waits()).isZero();
    }

    @Test
    void readsNeverWait() throws Exception {
        tracker.prepare();
        tracker.start();
        CompletableFuture<Long> read = guest("vcpu-0", () -> ram.readLong(block, 9L * PAGE + 16));
        assertThat(read.get(WAIT.toMillis(), TimeUnit.MILLISECONDS)).isEqualTo(1 + 9L * PAGE / 8 + 2);
        assertThat(tracker.pollFault(20, TimeUnit.MILLISECONDS)).isNull();
        assertThat(tracker.waits()).isZero();
    }

    @Test
    void aWriteToAnUnsavedPageWaitsUntilItIsSavedAndTheCopyIsTheOldPage() throws Exception {
        tracker.prepare();
        tracker.start();
        long off = 5L * PAGE + 64;
        CompletableFuture<Void> write = guest("vcpu-1", () -> {
            ram.writeLong(block, off, -1L);
            return null;
        });
        PageFault f = awaitFault();
        assertThat(f.block()).isSameAs(block);
        assertThat(f.page()).isEqualTo(5);
        assertThat(f.write()).isTrue();
        assertThat(write).as("the write waits for its page").isNotDone();
        MemorySegment copy = copyOut(block, 5);
        tracker.saved(block, 5, 1);
        write.get(WAIT.toMillis(), TimeUnit.MILLISECONDS);
        assertThat(copy.get(ValueLayout.JAVA_LONG, 64)).as("the saved copy holds the old value").isEqualTo(1 + off / 8);
        assertThat(ram.readLong(block, off)).as("the write went on").isEqualTo(-1L);
        assertThat(tracker.isSaved(block, 5)).isTrue();
        assertThat(tracker.waits()).isEqualTo(1);
        assertThat(tracker.longestWaitNanos()).isPositive();
        assertThat(tracker.totalWaitNanos()).isGreaterThanOrEqualTo(tracker.longestWaitNanos());
    }

    @Test
    void aNeverWrittenPageIsProtectedToo() throws Exception {
        tracker.prepare();
        tracker.start();
        CompletableFuture<Void> write = guest("vcpu-2", () -> {
            ram.writeByte(other, 3L * PAGE + 1, (byte) 9);
            return null;
        });
        PageFault f = awaitFault();
        assertThat(f.block()).isSameAs(other);
        assertThat(f.page()).isEqualTo(3);
        MemorySegment copy = copyOut(other, 3);
        tracker.saved(other, 3, 1);
        write.get(WAIT.toMillis(), TimeUnit.MILLISECONDS);
        assertThat(copy.get(ValueLayout.JAVA_BYTE, 1)).isZero();
        assertThat(ram.readByte(other, 3L * PAGE + 1)).isEqualTo((byte) 9);
    }

    @Test
    void writesToSavedPagesGoStraightThrough() throws Exception {
        tracker.prepare();
        tracker.start();
        tracker.saved(block, 0, 16);
        CompletableFuture<Void> write = guest("vcpu-0", () -> {
            for (int p = 0; p < 16; p++) {
                ram.writeLong(block, (long) p * PAGE, p);
            }
            return null;
        });
        write.get(WAIT.toMillis(), TimeUnit.MILLISECONDS);
        assertThat(tracker.pollFault(20, TimeUnit.MILLISECONDS)).isNull();
        assertThat(tracker.waits()).isZero();
    }

    @Test
    void aSafepointWhileAWriterWaitsDoesNotHangTheJvm() throws Exception {
        tracker.prepare();
        tracker.start();
        CompletableFuture<Void> write = guest("vcpu-3", () -> {
            ram.writeLong(block, 7L * PAGE, 5);
            return null;
        });
        awaitFault();
        // A full GC needs every Java thread at a safepoint: the waiting writer must not hold it up.
        CompletableFuture<Void> gc = guest("gc", () -> {
            System.gc();
            return null;
        });
        gc.get(WAIT.toMillis(), TimeUnit.MILLISECONDS);
        assertThat(write).isNotDone();
        tracker.saved(block, 7, 1);
        write.get(WAIT.toMillis(), TimeUnit.MILLISECONDS);
    }

    @Test
    void closeLetsEveryWaitingWriterGoOn() throws Exception {
        tracker.prepare();
        tracker.start();
        CompletableFuture<Void> a = guest("vcpu-0", () -> {
            ram.writeLong(block, 10L * PAGE, 1);
            return null;
        });
        CompletableFuture<Void> b = guest("vcpu-1", () -> {
            ram.writeLong(block, 11L * PAGE, 2);
            return null;
        });
        java.util.Set<Long> faulted = new java.util.HashSet<>();
        while (faulted.size() < 2) {
            faulted.add(awaitFault().page());
        }
        assertThat(faulted).containsExactlyInAnyOrder(10L, 11L);
        assertThat(pendingWriters(a, b)).isEqualTo(2);
        tracker.close();
        a.get(WAIT.toMillis(), TimeUnit.MILLISECONDS);
        b.get(WAIT.toMillis(), TimeUnit.MILLISECONDS);
        assertThat(ram.readLong(block, 10L * PAGE)).isEqualTo(1);
        assertThat(ram.readLong(block, 11L * PAGE)).isEqualTo(2);
        assertThat(tracker.pollFault(10, TimeUnit.MILLISECONDS)).isNull();
        tracker.saved(block, 10, 1); // after close: nothing to do, no failure
    }

    private static int pendingWriters(CompletableFuture<?>... fs) {
        int n = 0;
        for (CompletableFuture<?> f : fs) {
            n += f.isDone() ? 0 : 1;
        }
        return n;
    }

    @Test
    void savedRangesAreChecked() throws Exception {
        tracker.prepare();
        tracker.start();
        assertThatThrownBy(() -> tracker.saved(block, 250, 7)).isInstanceOf(IndexOutOfBoundsException.class);
        assertThatThrownBy(() -> tracker.saved(block, -1, 1)).isInstanceOf(IndexOutOfBoundsException.class);
    }

    /**
     * Several guest threads write random pages while a saver copies pages out in address order
     * and serves faults first, as the RAM saver does. Every copy must be the page as it was at
     * start, and every write must be in RAM at the end.
     */
    @RepeatedTest(3)
    void copiesAreThePagesAtStartAndNoWriteIsLost(RepetitionInfo rep) throws Exception {
        long seed = 0x5EED_0000L + rep.getCurrentRepetition();
        try {
            stress(seed);
        } catch (AssertionError e) {
            throw new AssertionError("seed " + Long.toHexString(seed) + ": " + e.getMessage(), e);
        }
    }

    private void stress(long seed) throws Exception {
        tracker.prepare();
        tracker.start();
        int writers = 3;
        long pages = block.pageCount();
        AtomicBoolean stop = new AtomicBoolean();
        List<CompletableFuture<long[]>> done = new ArrayList<>();
        for (int w = 0; w < writers; w++) {
            int id = w;
            done.add(guest("vcpu-" + w, () -> {
                // Each writer owns the longs at index id of every page it writes: last value wins per slot.
                SplittableRandom r = new SplittableRandom(seed + id);
                long[] last = new long[(int) pages];
                java.util.Arrays.fill(last, Long.MIN_VALUE);
                int n = 0;
                while (!stop.get() && n < 400) {
                    long page = r.nextLong(pages);
                    long v = r.nextLong() & Long.MAX_VALUE;
                    ram.writeLong(block, page * PAGE + id * 8L, v);
                    last[(int) page] = v;
                    n++;
                }
                return last;
            }));
        }
        MemorySegment[] copies = new MemorySegment[(int) pages];
        List<PageFault> faults = new ArrayList<>();
        for (long p = 0; p < pages; p++) {
            faults.clear();
            tracker.drainFaults(faults, 64);
            for (PageFault f : faults) {
                if (copies[(int) f.page()] == null) {
                    copies[(int) f.page()] = copyOut(block, f.page());
                }
                tracker.saved(block, f.page(), 1);
            }
            if (copies[(int) p] == null) {
                copies[(int) p] = copyOut(block, p);
                tracker.saved(block, p, 1);
            }
        }
        long[][] lasts = new long[writers][];
        for (int w = 0; w < writers; w++) {
            lasts[w] = done.get(w).get(WAIT.toMillis(), TimeUnit.MILLISECONDS);
        }
        stop.set(true);
        for (long p = 0; p < pages; p++) {
            for (int i = 0; i < PAGE / 8; i++) {
                assertThat(copies[(int) p].getAtIndex(ValueLayout.JAVA_LONG, i))
                        .as("copy of page %d, long %d", p, i).isEqualTo(1 + p * PAGE / 8 + i);
            }
            for (int w = 0; w < writers; w++) {
                long want = lasts[w][(int) p] == Long.MIN_VALUE ? 1 + p * PAGE / 8 + w : lasts[w][(int) p];
                assertThat(ram.readLong(block, p * PAGE + w * 8L)).as("page %d, writer %d", p, w).isEqualTo(want);
            }
        }
    }
}
