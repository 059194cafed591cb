package org.livemig.memory.postcopy;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.ReentrantLock;
import org.livemig.memory.GuestRam;
import org.livemig.memory.Libc;
import org.livemig.memory.RamBlock;

/**
 * The userfaultfd write tracker (Linux, FFM), as QEMU's background snapshot does it: guest RAM
 * is registered with a userfaultfd in write-protect mode ({@link #prepare}, while the guest runs;
 * every page is first mapped for reading, so that a never-written page holds the shared zero
 * page and can be protected), and protected whole at {@link #start}. The kernel then blocks a
 * thread that writes a protected page and queues a fault event; {@link #saved} unprotects pages
 * with UFFDIO_WRITEPROTECT, which wakes the threads blocked on them.
 *
 * <p>The guest accessors (see {@link WriteTracker}) take the fault in a native store of the
 * byte at the written offset, the byte it holds now: the store completes once the page is
 * unprotected, and the guest's own store to that offset follows it, so whatever another thread
 * wrote there in between is overwritten by this thread's write, as if it had come first.
 */
final class UserfaultfdWriteTracker extends AbstractWriteTracker {
    private static final int MAX_EVENTS = 64;
    /** Longest single poll(2): bounds how long close() waits for the fault reader. */
    private static final int POLL_SLICE_MILLIS = 20;
    /** UFFD_FEATURE_WP_UNPOPULATED (Linux 6.4): protect pages not mapped yet as well. */
    private static final long FEATURE_WP_UNPOPULATED = 1L << 13;

    private final Userfaultfd uffd;
    /** Regions sorted by base address, to map a fault address to its block. Read-only. */
    private final RegionIndex<Region> index;
    /** The regions in address order. */
    private final List<Region> byAddress;
    /** Held by the one thread reading faults. */
    private final ReentrantLock faultReader = new ReentrantLock();
    /** Guarded by {@link #faultReader}. */
    private final ArrayDeque<PageFault> pending = new ArrayDeque<>();
    /** Guarded by {@link #faultReader}. */
    private final MemorySegment events = Arena.ofAuto().allocate(Userfaultfd.MSG.byteSize() * MAX_EVENTS, 8);
    /** Keeps population loads alive when the madvise fallback touches pages from Java. */
    @SuppressWarnings("unused")
    private volatile long touchSink;

    private static final class Holder {
        static final PostcopyBackend.Availability AVAILABILITY = Userfaultfd.probeWriteProtect();
    }

    /** Found once per JVM by trying write-protect mode on scratch pages. */
    static PostcopyBackend.Availability availability() {
        return Holder.AVAILABILITY;
    }

    UserfaultfdWriteTracker(GuestRam ram) throws IOException {
        super(ram);
        PostcopyBackend.Availability a = availability();
        if (!a.available()) {
            throw new IOException("userfaultfd write-protect unavailable: " + a.reason());
        }
        for (Region r : regions.values()) {
            if (r.base % RamBlock.PAGE_SIZE != 0) {
                throw new IOException("RAM block " + r.block + " is not page-aligned in memory");
            }
        }
        Userfaultfd u;
        try {
            u = Userfaultfd.open(Userfaultfd.FEATURE_PAGEFAULT_FLAG_WP | FEATURE_WP_UNPOPULATED);
        } catch (IOException e) {
            u = Userfaultfd.open(Userfaultfd.FEATURE_PAGEFAULT_FLAG_WP);
        }
        this.uffd = u;
        this.index = new RegionIndex<>(regions.values(), r -> r.base, r -> r.length);
        this.byAddress = index.all();
    }

    @Override
    public String name() {
        return "userfaultfd";
    }

    @Override
    void prepareBackend() throws IOException {
        List<Region> registered = new ArrayList<>();
        try {
            for (Region r : byAddress) {
                populate(r);
                uffd.registerWriteProtect(r.base, r.length);
                registered.add(r);
            }
        } catch (IOException | RuntimeException e) {
            for (Region r : registered) {
                uffd.unregister(r.base, r.length);
            }
            uffd.close();
            throw e;
        }
    }

    /** Maps every page of the block (a never-written one as the zero page), so that protecting it covers it. */
    private void populate(Region r) {
        if (r.block.allPagesMapped()) {
            return;
        }
        if (Libc.madvise(r.base, r.length, Libc.MADV_POPULATE_READ) == 0) {
            return;
        }
        long sum = 0; // kernels before 5.14: read a byte of each page
        for (long p = 0; p < r.block.pageCount(); p++) {
            sum += r.block.memory().get(ValueLayout.JAVA_BYTE, p << RamBlock.PAGE_BITS);
        }
        touchSink = sum;
    }

    @Override
    void startBackend() throws IOException {
        for (int i = 0; i < byAddress.size(); i++) {
            Region r = byAddress.get(i);
            int e = uffd.writeProtect(r.base, r.length, true);
            if (e != 0) {
                for (int j = 0; j < i; j++) {
                    uffd.writeProtect(byAddress.get(j).base, byAddress.get(j).length, false);
                }
                throw new IOException(String.format("UFFDIO_WRITEPROTECT of %s: %s", r.block, Libc.strerror(e)));
            }
        }
    }

    /** Called on guest threads: the native store blocks in the kernel until the page is unprotected. */
    @Override
    void awaitSaved(Region r, long page, long offset) {
        byte now = r.block.memory().get(ValueLayout.JAVA_BYTE, offset); // reading a protected page does not fault
        Libc.storeByte(r.base + offset, now);
    }

    @Override
    void release(Region r, long first, long count) throws IOException {
        int e = uffd.writeProtect(r.base + (first << RamBlock.PAGE_BITS), count << RamBlock.PAGE_BITS, false);
        if (e != 0) {
            throw new IOException(String.format("UFFDIO_WRITEPROTECT (unprotect) of pages [0x%x, +0x%x) of %s: %s",
                    first << RamBlock.PAGE_BITS, count << RamBlock.PAGE_BITS, r.block, Libc.strerror(e)));
        }
    }

    @Override
    public PageFault pollFault(long timeout, TimeUnit unit) throws InterruptedException, IOException {
        long deadline = System.nanoTime() + unit.toNanos(timeout);
        faultReader.lock();
        try {
            while (true) {
                if (state == State.CLOSED) {
                    pending.clear();
                    return null;
                }
                PageFault f = pending.poll();
                if (f != null) {
                    return f;
                }
                if (Thread.interrupted()) {
                    throw new InterruptedException();
                }
                long left = deadline - System.nanoTime();
                if (left <= 0 && timeout > 0) {
                    return null;
                }
                int slice = (int) Math.min(POLL_SLICE_MILLIS, Math.max(0, (left + 999_999) / 1_000_000));
                if (!readEvents(slice)) {
                    return null;
                }
                if (pending.isEmpty() && (timeout <= 0 || deadline - System.nanoTime() <= 0)) {
                    return null;
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
            if (state == State.CLOSED) {
                pending.clear();
                return 0;
            }
            if (pending.isEmpty()) {
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
            if (state != State.TRACKING) {
                return false;
            }
            int n = uffd.readEvents(events, waitMillis);
            long now = System.nanoTime();
            Userfaultfd.forEachPageFault(events, n, (address, write) -> {
                Region r = index.at(address);
                long pageStart = address & -RamBlock.PAGE_SIZE;
                if (r == null) {
                    uffd.writeProtect(pageStart, RamBlock.PAGE_SIZE, false);
                    return;
                }
                long page = (address - r.base) >>> RamBlock.PAGE_BITS;
                if (r.saved.isReceived(page)) {
                    // Saved between the fault and this read; unprotecting again wakes it for sure.
                    uffd.writeProtect(pageStart, RamBlock.PAGE_SIZE, false);
                    return;
                }
                pending.add(new PageFault(r.block, page, true, now));
            });
            return true;
        } finally {
            lifecycle.readLock().unlock();
        }
    }

    @Override
    void releaseAll(State was) {
        if (was == State.TRACKING || was == State.PREPARED) {
            for (Region r : byAddress) {
                uffd.writeProtect(r.base, r.length, false); // wakes every blocked writer
                uffd.unregister(r.base, r.length);
            }
        }
        uffd.close();
    }
}
