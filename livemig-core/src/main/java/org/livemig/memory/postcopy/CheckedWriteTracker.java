package org.livemig.memory.postcopy;

import java.util.Collection;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.livemig.memory.GuestRam;

/**
 * The portable write tracker: {@link GuestRam}'s guest accessors test the page's saved bit
 * before a write; an unsaved page is reported as a fault and the writing thread waits for the
 * bit. {@link #saved} sets the bit, which wakes it. The saving thread reads pages that no guest
 * thread can write meanwhile, so the copy it takes is the page as it was at {@link #start}.
 *
 * <p>Faults go through an unbounded queue: each waiting write adds one entry, so its length is
 * bounded by the guest threads times the pages they wait for in turn.
 */
final class CheckedWriteTracker extends AbstractWriteTracker {
    /** A waiting writer re-checks the life cycle this often (close also wakes it at once). */
    private static final long WAIT_SLICE_MILLIS = 100;

    private final LinkedBlockingQueue<PageFault> faults = new LinkedBlockingQueue<>();

    CheckedWriteTracker(GuestRam ram) {
        super(ram);
    }

    @Override
    public String name() {
        return "checked";
    }

    @Override
    void prepareBackend() {
        // Nothing to arm: the access hook installed at start does the checking.
    }

    @Override
    void startBackend() {
        // Every saved bit is clear from construction: every page is unsaved.
    }

    @Override
    void awaitSaved(Region r, long page, long offset) {
        faults.offer(new PageFault(r.block, page, true, System.nanoTime()));
        boolean interrupted = false;
        while (state == State.TRACKING && !r.saved.isReceived(page)) {
            try {
                r.saved.awaitReceived(page, WAIT_SLICE_MILLIS, TimeUnit.MILLISECONDS);
            } catch (InterruptedException e) {
                interrupted = true; // a vCPU waiting for its page cannot be interrupted out of it
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }

    @Override
    public PageFault pollFault(long timeout, TimeUnit unit) throws InterruptedException {
        if (state == State.CLOSED) {
            return null;
        }
        return faults.poll(timeout, unit);
    }

    @Override
    public int drainFaults(Collection<? super PageFault> sink, int max) {
        return faults.drainTo(sink, max);
    }

    @Override
    void release(Region r, long first, long count) {
        // The saved bits, set by the caller after this, are what the writers wait for.
    }

    @Override
    void releaseAll(State was) {
        faults.clear();
    }
}
