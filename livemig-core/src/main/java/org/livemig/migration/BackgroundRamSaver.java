package org.livemig.migration;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.livemig.memory.RamBlock;
import org.livemig.memory.postcopy.PageFault;
import org.livemig.memory.postcopy.WriteTracker;
import org.livemig.stream.MigrationFile;

/**
 * background-snapshot's pass over RAM, for the {@link RamSaver}: every page is copied out of
 * guest RAM and released to the guest before any IO, so that a guest write waits for a copy of
 * its page, never for the file. Two threads share the work:
 * <ul>
 * <li>{@code mig/src/main} walks RAM in address order, a chunk of {@link #CHUNK_PAGES} at a
 *     time: claims the chunk's pages not yet claimed, copies them into its chunk buffer,
 *     releases them, and only then writes them (page records, or mapped-ram's places) from the
 *     copy. Pages that writes faulted on, copied by the other thread, go out between chunks.</li>
 * <li>{@code mig/src/bg_fault} (livemig's; QEMU's migration thread polls the userfaultfd
 *     between pages) takes the faults of guest writes as they come, claims each page, copies it
 *     into a page of its pool, releases it and hands the copy to {@code mig/src/main}.</li>
 * </ul>
 * A page is claimed once (its to-send bit, under the saver's claim lock), so exactly one thread
 * copies it; a page is released only by the thread that copied it, after the copy. A write to a
 * page the main thread has claimed waits for its chunk's copy (a memcpy); one to a page nobody has
 * claimed waits for the fault thread's copy. The pool grows while the main thread is behind (held
 * in a write), so the fault thread waits for a pool page only when it is {@link #MAX_POOL_PAGES}
 * faulted pages behind. The main thread claims a chunk's pages under one hold of the claim lock.
 */
final class BackgroundRamSaver implements AutoCloseable {
    static final String FAULT_THREAD = "mig/src/bg_fault";

    /** Pages copied and released together by the main thread: 2 MiB. */
    static final int CHUNK_PAGES = 512;
    /** Copies of faulted pages that may wait for the main thread: 16 MiB at first. */
    static final int POOL_PAGES = 4096;
    /**
     * The most the pool grows to (256 MiB, and at most a sixteenth of RAM) while mig/src/main is
     * held in a write (a disk's writeback throttles the writer for tens of ms): a faulting guest
     * write then waits for a memcpy, not for the file.
     */
    static final int MAX_POOL_PAGES = 65536;
    private static final long SLICE_NANOS = 10_000_000L;

    private record Copy(RamBlock block, long page, MemorySegment data) {}

    private final RamSaver saver;
    private final WriteTracker tracker;
    private final List<RamBlock> blocks;
    private final Arena arena = Arena.ofShared();
    /** mig/src/main's copy of the current chunk. */
    private final MemorySegment chunk;
    /** Pool pages free for the fault thread; returned by mig/src/main once their copy is out. */
    private final ArrayBlockingQueue<MemorySegment> free;
    /** Pool pages there are (the fault thread adds to them); at most {@link #maxPoolPages}. */
    private int poolPages;
    private final int maxPoolPages;
    /** The chunk's pages claimed by mig/src/main, and those of them to copy (not zero). */
    private final BitSet mine = new BitSet(CHUNK_PAGES);
    private final BitSet data = new BitSet(CHUNK_PAGES);
    /** Copies of faulted pages, from the fault thread to mig/src/main. */
    private final ConcurrentLinkedQueue<Copy> copies = new ConcurrentLinkedQueue<>();
    /** Pool pages whose copy went into the stream, returned after the next flush. Owned by mig/src/main. */
    private final List<MemorySegment> written = new ArrayList<>();
    private final AtomicReference<Throwable> faultFailure = new AtomicReference<>();
    private final long totalPages;
    private volatile boolean stopping;
    private Thread faultThread;
    /** Pages whose copy went out: owned by mig/src/main. */
    private long pagesOut;
    private int blockCursor;
    private long pageCursor;

    BackgroundRamSaver(RamSaver saver, WriteTracker tracker, List<RamBlock> blocks) {
        this.saver = saver;
        this.tracker = tracker;
        this.blocks = blocks;
        this.chunk = arena.allocate((long) CHUNK_PAGES * RamBlock.PAGE_SIZE, RamBlock.PAGE_SIZE);
        long pages = 0;
        for (RamBlock b : blocks) {
            pages += b.pageCount();
        }
        this.totalPages = pages;
        this.maxPoolPages = (int) Math.max(POOL_PAGES, Math.min(MAX_POOL_PAGES, pages / 16));
        this.free = new ArrayBlockingQueue<>(maxPoolPages);
        growPool();
    }

    /** Called once tracking has started: the fault thread takes guest writes' faults from now on. */
    void start() {
        faultThread = Thread.ofPlatform().name(FAULT_THREAD).daemon(true).start(this::faultLoop);
    }

    /** Every page's copy has gone out. */
    boolean done() {
        return pagesOut == totalPages;
    }

    /** Adds {@link #POOL_PAGES} pages to the pool, up to its most (the constructor, then only mig/src/bg_fault). */
    private void growPool() {
        int n = Math.min(POOL_PAGES, maxPoolPages - poolPages);
        MemorySegment slab = arena.allocate((long) n * RamBlock.PAGE_SIZE, RamBlock.PAGE_SIZE);
        for (int i = 0; i < n; i++) {
            free.add(slab.asSlice((long) i * RamBlock.PAGE_SIZE, RamBlock.PAGE_SIZE));
        }
        poolPages += n;
    }

    // ---------------------------------------------------------------- mig/src/bg_fault

    /** Called without the BQL: {@code mig/src/bg_fault}, until {@link #close}. */
    private void faultLoop() {
        List<PageFault> more = new ArrayList<>();
        try {
            while (!stopping) {
                PageFault pf = tracker.pollFault(SLICE_NANOS, TimeUnit.NANOSECONDS);
                if (pf == null) {
                    continue;
                }
                copyFaulted(pf);
                more.clear();
                tracker.drainFaults(more, 256);
                for (PageFault f : more) {
                    copyFaulted(f);
                }
            }
        } catch (InterruptedException e) {
            // closing
        } catch (IOException | RuntimeException | Error e) {
            faultFailure.compareAndSet(null, e);
        }
    }

    /** A guest write waits for this page: claim it, copy it, release it, hand the copy over. */
    private void copyFaulted(PageFault pf) throws IOException, InterruptedException {
        if (!saver.claimPage(pf.block(), pf.page())) {
            return; // mig/src/main has it (and releases it after its copy), or it is out already
        }
        if (saver.isZero(pf.block(), pf.page())) {
            // Claimed and not yet released, the page cannot change: a zero page needs no copy.
            tracker.saved(pf.block(), pf.page(), 1);
            copies.add(new Copy(pf.block(), pf.page(), null));
            return;
        }
        MemorySegment page = free.poll();
        if (page == null && poolPages < maxPoolPages) {
            growPool();
            page = free.poll();
        }
        while (page == null) {
            if (stopping) {
                return;
            }
            page = free.poll(SLICE_NANOS, TimeUnit.NANOSECONDS);
        }
        MemorySegment.copy(pf.block().memory(), pf.offset(), page, 0, RamBlock.PAGE_SIZE);
        tracker.saved(pf.block(), pf.page(), 1);
        copies.add(new Copy(pf.block(), pf.page(), page));
    }

    // ---------------------------------------------------------------- mig/src/main

    /**
     * Called on {@code mig/src/main}: a RAM section's body. Chunks in address order, with the
     * faulted pages' copies between them, until the rate limit is reached, about 50 ms have
     * passed or nothing is left; then EOS. Returns true when every page is out.
     */
    boolean saveIterate(MigrationFile f, long maxNanos) throws IOException {
        checkFault();
        long start = System.nanoTime();
        while (!f.rateLimitExceeded()) {
            writeCopies(f);
            if (!copyNextChunk(f)) {
                break;
            }
            if (System.nanoTime() - start > maxNanos) {
                break;
            }
        }
        writeCopies(f);
        return done();
    }

    /** Called on {@code mig/src/main}: whether faulted pages' copies wait to go out. */
    boolean hasCopies() {
        return !copies.isEmpty();
    }

    /** Writes the faulted pages' copies that came, then returns their pool pages once they are out. */
    void writeCopies(MigrationFile f) throws IOException {
        Copy c;
        while ((c = copies.poll()) != null) {
            saver.putCopy(f, c.block(), c.page(), c.data(), 0);
            if (c.data() != null) {
                written.add(c.data());
            }
            pagesOut++;
        }
        if (!written.isEmpty()) {
            saver.flushPages(f);
            free.addAll(written);
            written.clear();
        }
    }

    /** The next chunk holding pages still to claim: claimed, copied, released, then written out. */
    private boolean copyNextChunk(MigrationFile f) throws IOException {
        for (int n = 0; n <= blocks.size(); n++) {
            RamBlock b = blocks.get(blockCursor);
            long p = saver.nextToSend(blockCursor, pageCursor);
            if (p >= 0) {
                long chunkStart = p - p % CHUNK_PAGES;
                long chunkEnd = Math.min(chunkStart + CHUNK_PAGES, b.pageCount());
                // One claim for the chunk: the fault thread's claims wait for it once, not per page.
                saver.claimRange(blockCursor, chunkStart, chunkEnd, mine);
                data.clear();
                for (int i = mine.nextSetBit(0); i >= 0; i = mine.nextSetBit(i + 1)) {
                    if (!saver.isZero(b, chunkStart + i)) { // claimed, it cannot change: zero pages need no copy
                        data.set(i);
                    }
                }
                pageCursor = chunkEnd;
                // Copy, then release: the guest may write these pages again as soon as the copy is taken.
                for (int s = data.nextSetBit(0); s >= 0; ) {
                    int e = data.nextClearBit(s);
                    MemorySegment.copy(b.memory(), (chunkStart + s) << RamBlock.PAGE_BITS, chunk,
                            (long) s << RamBlock.PAGE_BITS, (long) (e - s) << RamBlock.PAGE_BITS);
                    s = data.nextSetBit(e);
                }
                for (int s = mine.nextSetBit(0); s >= 0; ) {
                    int e = mine.nextClearBit(s);
                    tracker.saved(b, chunkStart + s, e - s);
                    s = mine.nextSetBit(e);
                }
                for (int s = mine.nextSetBit(0); s >= 0; s = mine.nextSetBit(s + 1)) {
                    saver.putCopy(f, b, chunkStart + s, data.get(s) ? chunk : null, (long) s << RamBlock.PAGE_BITS);
                    pagesOut++;
                }
                saver.flushPages(f); // the chunk buffer is reused for the next chunk
                return true;
            }
            blockCursor = (blockCursor + 1) % blocks.size();
            pageCursor = 0;
        }
        return false;
    }

    private void checkFault() throws IOException {
        Throwable t = faultFailure.get();
        if (t != null) {
            throw new IOException(FAULT_THREAD + " failed: " + t.getMessage(), t);
        }
    }

    /** Stops the fault thread (before tracking ends). Any thread; waits up to a second for it. */
    @Override
    public void close() {
        if (stopping && faultThread == null) {
            return;
        }
        stopping = true;
        Thread t = faultThread;
        if (t != null && t != Thread.currentThread()) {
            try {
                t.join(1_000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        if (t == null || !t.isAlive()) {
            faultThread = null;
            try {
                arena.close();
            } catch (IllegalStateException e) {
                // closed already
            }
        }
    }
}
