package org.livemig.memory.postcopy;

import org.livemig.memory.GuestRam;
import org.livemig.memory.RamBlock;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

/**
 * Gets the postcopy backends' placement and fault paths compiled before a real postcopy needs
 * them, by driving both backends over a scratch block: pages placed in the background, a guest
 * thread faulting on pages ahead of them, its faults served first, some pages placed twice.
 *
 * <p>Why: a postcopy of 256 MiB places pages for a few hundred ms, and without this the JIT's C2
 * compiled the placement path during that time, on every backend and in every process
 * ({@code place} alone took 60-165 ms of C2 CPU per migration, measured with JFR), taking a core
 * from the threads a faulting vCPU waits for. The scratch migrations of the general warm-up are
 * too short to bring these methods to C2 (about 5,000 calls and 15,000 calls plus loop
 * iterations), and they use one backend, while a process may use either: both backends run here,
 * in alternate cycles, so the call sites they share see both from the start.
 */
public final class PlacementWarmUp {
    /** Placements per backend: past C2's thresholds with room to spare. */
    public static final int DEFAULT_PLACEMENTS = 16_384;
    /** Pages of the scratch block (4 MiB), placed once per cycle. */
    static final int BLOCK_PAGES = 1024;
    /** Every this many background pages, the faults waiting are served (as a preempt channel does). */
    private static final int SERVE_EVERY = 8;
    private static final long GUEST_JOIN_MILLIS = 10_000;
    private static final long FIRST_FAULT_MILLIS = 1_000;

    private PlacementWarmUp() {}

    /**
     * Loads every postcopy backend and write tracker class, without using any. Called before the
     * page paths are compiled: C2 code that inlined a call on the one subclass loaded so far is
     * thrown away when a second one is loaded (class hierarchy analysis), and a backend loaded
     * first by the placement warm-up, after the scratch migrations, took RamLoader's compiled
     * page path with it, to be compiled again during the real migration.
     */
    public static void loadBackendClasses() {
        for (Class<?> c : new Class<?>[] {CheckedPostcopy.class, UserfaultfdPostcopy.class, CheckedWriteTracker.class,
            UserfaultfdWriteTracker.class}) {
            c.getName(); // loading is enough: the hierarchy is what compiled code depends on
        }
    }

    /** What one backend went through: pages placed, placements refused (already there), faults served. */
    public record Result(String backend, long placed, long refused, long faults) {}

    /**
     * Runs about {@code placements} placements per backend (checked, and userfaultfd where the
     * kernel allows it), stopping early between cycles once {@code stop} says so.
     */
    public static List<Result> run(int placements, BooleanSupplier stop) throws IOException, InterruptedException {
        boolean userfaultfd = PostcopyBackend.userfaultfdAvailability().available();
        String[] kinds = userfaultfd ? new String[] {"checked", "userfaultfd"} : new String[] {"checked"};
        long[][] counts = new long[kinds.length][3];
        int cycles = Math.max(1, placements / BLOCK_PAGES);
        try (GuestRam ram = new GuestRam(); Arena arena = Arena.ofConfined()) {
            RamBlock block = ram.addBlock("warm-up.ram", (long) BLOCK_PAGES << RamBlock.PAGE_BITS, true);
            MemorySegment page = arena.allocate(RamBlock.PAGE_SIZE, RamBlock.PAGE_SIZE);
            for (int i = 0; i < RamBlock.PAGE_SIZE / 8; i++) {
                page.setAtIndex(ValueLayout.JAVA_LONG, i, 0x9E3779B97F4A7C15L * (i + 1));
            }
            for (int c = 0; c < cycles * kinds.length && !stop.getAsBoolean(); c++) {
                int k = c % kinds.length;
                try (PostcopyBackend backend = kinds[k].equals("checked")
                        ? PostcopyBackend.checked(ram) : PostcopyBackend.userfaultfd(ram)) {
                    cycle(ram, block, backend, page, counts[k]);
                }
            }
        }
        List<Result> out = new ArrayList<>();
        for (int k = 0; k < kinds.length; k++) {
            out.add(new Result(kinds[k], counts[k][0], counts[k][1], counts[k][2]));
        }
        return out;
    }

    /** One pass over the block: discard it, listen, place every page with a guest thread faulting ahead. */
    private static void cycle(GuestRam ram, RamBlock block, PostcopyBackend backend, MemorySegment page, long[] counts)
            throws IOException, InterruptedException {
        ConcurrentLinkedQueue<PageFault> asked = new ConcurrentLinkedQueue<>();
        backend.handleFaultsOnGuestThreads(asked::add);
        backend.discard(block, 0, block.usedLength());
        backend.startListening();
        // The guest reads every fourth page from the far end down, so that it faults on pages the
        // background has not reached; each fault is served, and the background meets it later.
        Thread guest = Thread.ofPlatform().name("livemig-warm-up-guest").daemon(true).start(() -> {
            for (long p = BLOCK_PAGES - 1; p >= 0 && !backend.isClosed(); p -= 4) {
                ram.readLong(block, p << RamBlock.PAGE_BITS);
            }
        });
        List<PageFault> faults = new ArrayList<>();
        // The guest's first fault is served before the background starts, so every cycle has one.
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(FIRST_FAULT_MILLIS);
        while (serve(backend, block, asked, faults, page, counts) == 0 && System.nanoTime() < deadline) {
            Thread.sleep(0, 50_000);
        }
        for (long p = 0; p < BLOCK_PAGES; p++) {
            if (p % SERVE_EVERY == 0) {
                serve(backend, block, asked, faults, page, counts);
            }
            place(backend, block, p, page, counts);
        }
        guest.join(GUEST_JOIN_MILLIS);
    }

    /** Places the pages of the faults waiting (the kernel's or the guest thread's); returns how many faults. */
    private static int serve(PostcopyBackend backend, RamBlock block, ConcurrentLinkedQueue<PageFault> asked,
                             List<PageFault> faults, MemorySegment page, long[] counts) throws IOException {
        faults.clear();
        backend.drainFaults(faults, 64);
        for (PageFault f; (f = asked.poll()) != null; ) {
            faults.add(f);
        }
        for (PageFault f : faults) {
            counts[2]++;
            place(backend, block, f.page(), page, counts);
        }
        return faults.size();
    }

    /** Every fifth page is a zero page, as in real RAM (ZERO records). */
    private static void place(PostcopyBackend backend, RamBlock block, long p, MemorySegment page, long[] counts)
            throws IOException {
        boolean placed = p % 5 == 0 ? backend.placeZeroPage(block, p) : backend.placePage(block, p, page);
        counts[placed ? 0 : 1]++;
    }
}
