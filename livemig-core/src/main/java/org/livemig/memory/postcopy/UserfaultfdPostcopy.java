package org.livemig.memory.postcopy;

import org.livemig.memory.GuestRam;
import org.livemig.memory.RamBlock;
import org.livemig.memory.Libc;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.Collection;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The userfaultfd postcopy backend (Linux, FFM): guest RAM is registered with a userfaultfd in
 * missing mode, the kernel blocks a thread that touches a missing page and queues a fault event,
 * and pages are placed with UFFDIO_COPY / UFFDIO_ZEROPAGE, which map a whole page atomically and
 * wake the threads waiting for it.
 *
 * <p><b>The JVM and kernel-blocked threads.</b> A Java thread blocked on a page fault while it
 * runs Java code cannot reach a safepoint, and every JVM safepoint (a GC, a deoptimisation)
 * waits for all Java threads: the whole JVM, including the threads that would place the page,
 * stops until the page arrives, which then never happens. (Tried on this machine: a thread
 * reading a missing page from Java and {@code System.gc()} on another hang the JVM for good.)
 * So a guest thread must only ever fault inside a native call: while listening, the
 * {@link GuestRam} accessors test the {@link ReceivedMap} and, for a page not received, first
 * read a byte of it through a native downcall ({@link Libc#touch}), which leaves the Java state;
 * the kernel blocks there until the page is placed, and the Java access that follows finds it
 * mapped. For that to hold, a received page must be mapped: {@link #startListening} maps every
 * received page (MADV_POPULATE_READ, so a zero page never written reads as the shared zero page)
 * and drops every missing one (MADV_DONTNEED), and afterwards only UFFDIO_COPY / ZEROPAGE map
 * pages, before their bits are set. Code that reads guest RAM directly through
 * {@link RamBlock#memory()} while listening risks the hang described above.
 *
 * <p>Likewise no system call may write a missing page while listening (a channel read straight
 * into guest RAM would block in the kernel): placement goes through {@link #placePage} only.
 */
final class UserfaultfdPostcopy extends AbstractPostcopyBackend {
    private static final int MAX_EVENTS = 64;
    /** Longest single poll(2): bounds how long close() waits for the fault reader. */
    private static final int POLL_SLICE_MILLIS = 20;
    private static final int MADV_POPULATE_READ = 22;

    private static final ThreadLocal<MemorySegment> STAGING = ThreadLocal.withInitial(
            () -> Arena.ofAuto().allocate(RamBlock.PAGE_SIZE, RamBlock.PAGE_SIZE));

    private final Userfaultfd uffd;
    /** Regions sorted by base address, to map a fault address to its block. Read-only. */
    private final RegionIndex<Region> index;
    /** The regions in address order. */
    private final List<Region> byAddress;
    /**
     * For each block whose every page was mapped when this backend was made, the pages this
     * backend has given back to the kernel since (see {@link #prepare}); other blocks are not in
     * it. Changed only under the lifecycle write lock, as discards and listen are.
     */
    private final Map<Region, BitSet> dropped = new IdentityHashMap<>();
    /** Held by the one thread reading faults. */
    private final ReentrantLock faultReader = new ReentrantLock();
    /** Guarded by {@link #faultReader}. */
    private final ArrayDeque<PageFault> pending = new ArrayDeque<>();
    /** Guarded by {@link #faultReader}. */
    private final MemorySegment events = Arena.ofAuto().allocate(Userfaultfd.MSG.byteSize() * MAX_EVENTS, 8);
    /** Keeps population loads alive when the madvise fallback touches pages from Java. */
    @SuppressWarnings("unused")
    private volatile long touchSink;

    UserfaultfdPostcopy(GuestRam ram) throws IOException {
        super(ram);
        Availability a = availability();
        if (!a.available()) {
            throw new IOException("userfaultfd unavailable: " + a.reason());
        }
        for (Region r : regions.values()) {
            if (r.base % RamBlock.PAGE_SIZE != 0) {
                throw new IOException("RAM block " + r.block + " is not page-aligned at 0x" + Long.toHexString(r.base));
            }
        }
        this.index = new RegionIndex<>(regions.values(), r -> r.base, r -> r.length);
        this.byAddress = index.all();
        for (Region r : byAddress) {
            // Small pages from here on (advise), before any discard, as QEMU does at advise: pages
            // are placed 4 KiB at a time, and khugepaged must not collapse a range with dropped
            // pages back into a huge page (it fills the holes with zeros, which would then never
            // fault). Pre-faulted RAM may hold huge pages already: dropping a page splits its one.
            // Best effort: THP may be off. Undone in release for blocks that had the advice.
            Libc.madvise(r.base, r.length, Libc.MADV_NOHUGEPAGE);
            if (r.block.allPagesMapped()) {
                dropped.put(r, new BitSet((int) r.block.pageCount()));
            }
        }
        this.uffd = Userfaultfd.open();
    }

    private static final class Holder {
        static final Availability AVAILABILITY = Userfaultfd.probe();
    }

    /** Found once per JVM by trying the whole mechanism on a scratch mapping. */
    static Availability availability() {
        return Holder.AVAILABILITY;
    }

    @Override
    public String name() {
        return "userfaultfd";
    }

    @Override
    void dropPages(Region r, long offset, long length) throws IOException {
        if (length <= 0) {
            return;
        }
        r.block.pagesUnmapped();
        if (Libc.madvise(r.base + offset, length, Libc.MADV_DONTNEED) != 0) {
            throw new IOException(String.format("madvise(DONTNEED) of [0x%x, +0x%x) in %s: %s", offset, length,
                    r.block, Libc.strerror(Libc.errno())));
        }
        BitSet d = dropped.get(r);
        if (d != null) {
            d.set((int) (offset >>> RamBlock.PAGE_BITS), (int) ((offset + length) >>> RamBlock.PAGE_BITS));
        }
    }

    @Override
    void listen() throws IOException {
        List<Region> registered = new ArrayList<>();
        try {
            for (Region r : byAddress) {
                prepare(r);
                uffd.registerMissing(r.base, r.length);
                registered.add(r);
            }
        } catch (IOException | RuntimeException e) {
            for (Region r : registered) {
                uffd.unregister(r.base, r.length);
            }
            throw e;
        }
    }

    /**
     * Maps every received page and drops every missing one, so that only missing pages fault.
     *
     * <p>On a block whose every page was mapped when this backend was made (pre-faulted RAM, the
     * usual destination) both halves shrink: a received page is mapped already (precopy wrote it
     * or left it as pre-faulted, and only this backend's discards drop pages, which also makes
     * them missing), and a missing page the discards dropped is unmapped already. What is left to
     * drop is the missing pages no discard covered (never sent). This is the guest-stopped part
     * of the switch: populating and dropping 256 MiB page by page took 6-9 ms of it here.
     */
    private void prepare(Region r) throws IOException {
        BitSet alreadyDropped = dropped.get(r);
        boolean mapped = alreadyDropped != null;
        long pages = r.received.pages();
        long p = 0;
        while (p < pages) {
            long missing = r.received.nextMissing(p);
            if (missing < 0) {
                missing = pages;
            }
            if (!mapped) {
                populate(r, p, missing - p);
            }
            if (missing == pages) {
                break;
            }
            long next = r.received.nextReceived(missing);
            if (next < 0) {
                next = pages;
            }
            dropMissing(r, missing, next, alreadyDropped);
            p = next;
        }
    }

    /** Drops pages [first, end), all missing, except those in {@code alreadyDropped} (null: none). */
    private void dropMissing(Region r, long first, long end, BitSet alreadyDropped) throws IOException {
        if (alreadyDropped == null) {
            dropPages(r, first << RamBlock.PAGE_BITS, (end - first) << RamBlock.PAGE_BITS);
            return;
        }
        int q = alreadyDropped.nextClearBit((int) first);
        while (q < end) {
            int stop = alreadyDropped.nextSetBit(q);
            if (stop < 0 || stop > end) {
                stop = (int) end;
            }
            dropPages(r, (long) q << RamBlock.PAGE_BITS, (long) (stop - q) << RamBlock.PAGE_BITS);
            q = alreadyDropped.nextClearBit(stop);
        }
    }

    private void populate(Region r, long first, long count) {
        if (count <= 0) {
            return;
        }
        long addr = r.base + (first << RamBlock.PAGE_BITS);
        if (Libc.madvise(addr, count << RamBlock.PAGE_BITS, MADV_POPULATE_READ) == 0) {
            return;
        }
        long sum = 0; // kernels before 5.14: read a byte of each page (not registered yet, so no fault to fear)
        for (long q = first; q < first + count; q++) {
            sum += r.block.memory().get(ValueLayout.JAVA_BYTE, q << RamBlock.PAGE_BITS);
        }
        touchSink = sum;
    }

    /** Called on vCPU threads by the guest accessors while listening; blocks (in native code) until placed. */
    @Override
    public void beforeAccess(RamBlock block, long offset, boolean write) {
        Region r = regions.get(block);
        long page = offset >>> RamBlock.PAGE_BITS;
        if (r == null || offset < 0 || page >= r.received.pages() || r.received.isReceived(page)) {
            return;
        }
        Libc.touch(r.base + offset);
    }

    @Override
    boolean placeListening(Region r, long page, MemorySegment src) throws IOException {
        long dst = r.base + (page << RamBlock.PAGE_BITS);
        int e;
        if (src == null) {
            e = uffd.zeropage(dst, RamBlock.PAGE_SIZE);
        } else {
            MemorySegment from = src;
            if (!src.isNative()) {
                from = STAGING.get();
                MemorySegment.copy(src, 0, from, 0, RamBlock.PAGE_SIZE);
            }
            e = uffd.copy(dst, from.address(), RamBlock.PAGE_SIZE);
        }
        if (e == 0) {
            r.claimed.set(page);
            markPlaced(r, page);
            return true;
        }
        if (e == Libc.EEXIST) {
            // Another placer mapped it (whole) first; make sure nobody sleeps on it, and record it.
            uffd.wake(dst, RamBlock.PAGE_SIZE);
            r.claimed.set(page);
            markPlaced(r, page);
            return false;
        }
        throw new IOException(String.format("%s of page 0x%x of %s: %s", src == null ? "UFFDIO_ZEROPAGE" : "UFFDIO_COPY",
                page << RamBlock.PAGE_BITS, r.block, Libc.strerror(e)));
    }

    @Override
    PageFault nextFault(long timeoutNanos) throws InterruptedException, IOException {
        faultReader.lock();
        try {
            PageFault f = pending.poll();
            if (f != null) {
                return f;
            }
            long deadline = System.nanoTime() + timeoutNanos;
            while (true) {
                if (Thread.interrupted()) {
                    throw new InterruptedException();
                }
                long left = deadline - System.nanoTime();
                int slice = (int) Math.min(POLL_SLICE_MILLIS, Math.max(0, (left + 999_999) / 1_000_000));
                if (!readEvents(slice)) {
                    return null;
                }
                f = pending.poll();
                if (f != null || deadline - System.nanoTime() <= 0) {
                    return f;
                }
            }
        } finally {
            faultReader.unlock();
        }
    }

    @Override
    public int drainFaults(Collection<? super PageFault> sink, int max) throws IOException {
        faultReader.lock();
        try {
            if (pending.isEmpty() && state != State.CLOSED) {
                readEvents(0);
            }
            int n = 0;
            while (n < max && !pending.isEmpty()) {
                sink.add(pending.poll());
                n++;
            }
            return n;
        } finally {
            faultReader.unlock();
        }
    }

    /** Reads pending events into {@link #pending}, waiting up to {@code waitMillis}; false once closed. */
    private boolean readEvents(int waitMillis) throws IOException {
        lifecycle.readLock().lock();
        try {
            if (state == State.CLOSED) {
                return false;
            }
            int n = uffd.readEvents(events, waitMillis);
            long now = System.nanoTime();
            Userfaultfd.forEachPageFault(events, n, (address, write) -> {
                Region r = index.at(address);
                if (r == null) {
                    uffd.wake(address & -RamBlock.PAGE_SIZE, RamBlock.PAGE_SIZE);
                    return;
                }
                long page = (address - r.base) >>> RamBlock.PAGE_BITS;
                if (r.received.isReceived(page)) {
                    // Placed between the fault and this read: the placement woke it; be sure.
                    uffd.wake(r.base + (page << RamBlock.PAGE_BITS), RamBlock.PAGE_SIZE);
                    return;
                }
                pending.add(new PageFault(r.block, page, write, now));
            });
            return true;
        } finally {
            lifecycle.readLock().unlock();
        }
    }

    @Override
    void release(State was) {
        if (was == State.LISTENING) {
            for (Region r : byAddress) {
                uffd.unregister(r.base, r.length); // wakes blocked threads; they fault again, normally
            }
        }
        for (Region r : byAddress) {
            if (r.block.hugePagesAdvised()) {
                // Back to huge pages, as QEMU does after postcopy: khugepaged may collapse ranges
                // again now that no page will be missing any more (best effort).
                Libc.madvise(r.base, r.length, Libc.MADV_HUGEPAGE);
            }
        }
        uffd.close();
    }
}
