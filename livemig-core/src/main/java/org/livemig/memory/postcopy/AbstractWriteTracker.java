package org.livemig.memory.postcopy;

import java.io.IOException;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAdder;
import java.util.concurrent.locks.ReadWriteLock;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import org.livemig.memory.GuestAccessHook;
import org.livemig.memory.GuestRam;
import org.livemig.memory.RamBlock;

/**
 * What both write trackers share: the per-block saved map, the life cycle (made, prepared,
 * tracking, closed), the wait statistics and argument checks.
 *
 * <p>Ownership: {@link #regions} is read-only after construction; {@link #state} changes under
 * the write side of {@link #lifecycle}, and {@link #saved} holds its read side, so no release
 * runs across {@link #close}. The saved maps are atomic; the statistics are adders.
 */
abstract class AbstractWriteTracker implements WriteTracker, GuestAccessHook {
    enum State { NEW, PREPARED, TRACKING, CLOSED }

    /** One RAM block as the tracker sees it; read-only fields, an atomic map. */
    static final class Region {
        final RamBlock block;
        /** Pages saved since {@link #start} (a set bit: the page may be written). */
        final ReceivedMap saved;
        final long base;
        final long length;

        Region(RamBlock block) {
            this.block = block;
            this.saved = new ReceivedMap(block.pageCount());
            this.base = block.memory().address();
            this.length = block.usedLength();
        }
    }

    final GuestRam ram;
    final Map<RamBlock, Region> regions;
    final ReadWriteLock lifecycle = new ReentrantReadWriteLock();
    volatile State state = State.NEW;

    private final LongAdder waits = new LongAdder();
    private final LongAdder totalWait = new LongAdder();
    private final AtomicLong longestWait = new AtomicLong();
    /** Waits by length: bucket i counts waits of [2^i, 2^(i+1)) microseconds (bucket 0 also the shorter). */
    private final java.util.concurrent.atomic.AtomicLongArray waitBuckets = new java.util.concurrent.atomic.AtomicLongArray(32);

    AbstractWriteTracker(GuestRam ram) {
        this.ram = ram;
        Map<RamBlock, Region> m = new IdentityHashMap<>();
        for (RamBlock b : ram.blocks()) {
            m.put(b, new Region(b));
        }
        this.regions = Collections.unmodifiableMap(m);
    }

    Region region(RamBlock block) {
        Region r = regions.get(block);
        if (r == null) {
            throw new IllegalArgumentException("RAM block " + block + " is not known to this write tracker");
        }
        return r;
    }

    @Override
    public final void prepare() throws IOException {
        lifecycle.writeLock().lock();
        try {
            if (state != State.NEW) {
                throw new IllegalStateException("prepare in state " + state);
            }
            prepareBackend();
            state = State.PREPARED;
        } finally {
            lifecycle.writeLock().unlock();
        }
    }

    /** Backend part of {@link #prepare}, with the lifecycle lock held. */
    abstract void prepareBackend() throws IOException;

    @Override
    public final void start() throws IOException {
        lifecycle.writeLock().lock();
        try {
            if (state != State.PREPARED) {
                throw new IllegalStateException("start in state " + state);
            }
            startBackend();
            ram.setAccessHook(this);
            state = State.TRACKING;
        } finally {
            lifecycle.writeLock().unlock();
        }
    }

    /** Backend part of {@link #start}, with the lifecycle lock held: protect everything. */
    abstract void startBackend() throws IOException;

    @Override
    public final boolean isSaved(RamBlock block, long page) {
        return region(block).saved.isReceived(page);
    }

    /**
     * Called on guest threads before each access while tracking; reads pass, a write to an
     * unsaved page waits (in the backend's way) until it is saved.
     */
    @Override
    public final void beforeAccess(RamBlock block, long offset, boolean write) {
        if (!write) {
            return;
        }
        Region r = regions.get(block);
        long page = offset >>> RamBlock.PAGE_BITS;
        if (r == null || offset < 0 || page >= r.saved.pages() || r.saved.isReceived(page)) {
            return; // unknown block or offset: the access itself reports it
        }
        long t0 = System.nanoTime();
        awaitSaved(r, page, offset);
        long waited = System.nanoTime() - t0;
        waits.increment();
        totalWait.add(waited);
        longestWait.accumulateAndGet(waited, Math::max);
        long micros = waited / 1000;
        waitBuckets.incrementAndGet(Math.min(31, micros <= 1 ? 0 : 63 - Long.numberOfLeadingZeros(micros)));
    }

    @Override
    public final long[] waitHistogram() {
        long[] h = new long[waitBuckets.length()];
        for (int i = 0; i < h.length; i++) {
            h[i] = waitBuckets.get(i);
        }
        return h;
    }

    /** Blocks the calling guest thread until page {@code page} of {@code r} may be written (or tracking ends). */
    abstract void awaitSaved(Region r, long page, long offset);

    @Override
    public final void saved(RamBlock block, long first, long count) throws IOException {
        Region r = region(block);
        if (first < 0 || count < 0 || first > r.saved.pages() - count) {
            throw new IndexOutOfBoundsException("pages [" + first + ", +" + count + ") outside " + block);
        }
        if (count == 0) {
            return;
        }
        lifecycle.readLock().lock();
        try {
            if (state != State.TRACKING) {
                return; // closed: every page is writable already
            }
            release(r, first, count);
            r.saved.markReceived(first, count);
        } finally {
            lifecycle.readLock().unlock();
        }
    }

    /** Backend part of {@link #saved}, before the pages are marked saved: allow writes again. */
    abstract void release(Region r, long first, long count) throws IOException;

    @Override
    public final long waits() {
        return waits.sum();
    }

    @Override
    public final long longestWaitNanos() {
        return longestWait.get();
    }

    @Override
    public final long totalWaitNanos() {
        return totalWait.sum();
    }

    @Override
    public final void close() {
        if (state == State.CLOSED) {
            return;
        }
        ram.clearAccessHook(this);
        lifecycle.writeLock().lock();
        try {
            if (state == State.CLOSED) {
                return;
            }
            State was = state;
            state = State.CLOSED;
            ram.clearAccessHook(this);
            releaseAll(was);
        } finally {
            lifecycle.writeLock().unlock();
        }
        for (Region r : regions.values()) {
            r.saved.wakeAllWaiters();
        }
    }

    /** Backend part of {@link #close}, with the lifecycle lock held; {@code was} is the state before. */
    abstract void releaseAll(State was);

    @Override
    public String toString() {
        return name() + "[" + state + ", " + regions.size() + " blocks]";
    }
}
