package org.livemig.migration.colo;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.BitSet;
import java.util.IdentityHashMap;
import java.util.Map;
import org.livemig.memory.GuestRam;
import org.livemig.memory.NativeMemory;
import org.livemig.memory.RamBlock;
import org.livemig.migration.RamLoader;

/**
 * The secondary's RAM cache (QEMU's colo_cache): a copy of guest RAM as the primary had it at the
 * last checkpoint. A checkpoint's pages are written here while the secondary's guest goes on
 * running on its own RAM; only once the whole checkpoint has arrived, with the guest stopped, are
 * they copied into guest RAM ({@link #flush}), together with every page the secondary's guest
 * wrote since the last checkpoint (those must go back to the primary's content). A checkpoint that
 * never completes therefore never reaches the guest.
 *
 * <p>Threads: {@code mig/dst/colo} writes the cache and calls {@link #flush} with the BQL held
 * and the guest stopped; nothing else touches it. Memory is mapped and pre-faulted at once, as
 * guest RAM is, so that no first touch falls into a checkpoint.
 */
final class ColoCache implements RamLoader.PageRedirect, AutoCloseable {
    private final GuestRam ram;
    private final Arena arena = Arena.ofShared();
    private final Map<RamBlock, MemorySegment> copies = new IdentityHashMap<>();
    private final Map<RamBlock, BitSet> received = new IdentityHashMap<>();

    /** Maps and pre-faults a cache as large as {@code ram}. */
    ColoCache(GuestRam ram) {
        this.ram = ram;
        for (RamBlock b : ram.blocks()) {
            copies.put(b, NativeMemory.mapAnonymous(b.usedLength(), true, arena));
            received.put(b, new BitSet((int) b.pageCount()));
        }
    }

    /**
     * The cache starts as guest RAM is now: at the end of the initial migration, before the
     * secondary's guest first runs. Turns dirty logging on, so that {@link #flush} knows what the
     * guest writes from here on.
     */
    void fillFromRam() {
        for (RamBlock b : ram.blocks()) {
            MemorySegment.copy(b.memory(), 0, copies.get(b), 0, b.usedLength());
            b.dirtyBitmap().clearAll();
        }
        ram.setDirtyLogging(true);
    }

    @Override
    public MemorySegment memoryOf(RamBlock b) {
        return copies.get(b);
    }

    @Override
    public void received(RamBlock b, long first, long count) {
        received.get(b).set((int) first, (int) (first + count));
    }

    /**
     * Called with the BQL held, the guest stopped: copies into guest RAM every page a checkpoint
     * brought and every page the guest wrote since the last one, so that RAM equals the primary's
     * at this checkpoint. Returns how many pages were copied.
     */
    long flush() {
        long pages = 0;
        for (RamBlock b : ram.blocks()) {
            BitSet bits = received.get(b);
            b.dirtyBitmap().harvestInto(bits);
            MemorySegment from = copies.get(b);
            MemorySegment to = b.memory();
            for (int start = bits.nextSetBit(0); start >= 0; ) {
                int end = bits.nextClearBit(start);
                long off = (long) start << RamBlock.PAGE_BITS;
                MemorySegment.copy(from, off, to, off, (long) (end - start) << RamBlock.PAGE_BITS);
                pages += end - start;
                start = bits.nextSetBit(end);
            }
            bits.clear();
        }
        return pages;
    }

    @Override
    public void close() {
        arena.close();
    }
}
