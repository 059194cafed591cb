package org.livemig.memory.postcopy;

import org.livemig.memory.GuestRam;
import org.livemig.memory.RamBlock;

import java.lang.foreign.MemorySegment;
import java.util.Collection;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;

/**
 * The portable postcopy backend: while listening, {@link GuestRam}'s guest accessors test the
 * page's {@link ReceivedMap} bit before each access; a missing page is reported as a fault and
 * the accessing thread waits for the bit. A placement claims the page, copies it whole with
 * plain stores (no guest thread can touch a page whose bit is clear), then sets the bit, which
 * publishes the contents to every accessor that sees it.
 *
 * <p>A fault is first offered to the handler set by {@link #handleFaultsOnGuestThreads}, which
 * asks for the page from the faulting thread itself; what it declines goes through an unbounded
 * queue to {@code mig/dst/fault}: each blocked access adds at most one entry, so the queue's
 * length is bounded by the number of guest threads times the pages they wait for in turn.
 */
final class CheckedPostcopy extends AbstractPostcopyBackend {
    /** A blocked accessor re-checks the life cycle this often (close also wakes it at once). */
    private static final long WAIT_SLICE_MILLIS = 100;

    private final LinkedBlockingQueue<PageFault> faults = new LinkedBlockingQueue<>();
    /** Set before listening; read once per fault. */
    private volatile Predicate<PageFault> onGuestThread;

    CheckedPostcopy(GuestRam ram) {
        super(ram);
    }

    @Override
    public String name() {
        return "checked";
    }

    @Override
    void dropPages(Region r, long offset, long length) {
        // The bits are clear: accessors will wait for the page and placement will overwrite it.
    }

    @Override
    public void handleFaultsOnGuestThreads(Predicate<PageFault> handler) {
        lifecycle.writeLock().lock();
        try {
            if (state != State.ADVISED) {
                throw new IllegalStateException("fault handler set in state " + state);
            }
            onGuestThread = handler;
        } finally {
            lifecycle.writeLock().unlock();
        }
    }

    @Override
    void listen() {
        // Nothing to arm: the access hook installed by the caller does the checking.
    }

    /** Called on vCPU threads by the guest accessors while listening; blocks until the page is placed. */
    @Override
    public void beforeAccess(RamBlock block, long offset, boolean write) {
        Region r = regions.get(block);
        long page = offset >>> RamBlock.PAGE_BITS;
        if (r == null || offset < 0 || page >= r.received.pages() || r.received.isReceived(page)) {
            return; // unknown block or offset: the access itself reports it
        }
        PageFault fault = new PageFault(block, page, write, System.nanoTime());
        Predicate<PageFault> handler = onGuestThread;
        if (handler == null || !handler.test(fault)) {
            faults.offer(fault);
        }
        boolean interrupted = false;
        while (state == State.LISTENING && !r.received.isReceived(page)) {
            try {
                r.received.awaitReceived(page, WAIT_SLICE_MILLIS, TimeUnit.MILLISECONDS);
            } catch (InterruptedException e) {
                interrupted = true; // a vCPU blocked on a page cannot be interrupted out of it
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }

    @Override
    boolean placeListening(Region r, long page, MemorySegment src) {
        return placeByCopy(r, page, src);
    }

    @Override
    PageFault nextFault(long timeoutNanos) throws InterruptedException {
        return faults.poll(timeoutNanos, TimeUnit.NANOSECONDS);
    }

    @Override
    public int drainFaults(Collection<? super PageFault> sink, int max) {
        return faults.drainTo(sink, max);
    }

    @Override
    void release(State was) {
        faults.clear();
    }
}
