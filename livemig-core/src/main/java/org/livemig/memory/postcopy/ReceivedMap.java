package org.livemig.memory.postcopy;

import org.livemig.memory.RamBlock;

import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Which target pages of one {@link RamBlock} the destination holds (QEMU's {@code receivedmap}),
 * with threads able to wait for a page. Any thread may call any method.
 *
 * <p>Memory ordering: {@link #markReceived} is a release and {@link #isReceived} an acquire, so
 * a thread that sees a page received also sees every byte the placing thread wrote into it
 * before marking. A page is marked only after it was written whole; that is what lets the
 * {@code checked} postcopy backend admit a guest access as soon as it sees the bit.
 *
 * <p>Waiting: a waiter registers a latch for its page, then re-tests the bit; a marker sets the
 * bit, then looks for latches. Both steps are sequentially consistent, so either the waiter sees
 * the bit or the marker sees the waiter.
 */
public final class ReceivedMap {
    private final AtomicBitmap bits;
    private final ConcurrentHashMap<Long, CountDownLatch> waiters = new ConcurrentHashMap<>();
    /** Threads inside {@link #awaitReceived}; lets a marker skip the map when nobody waits. */
    private final AtomicInteger waiting = new AtomicInteger();

    public ReceivedMap(long pages) {
        this.bits = new AtomicBitmap(pages);
    }

    public long pages() {
        return bits.size();
    }

    public boolean isReceived(long page) {
        checkPage(page);
        return bits.get(page);
    }

    /**
     * Records that {@code page} now holds its migrated contents, written whole before this call,
     * and wakes its waiters. Returns true when the page was not received before.
     */
    public boolean markReceived(long page) {
        checkPage(page);
        boolean newly = bits.set(page);
        if (waiting.get() > 0) {
            CountDownLatch l = waiters.remove(page);
            if (l != null) {
                l.countDown();
            }
        }
        return newly;
    }

    /** Marks {@code count} pages from {@code first} received (e.g. a whole block loaded in precopy); wakes their waiters. */
    public long markReceived(long first, long count) {
        checkRange(first, count);
        long newly = bits.setRange(first, count);
        if (waiting.get() > 0) {
            for (Long p : waiters.keySet()) {
                if (p >= first && p < first + count) {
                    CountDownLatch l = waiters.remove(p);
                    if (l != null) {
                        l.countDown();
                    }
                }
            }
        }
        return newly;
    }

    /**
     * Forgets pages (a POSTCOPY_RAM_DISCARD): they must be received again. Only while no thread
     * can be reading or waiting for them, i.e. before the guest runs on the destination.
     * Returns how many were received.
     */
    public long clear(long first, long count) {
        checkRange(first, count);
        return bits.clearRange(first, count);
    }

    /**
     * Waits until {@code page} is received, at most {@code timeout}. Returns true when it is,
     * false on timeout or when {@link #wakeAllWaiters()} released the wait early.
     */
    public boolean awaitReceived(long page, long timeout, TimeUnit unit) throws InterruptedException {
        checkPage(page);
        if (bits.get(page)) {
            return true;
        }
        waiting.incrementAndGet();
        try {
            CountDownLatch l = waiters.computeIfAbsent(page, p -> new CountDownLatch(1));
            if (bits.get(page)) {
                waiters.remove(page, l);
                return true;
            }
            l.await(timeout, unit);
            return bits.get(page);
        } finally {
            waiting.decrementAndGet();
        }
    }

    /** Releases every waiter at once (the backend is closing); they see their page still missing. */
    public void wakeAllWaiters() {
        for (Long p : waiters.keySet()) {
            CountDownLatch l = waiters.remove(p);
            if (l != null) {
                l.countDown();
            }
        }
    }

    /** Threads waiting in {@link #awaitReceived} now (a diagnostic; may be stale at once). */
    public int waitingThreads() {
        return waiting.get();
    }

    /** First page at or after {@code from} that is not received, or -1 when there is none. */
    public long nextMissing(long from) {
        return bits.nextClear(from);
    }

    /** First page at or after {@code from} that is received, or -1. */
    public long nextReceived(long from) {
        return bits.nextSet(from);
    }

    public long receivedCount() {
        return bits.count();
    }

    public long missingCount() {
        return pages() - bits.count();
    }

    /** True when every page is received. */
    public boolean isComplete() {
        return bits.nextClear(0) < 0;
    }

    /**
     * A copy of the bitmap as 64-bit words, bit {@code i % 64} of word {@code i / 64} standing for
     * page {@code i}: the RECV_BITMAP a destination sends after postcopy recovery. Not atomic as
     * a whole: pages received meanwhile may or may not be in it.
     */
    public long[] toWords() {
        return bits.snapshot();
    }

    /** Bytes of a RECV_BITMAP for a block of {@code pages} pages: whole 64-bit words. */
    public static long bitmapBytes(long pages) {
        return ((pages + 63) >>> 6) * 8;
    }

    private void checkPage(long page) {
        if (page < 0 || page >= bits.size()) {
            throw new IndexOutOfBoundsException("page " + page + " outside 0.." + (bits.size() - 1));
        }
    }

    private void checkRange(long first, long count) {
        if (first < 0 || count < 0 || first > bits.size() - count) {
            throw new IndexOutOfBoundsException("pages [" + first + ", +" + count + ") outside 0.." + bits.size());
        }
    }
}
