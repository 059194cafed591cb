package org.livemig.memory.postcopy;

import org.livemig.memory.GuestRam;
import org.livemig.memory.RamBlock;
import org.livemig.memory.GuestAccessHook;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.ReadWriteLock;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * What both postcopy backends share: the per-block state, the life cycle (advised, listening,
 * closed) and argument checks.
 *
 * <p>Ownership: {@link #regions} is read-only after construction. {@link #state} changes only
 * under the write side of {@link #lifecycle}; placements and fault reads hold the read side, so
 * no placement runs across {@link #startListening} or {@link #close}.
 */
abstract class AbstractPostcopyBackend implements PostcopyBackend, GuestAccessHook {
    enum State { ADVISED, LISTENING, CLOSED }

    /** One RAM block as the backend sees it. Read-only fields; the bitmaps are atomic. */
    static final class Region {
        final RamBlock block;
        final ReceivedMap received;
        /** Pages a placer has claimed (set before copying, so only one thread copies a page). */
        final AtomicBitmap claimed;
        final long base;
        final long length;

        Region(RamBlock block) {
            this.block = block;
            this.received = new ReceivedMap(block.pageCount());
            this.claimed = new AtomicBitmap(block.pageCount());
            this.base = block.memory().address();
            this.length = block.usedLength();
        }
    }

    final GuestRam ram;
    final Map<RamBlock, Region> regions;
    final ReadWriteLock lifecycle = new ReentrantReadWriteLock();
    volatile State state = State.ADVISED;

    AbstractPostcopyBackend(GuestRam ram) {
        this.ram = ram;
        Map<RamBlock, Region> m = new IdentityHashMap<>();
        for (RamBlock b : ram.blocks()) {
            m.put(b, new Region(b));
        }
        this.regions = Collections.unmodifiableMap(m);
    }

    @Override
    public GuestRam ram() {
        return ram;
    }

    @Override
    public ReceivedMap receivedMap(RamBlock block) {
        return region(block).received;
    }

    @Override
    public boolean isListening() {
        return state == State.LISTENING;
    }

    @Override
    public boolean isClosed() {
        return state == State.CLOSED;
    }

    Region region(RamBlock block) {
        Region r = regions.get(block);
        if (r == null) {
            throw new IllegalArgumentException("RAM block " + block + " is not known to this postcopy backend");
        }
        return r;
    }

    static void checkPage(Region r, long page) {
        if (page < 0 || page >= r.received.pages()) {
            throw new IndexOutOfBoundsException("page " + page + " outside block " + r.block);
        }
    }

    @Override
    public final void discard(RamBlock block, long offset, long length) throws IOException {
        Region r = region(block);
        if ((offset | length) % RamBlock.PAGE_SIZE != 0 || offset < 0 || length < 0 || offset > r.length - length) {
            throw new IllegalArgumentException(String.format("discard [0x%x, +0x%x) is not whole pages inside %s",
                    offset, length, block));
        }
        lifecycle.writeLock().lock();
        try {
            if (state != State.ADVISED) {
                throw new IllegalStateException("discard after postcopy started listening (state " + state + ")");
            }
            long first = offset >>> RamBlock.PAGE_BITS;
            long count = length >>> RamBlock.PAGE_BITS;
            r.received.clear(first, count);
            r.claimed.clearRange(first, count);
            dropPages(r, offset, length);
        } finally {
            lifecycle.writeLock().unlock();
        }
    }

    /** Backend part of a discard (userfaultfd: give the memory back so that it faults). */
    abstract void dropPages(Region r, long offset, long length) throws IOException;

    @Override
    public final void startListening() throws IOException {
        lifecycle.writeLock().lock();
        try {
            if (state != State.ADVISED) {
                throw new IllegalStateException("startListening in state " + state);
            }
            listen();
            ram.setAccessHook(this);
            state = State.LISTENING;
        } finally {
            lifecycle.writeLock().unlock();
        }
    }

    /** Backend part of {@link #startListening}, with the lifecycle lock held. */
    abstract void listen() throws IOException;

    @Override
    public final boolean placePage(RamBlock block, long page, MemorySegment src) throws IOException {
        Region r = region(block);
        checkPage(r, page);
        if (src.byteSize() < RamBlock.PAGE_SIZE) {
            throw new IllegalArgumentException("source of " + src.byteSize() + " bytes is shorter than a page");
        }
        return place(r, page, src);
    }

    @Override
    public final boolean placeZeroPage(RamBlock block, long page) throws IOException {
        Region r = region(block);
        checkPage(r, page);
        return place(r, page, null);
    }

    private boolean place(Region r, long page, MemorySegment src) throws IOException {
        lifecycle.readLock().lock();
        try {
            if (state == State.CLOSED) {
                throw new IOException("postcopy backend " + name() + " is closed");
            }
            if (r.received.isReceived(page)) {
                return false;
            }
            if (state == State.ADVISED) {
                return placeByCopy(r, page, src);
            }
            return placeListening(r, page, src);
        } finally {
            lifecycle.readLock().unlock();
        }
    }

    /**
     * Places a page with plain stores, for a page nobody can access meanwhile: before listening,
     * or (checked backend) a missing page whose accessors wait for its bit. Claims the page first
     * so that two placers never both write it.
     */
    final boolean placeByCopy(Region r, long page, MemorySegment src) {
        if (!r.claimed.set(page)) {
            return false;
        }
        try {
            MemorySegment dst = r.block.page(page);
            if (src == null) {
                dst.fill((byte) 0);
            } else {
                MemorySegment.copy(src, 0, dst, 0, RamBlock.PAGE_SIZE);
            }
        } catch (RuntimeException | Error e) {
            r.claimed.clear(page);
            throw e;
        }
        markPlaced(r, page);
        return true;
    }

    /** Marks a placed page received (waking waiters) and the RAM as written. */
    final void markPlaced(Region r, long page) {
        r.received.markReceived(page);
        if (ram.isPristine()) {
            ram.markWritten();
        }
    }

    /** Backend placement while listening, with the read side of the lifecycle lock held. */
    abstract boolean placeListening(Region r, long page, MemorySegment src) throws IOException;

    @Override
    public final PageFault pollFault(long timeout, TimeUnit unit) throws InterruptedException, IOException {
        if (state == State.CLOSED) {
            return null;
        }
        return nextFault(unit.toNanos(timeout));
    }

    abstract PageFault nextFault(long timeoutNanos) throws InterruptedException, IOException;

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
            ram.clearAccessHook(this); // again: a startListening that raced this close may have set it
            release(was);
        } finally {
            lifecycle.writeLock().unlock();
        }
        for (Region r : regions.values()) {
            r.received.wakeAllWaiters();
        }
    }

    /** Backend part of {@link #close}, with the lifecycle lock held; {@code was} is the state before. */
    abstract void release(State was);

    @Override
    public String toString() {
        return name() + "[" + state + ", " + regions.size() + " blocks]";
    }
}
