package org.livemig.memory.postcopy;

import org.livemig.memory.GuestRam;
import org.livemig.memory.RamBlock;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.RepeatedTest;
import org.junit.jupiter.api.RepetitionInfo;
import org.junit.jupiter.api.Test;

/**
 * What every postcopy backend must do, one subclass per backend (JCTools style). Guest threads
 * use {@link GuestRam}'s accessors, as vCPUs do.
 */
abstract class PostcopyBackendContractTest {
    static final Duration WAIT = Duration.ofSeconds(20);
    static final int PAGE = RamBlock.PAGE_SIZE;

    GuestRam ram;
    RamBlock block;
    RamBlock other;
    /** A larger block for the stress test. */
    RamBlock stress;
    PostcopyBackend backend;
    Arena arena;
    private final List<Thread> threads = new ArrayList<>();

    /** Skips the test (JUnit assumption) where the backend cannot work. */
    abstract void assumeSupported();

    abstract PostcopyBackend create(GuestRam ram) throws IOException;

    abstract String expectedName();

    @BeforeEach
    void setUp() throws IOException {
        assumeSupported();
        arena = Arena.ofShared();
        ram = new GuestRam();
        block = ram.addBlock("pc.ram", 64L * PAGE, false);
        other = ram.addBlock("pc.bios", 8L * PAGE, false);
        stress = ram.addBlock("stress.ram", 192L * PAGE, false);
        backend = create(ram);
    }

    @AfterEach
    void tearDown() throws InterruptedException {
        if (backend != null) {
            backend.close();
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

    /** A page whose longs are {@code seed + page * 1000 + i}. */
    MemorySegment pattern(long seed, long page) {
        MemorySegment s = arena.allocate(PAGE, PAGE);
        for (int i = 0; i < PAGE / 8; i++) {
            s.setAtIndex(ValueLayout.JAVA_LONG, i, seed + page * 1000 + i);
        }
        return s;
    }

    /** Runs {@code body} on a new guest-like thread; its result (or failure) in the future. */
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

    PageFault awaitFault() throws Exception {
        PageFault f = backend.pollFault(WAIT.toMillis(), TimeUnit.MILLISECONDS);
        assertThat(f).as("a fault within %s", WAIT).isNotNull();
        return f;
    }

    // ------------------------------------------------------------------ basics

    @Test
    void nameAndInitialState() {
        assertThat(backend.name()).isEqualTo(expectedName());
        assertThat(backend.ram()).isSameAs(ram);
        assertThat(backend.isListening()).isFalse();
        assertThat(backend.isClosed()).isFalse();
        assertThat(backend.receivedMap(block).pages()).isEqualTo(64);
        assertThat(backend.receivedMap(block).receivedCount()).isZero();
        assertThat(backend.receivedMap(other).pages()).isEqualTo(8);
    }

    @Test
    void unknownBlocksAndBadPagesAreRefused() throws IOException {
        try (GuestRam elsewhere = new GuestRam()) {
            RamBlock foreign = elsewhere.addBlock("pc.ram", PAGE, false);
            assertThatThrownBy(() -> backend.receivedMap(foreign)).isInstanceOf(IllegalArgumentException.class);
            assertThatThrownBy(() -> backend.placeZeroPage(foreign, 0)).isInstanceOf(IllegalArgumentException.class);
        }
        assertThatThrownBy(() -> backend.placeZeroPage(block, 64)).isInstanceOf(IndexOutOfBoundsException.class);
        assertThatThrownBy(() -> backend.placePage(block, 0, arena.allocate(100))).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> backend.discard(block, 100, PAGE)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> backend.discard(block, 60L * PAGE, 8L * PAGE)).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void placedPagesAreWholeAndNeverPlacedTwice() throws Exception {
        backend.startListening();
        assertThat(backend.isListening()).isTrue();
        assertThat(backend.placePage(block, 7, pattern(1, 7))).isTrue();
        assertThat(backend.receivedMap(block).isReceived(7)).isTrue();
        for (int i = 0; i < PAGE / 8; i++) {
            assertThat(ram.readLong(block, 7L * PAGE + 8L * i)).isEqualTo(1 + 7000 + i);
        }
        ram.writeLong(block, 7L * PAGE + 16, 42);
        assertThat(backend.placePage(block, 7, pattern(2, 7))).as("a second placement is refused").isFalse();
        assertThat(backend.placeZeroPage(block, 7)).isFalse();
        assertThat(ram.readLong(block, 7L * PAGE + 16)).as("the guest's write survives").isEqualTo(42);
        assertThat(ram.readLong(block, 7L * PAGE + 24)).isEqualTo(1 + 7000 + 3);
        assertThat(backend.drainFaults(new ArrayList<>(), 10)).isZero();
    }

    @Test
    void heapSourcesArePlacedToo() throws Exception {
        backend.startListening();
        byte[] bytes = new byte[PAGE];
        for (int i = 0; i < PAGE; i++) {
            bytes[i] = (byte) (i * 7 + 3);
        }
        assertThat(backend.placePage(block, 3, MemorySegment.ofArray(bytes))).isTrue();
        for (int i = 0; i < PAGE; i += 97) {
            assertThat(ram.readByte(block, 3L * PAGE + i)).isEqualTo(bytes[i]);
        }
    }

    @Test
    void readOfAMissingPageBlocksIsReportedAndSeesThePlacedPage() throws Exception {
        backend.startListening();
        CompletableFuture<Long> read = guest("CPU 0/test", () -> ram.readLong(block, 9L * PAGE + 8 * 5));
        PageFault f = awaitFault();
        assertThat(f.block()).isSameAs(block);
        assertThat(f.page()).isEqualTo(9);
        assertThat(f.offset()).isEqualTo(9L * PAGE);
        assertThat(read).as("the reader waits for the page").isNotDone();
        assertThat(backend.placePage(block, 9, pattern(100, 9))).isTrue();
        assertThat(read.get(WAIT.toSeconds(), TimeUnit.SECONDS)).isEqualTo(100 + 9000 + 5);
    }

    @Test
    void writeToAMissingPageWaitsAndLandsOnThePlacedPage() throws Exception {
        backend.startListening();
        CompletableFuture<Void> write = guest("CPU 1/test", () -> {
            ram.writeLong(block, 11L * PAGE + 8 * 3, -1L);
            return null;
        });
        PageFault f = awaitFault();
        assertThat(f.page()).isEqualTo(11);
        assertThat(write).isNotDone();
        assertThat(backend.placePage(block, 11, pattern(5, 11))).isTrue();
        write.get(WAIT.toSeconds(), TimeUnit.SECONDS);
        assertThat(ram.readLong(block, 11L * PAGE + 8 * 3)).isEqualTo(-1L);
        assertThat(ram.readLong(block, 11L * PAGE + 8 * 2)).isEqualTo(5 + 11000 + 2);
        assertThat(ram.readLong(block, 11L * PAGE + 8 * 4)).isEqualTo(5 + 11000 + 4);
    }

    @Test
    void zeroPagePlacementClearsStaleContents() throws Exception {
        // Stale bytes in RAM that were never marked received (as after a discard).
        block.memory().asSlice(20L * PAGE, PAGE).fill((byte) 0x77);
        backend.startListening();
        CompletableFuture<Long> read = guest("CPU 2/test", () -> ram.readLong(block, 20L * PAGE + 8 * 100));
        assertThat(awaitFault().page()).isEqualTo(20);
        assertThat(backend.placeZeroPage(block, 20)).isTrue();
        assertThat(read.get(WAIT.toSeconds(), TimeUnit.SECONDS)).isZero();
        for (int i = 0; i < PAGE; i += 8) {
            assertThat(ram.readLong(block, 20L * PAGE + i)).isZero();
        }
    }

    @Test
    void pagesReceivedBeforeListeningNeedNoFault() throws Exception {
        // precopy: page 1 loaded with contents, page 2 received as a zero page never written (pristine RAM)
        MemorySegment.copy(pattern(9, 1), 0, block.memory(), PAGE, PAGE);
        backend.receivedMap(block).markReceived(1);
        backend.receivedMap(block).markReceived(2);
        backend.receivedMap(other).markReceived(0, 8);
        backend.startListening();
        assertThat(ram.readLong(block, PAGE + 8 * 7)).isEqualTo(9 + 1000 + 7);
        assertThat(ram.readLong(block, 2L * PAGE + 8 * 7)).isZero();
        ram.writeLong(block, 2L * PAGE, 5);
        assertThat(ram.readLong(block, 2L * PAGE)).isEqualTo(5);
        assertThat(ram.readByte(other, 7L * PAGE + 5)).isZero();
        assertThat(backend.pollFault(0, TimeUnit.MILLISECONDS)).isNull();
        assertThat(backend.drainFaults(new ArrayList<>(), 10)).isZero();
    }

    @Test
    void placementsBeforeListeningAreKept() throws Exception {
        assertThat(backend.placePage(block, 4, pattern(3, 4))).isTrue();
        assertThat(backend.placePage(block, 4, pattern(4, 4))).isFalse();
        assertThat(backend.placeZeroPage(block, 5)).isTrue();
        backend.startListening();
        assertThat(ram.readLong(block, 4L * PAGE + 8)).isEqualTo(3 + 4000 + 1);
        assertThat(ram.readLong(block, 5L * PAGE + 8)).isZero();
        assertThat(backend.drainFaults(new ArrayList<>(), 10)).isZero();
    }

    @Test
    void onPreFaultedRamOnlyDiscardedAndNeverReceivedPagesFault() throws Exception {
        // The usual destination: RAM pre-faulted, so every page is mapped before postcopy starts.
        backend.close();
        ram.close();
        ram = new GuestRam();
        block = ram.addBlock("pc.ram", 64L * PAGE, true);
        assertThat(block.allPagesMapped()).isTrue();
        backend = create(ram);
        // precopy: pages 0-39 received (10-19 written, the rest zero and never written)
        for (long p = 10; p < 20; p++) {
            MemorySegment.copy(pattern(5, p), 0, block.memory(), p * PAGE, PAGE);
        }
        backend.receivedMap(block).markReceived(0, 40);
        backend.discard(block, 12L * PAGE, 3L * PAGE); // dirtied again: 12-14 go missing
        backend.startListening();
        // Received pages read without a fault, written or not.
        assertThat(ram.readLong(block, 11L * PAGE + 8)).isEqualTo(5 + 11000 + 1);
        assertThat(ram.readLong(block, 3L * PAGE)).isZero();
        assertThat(ram.readLong(block, 39L * PAGE)).isZero();
        assertThat(backend.drainFaults(new ArrayList<>(), 10)).isZero();
        // A discarded page and a never-sent one (mapped by the pre-fault) both wait for their page.
        for (long p : new long[] {13, 50}) {
            CompletableFuture<Long> read = guest("CPU 0/test", () -> ram.readLong(block, p * PAGE + 16));
            assertThat(awaitFault().page()).isEqualTo(p);
            assertThat(backend.placePage(block, p, pattern(7, p))).isTrue();
            assertThat(read.get(WAIT.toSeconds(), TimeUnit.SECONDS)).isEqualTo(7 + p * 1000 + 2);
        }
    }

    @Test
    void discardMakesReceivedPagesMissingAgain() throws Exception {
        for (long p = 30; p < 34; p++) {
            MemorySegment.copy(pattern(1, p), 0, block.memory(), p * PAGE, PAGE);
            backend.receivedMap(block).markReceived(p);
        }
        backend.discard(block, 31L * PAGE, 2L * PAGE);
        assertThat(backend.receivedMap(block).isReceived(30)).isTrue();
        assertThat(backend.receivedMap(block).isReceived(31)).isFalse();
        assertThat(backend.receivedMap(block).isReceived(32)).isFalse();
        assertThat(backend.receivedMap(block).isReceived(33)).isTrue();
        backend.startListening();
        assertThatThrownBy(() -> backend.discard(block, 0, PAGE)).isInstanceOf(IllegalStateException.class);
        CompletableFuture<Long> read = guest("CPU 3/test", () -> ram.readLong(block, 32L * PAGE));
        assertThat(awaitFault().page()).isEqualTo(32);
        assertThat(backend.placePage(block, 32, pattern(2, 32))).isTrue();
        assertThat(read.get(WAIT.toSeconds(), TimeUnit.SECONDS)).isEqualTo(2 + 32000);
        assertThat(ram.readLong(block, 30L * PAGE)).isEqualTo(1 + 30000);
        assertThat(ram.readLong(block, 33L * PAGE + 8)).isEqualTo(1 + 33000 + 1);
    }

    @Test
    void faultsNameTheirBlock() throws Exception {
        backend.startListening();
        CompletableFuture<Byte> read = guest("CPU 4/test", () -> ram.readByte(other, 3L * PAGE + 17));
        PageFault f = awaitFault();
        assertThat(f.block()).isSameAs(other);
        assertThat(f.page()).isEqualTo(3);
        MemorySegment src = arena.allocate(PAGE, PAGE);
        src.set(ValueLayout.JAVA_BYTE, 17, (byte) 99);
        assertThat(backend.placePage(other, 3, src)).isTrue();
        assertThat(read.get(WAIT.toSeconds(), TimeUnit.SECONDS)).isEqualTo((byte) 99);
    }

    @Test
    void pollFaultTimesOutWhenNothingFaults() throws Exception {
        backend.startListening();
        assertThat(backend.pollFault(30, TimeUnit.MILLISECONDS)).isNull();
        assertThat(backend.pollFault(0, TimeUnit.MILLISECONDS)).isNull();
    }

    @Test
    void manyFaultsAreDrainedInBatches() throws Exception {
        backend.startListening();
        List<CompletableFuture<Long>> reads = new ArrayList<>();
        for (int p = 40; p < 46; p++) {
            long page = p;
            reads.add(guest("CPU " + p + "/test", () -> ram.readLong(block, page * PAGE)));
        }
        Set<Long> seen = new HashSet<>();
        await().atMost(WAIT).until(() -> {
            PageFault f = backend.pollFault(50, TimeUnit.MILLISECONDS);
            if (f != null) {
                seen.add(f.page());
            }
            List<PageFault> batch = new ArrayList<>();
            backend.drainFaults(batch, 64);
            batch.forEach(x -> seen.add(x.page()));
            return seen.size() == 6;
        });
        assertThat(seen).containsExactlyInAnyOrder(40L, 41L, 42L, 43L, 44L, 45L);
        for (int p = 40; p < 46; p++) {
            backend.placePage(block, p, pattern(0, p));
        }
        for (int i = 0; i < reads.size(); i++) {
            assertThat(reads.get(i).get(WAIT.toSeconds(), TimeUnit.SECONDS)).isEqualTo((40 + i) * 1000L);
        }
    }

    @Test
    void racingPlacersOfOnePageCopyItOnce() throws Exception {
        backend.startListening();
        int placers = 6;
        CountDownLatch go = new CountDownLatch(1);
        List<CompletableFuture<Boolean>> results = new ArrayList<>();
        for (int i = 0; i < placers; i++) {
            MemorySegment src = pattern(77, 50);
            results.add(guest("placer-" + i, () -> {
                go.await();
                return backend.placePage(block, 50, src);
            }));
        }
        CompletableFuture<Long> read = guest("CPU 5/test", () -> ram.readLong(block, 50L * PAGE + 8 * 511));
        go.countDown();
        int won = 0;
        for (CompletableFuture<Boolean> r : results) {
            won += r.get(WAIT.toSeconds(), TimeUnit.SECONDS) ? 1 : 0;
        }
        assertThat(won).isEqualTo(1);
        assertThat(read.get(WAIT.toSeconds(), TimeUnit.SECONDS)).isEqualTo(77 + 50000 + 511);
    }

    @Test
    void closeReleasesBlockedAccessesAndRefusesPlacement() throws Exception {
        backend.startListening();
        CompletableFuture<Long> read = guest("CPU 6/test", () -> ram.readLong(block, 60L * PAGE));
        assertThat(awaitFault().page()).isEqualTo(60);
        assertThat(read).isNotDone();
        backend.close();
        assertThat(backend.isClosed()).isTrue();
        read.get(WAIT.toSeconds(), TimeUnit.SECONDS); // released; what it reads is unspecified
        assertThatThrownBy(() -> backend.placeZeroPage(block, 61)).isInstanceOf(IOException.class)
                .hasMessageContaining("closed");
        assertThat(backend.pollFault(10, TimeUnit.MILLISECONDS)).isNull();
        backend.close(); // idempotent
        // with the backend closed, the accessors are plain again
        ram.writeLong(block, 62L * PAGE, 8);
        assertThat(ram.readLong(block, 62L * PAGE)).isEqualTo(8);
    }

    @Test
    void startListeningTwiceIsRefused() throws IOException {
        backend.startListening();
        assertThatThrownBy(() -> backend.startListening()).isInstanceOf(IllegalStateException.class);
    }

    /** A JVM safepoint (here a GC) while a guest thread waits for a page must not stop the JVM. */
    @Test
    void garbageCollectionWhileAGuestWaitsCompletes() throws Exception {
        backend.startListening();
        CompletableFuture<Long> read = guest("CPU 7/test", () -> ram.readLong(block, 63L * PAGE));
        assertThat(awaitFault().page()).isEqualTo(63);
        CompletableFuture<Void> gc = guest("gc", () -> {
            System.gc();
            return null;
        });
        gc.get(WAIT.toSeconds(), TimeUnit.SECONDS);
        assertThat(read).isNotDone();
        assertThat(backend.placePage(block, 63, pattern(6, 63))).isTrue();
        assertThat(read.get(WAIT.toSeconds(), TimeUnit.SECONDS)).isEqualTo(6 + 63000);
    }

    // ------------------------------------------------------------------ stress

    /**
     * Eight guest threads read whole pages and write their own slot of the same and neighbouring
     * pages while a placer places every missing page in random order after random short delays,
     * and a fault thread places faulted pages at once (so pages race to be placed twice). Every
     * whole-page read must find the page's final contents, never part of it, and no write to a
     * missing page may be lost under the placement.
     */
    @RepeatedTest(3)
    void stressNoPartialPagesNoLostWrites(RepetitionInfo rep) throws Exception {
        long seed = 0x57E55L * 1_000_003 + rep.getCurrentRepetition() + expectedName().hashCode();
        int guests = 8;
        int pages = (int) stress.pageCount();
        int patternLongs = PAGE / 8 - 64; // slots at the end: one long per guest thread
        SplittableRandom r = new SplittableRandom(seed);
        boolean[] zero = new boolean[pages];
        long[][] initial = new long[pages][];
        List<Integer> missing = new ArrayList<>();
        for (int p = 0; p < pages; p++) {
            zero[p] = r.nextInt(10) == 0;
            initial[p] = new long[PAGE / 8];
            if (!zero[p]) {
                for (int i = 0; i < PAGE / 8; i++) {
                    initial[p][i] = seed ^ ((long) p << 32) ^ (i * 0x9E3779B97F4A7C15L);
                }
            }
            MemorySegment dst = stress.page(p);
            if (r.nextInt(5) == 0) { // received in precopy
                MemorySegment.copy(MemorySegment.ofArray(initial[p]), 0, dst, 0, PAGE);
                backend.receivedMap(stress).markReceived(p);
            } else {
                dst.fill((byte) 0xEE); // stale contents under a missing page
                missing.add(p);
            }
        }
        for (int i = missing.size() - 1; i > 0; i--) {
            int j = r.nextInt(i + 1);
            missing.set(i, missing.set(j, missing.get(i)));
        }
        MemorySegment[] sources = new MemorySegment[pages];
        for (int p = 0; p < pages; p++) {
            sources[p] = arena.allocate(PAGE, PAGE);
            MemorySegment.copy(MemorySegment.ofArray(initial[p]), 0, sources[p], 0, PAGE);
        }
        backend.startListening();

        ConcurrentLinkedQueue<String> failures = new ConcurrentLinkedQueue<>();
        AtomicBoolean placerDone = new AtomicBoolean();
        AtomicLong placedByFault = new AtomicLong();
        AtomicInteger refusedTwice = new AtomicInteger();
        Runnable placeAll = () -> {
            SplittableRandom pr = new SplittableRandom(seed ^ 0x9A9A);
            try {
                for (int p : missing) {
                    LockSupport.parkNanos(pr.nextLong(300_000));
                    boolean placed = zero[p] ? backend.placeZeroPage(stress, p) : backend.placePage(stress, p, sources[p]);
                    if (!placed) {
                        refusedTwice.incrementAndGet();
                    }
                }
            } catch (Throwable e) {
                failures.add("placer: " + e);
            } finally {
                placerDone.set(true);
            }
        };
        Thread placer = Thread.ofPlatform().daemon().name("mig/dst/listen-test").start(placeAll);
        threads.add(placer);
        AtomicBoolean stop = new AtomicBoolean();
        Thread faulter = Thread.ofPlatform().daemon().name("mig/dst/fault-test").start(() -> {
            try {
                while (!stop.get()) {
                    PageFault f = backend.pollFault(20, TimeUnit.MILLISECONDS);
                    if (f != null) {
                        int p = (int) f.page();
                        boolean placed = zero[p] ? backend.placeZeroPage(stress, p) : backend.placePage(stress, p, sources[p]);
                        if (placed) {
                            placedByFault.incrementAndGet();
                        }
                    }
                }
            } catch (Throwable e) {
                failures.add("fault thread: " + e);
            }
        });
        threads.add(faulter);

        long[][] lastWritten = new long[guests][pages];
        CountDownLatch guestsDone = new CountDownLatch(guests);
        AtomicLong verifiedPages = new AtomicLong();
        for (int t = 0; t < guests; t++) {
            int me = t;
            SplittableRandom gr = new SplittableRandom(seed * 97 + t);
            Thread g = Thread.ofPlatform().daemon().name("CPU " + t + "/stress").start(() -> {
                try {
                    long counter = 0;
                    int ops = 0;
                    int hot = gr.nextInt(pages);
                    while ((ops < 400 || !placerDone.get()) && failures.isEmpty() && ops < 200_000) {
                        if (gr.nextInt(16) == 0) {
                            hot = gr.nextInt(pages);
                        }
                        int p = Math.floorMod(hot + gr.nextInt(5) - 2, pages);
                        long base = (long) p * PAGE;
                        if (gr.nextBoolean()) {
                            for (int i = 0; i < PAGE / 8; i++) {
                                long v = ram.readLong(stress, base + 8L * i);
                                if (i < patternLongs) {
                                    if (v != initial[p][i]) {
                                        failures.add(String.format("seed %d: CPU %d read page %d long %d = 0x%x, expected 0x%x",
                                                seed, me, p, i, v, initial[p][i]));
                                        return;
                                    }
                                } else {
                                    int owner = i - patternLongs;
                                    boolean ok;
                                    if (owner == me) {
                                        ok = v == (lastWritten[me][p] != 0 ? lastWritten[me][p] : initial[p][i]);
                                    } else {
                                        ok = v == initial[p][i] || (owner < guests && (v >>> 56) == owner + 1);
                                    }
                                    if (!ok) {
                                        failures.add(String.format("seed %d: CPU %d read page %d slot %d = 0x%x (initial 0x%x)",
                                                seed, me, p, owner, v, initial[p][i]));
                                        return;
                                    }
                                }
                            }
                            verifiedPages.incrementAndGet();
                        } else {
                            long slot = base + 8L * (patternLongs + me);
                            if (gr.nextBoolean()) { // read-modify-write; otherwise a blind write, first touch of a page
                                long v = ram.readLong(stress, slot);
                                long want = lastWritten[me][p] != 0 ? lastWritten[me][p] : initial[p][patternLongs + me];
                                if (v != want) {
                                    failures.add(String.format("seed %d: CPU %d slot of page %d = 0x%x, expected 0x%x "
                                            + "(lost write?)", seed, me, p, v, want));
                                    return;
                                }
                            }
                            long next = ((long) (me + 1) << 56) | ++counter;
                            ram.writeLong(stress, slot, next);
                            lastWritten[me][p] = next;
                        }
                        ops++;
                    }
                } catch (Throwable e) {
                    failures.add("seed " + seed + ": CPU " + me + ": " + e);
                } finally {
                    guestsDone.countDown();
                }
            });
            threads.add(g);
        }
        boolean finished = guestsDone.await(90, TimeUnit.SECONDS);
        stop.set(true);
        placer.join(TimeUnit.SECONDS.toMillis(30));
        faulter.join(TimeUnit.SECONDS.toMillis(30));
        assertThat(finished).as("seed %d: guests finished within 90 s", seed).isTrue();
        assertThat(failures).as("seed %d", seed).isEmpty();
        assertThat(backend.receivedMap(stress).isComplete()).as("seed %d", seed).isTrue();
        // Final contents: the pattern, and each slot the last value its owner wrote (or the initial one).
        for (int p = 0; p < pages; p++) {
            for (int i = 0; i < PAGE / 8; i++) {
                long v = stress.memory().getAtIndex(ValueLayout.JAVA_LONG, (long) p * PAGE / 8 + i);
                long want = initial[p][i];
                int owner = i - patternLongs;
                if (owner >= 0 && owner < guests && lastWritten[owner][p] != 0) {
                    want = lastWritten[owner][p];
                }
                assertThat(v).as("seed %d: page %d long %d", seed, p, i).isEqualTo(want);
            }
        }
        assertThat(verifiedPages.get()).as("seed %d", seed).isPositive();
        System.out.printf("%s stress seed %d: %d missing pages, %d placed by faults, %d placements refused as "
                + "already placed, %d whole pages verified%n", expectedName(), seed, missing.size(), placedByFault.get(),
                refusedTwice.get(), verifiedPages.get());
    }
}
