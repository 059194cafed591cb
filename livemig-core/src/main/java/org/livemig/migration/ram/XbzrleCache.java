package org.livemig.migration.ram;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import org.livemig.memory.NativeMemory;
import org.livemig.memory.RamBlock;

/**
 * The source's XBZRLE cache, as QEMU's page_cache: a direct-mapped table of page copies indexed by
 * the page's address ({@code (address / page size) mod slots}), each entry stamped with the
 * dirty-sync count ("age") at which it was last used. A page may take a slot held by another page
 * only once that page has gone unused for two syncs, so a page the guest keeps writing keeps its
 * slot.
 *
 * <p>Owned by the migration thread. The copies live in an anonymous mapping, so a slot costs
 * memory only once used.
 */
final class XbzrleCache implements AutoCloseable {
    /** Syncs a slot stays its page's after its last use (QEMU's CACHED_PAGE_LIFETIME). */
    static final int CACHED_PAGE_LIFETIME = 2;
    private static final long EMPTY = -1;

    private final Arena arena = Arena.ofShared();
    private final MemorySegment data;
    private final long[] address;
    private final long[] age;
    private final long mask;

    /**
     * @param sizeBytes xbzrle-cache-size: a power of two of at least a page
     * @param ramSpan   the page addresses in use are below this: slots beyond it could never be
     *                  told apart, so the table is no larger (a cache bigger than RAM behaves the same)
     */
    XbzrleCache(long sizeBytes, long ramSpan) {
        if (sizeBytes < RamBlock.PAGE_SIZE || Long.bitCount(sizeBytes) != 1) {
            throw new IllegalArgumentException("xbzrle cache size must be a power of two of at least a page: " + sizeBytes);
        }
        long slots = sizeBytes / RamBlock.PAGE_SIZE;
        long pages = Math.max(1, (ramSpan + RamBlock.PAGE_SIZE - 1) / RamBlock.PAGE_SIZE);
        long needed = pages == 1 ? 1 : Long.highestOneBit(pages - 1) << 1; // the power of two at or above
        slots = Math.min(slots, needed);
        if (slots > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("xbzrle cache of " + slots + " pages is too large");
        }
        this.mask = slots - 1;
        this.address = new long[(int) slots];
        this.age = new long[(int) slots];
        Arrays.fill(address, EMPTY);
        this.data = NativeMemory.mapAnonymous(slots * RamBlock.PAGE_SIZE, false, arena);
    }

    /** Slots in the table. */
    int slots() {
        return address.length;
    }

    private int slot(long addr) {
        return (int) ((addr >>> RamBlock.PAGE_BITS) & mask);
    }

    /** True when the page at {@code addr} is cached; a hit makes the entry current ({@code currentAge}). */
    boolean isCached(long addr, long currentAge) {
        int s = slot(addr);
        if (address[s] == addr) {
            age[s] = currentAge;
            return true;
        }
        return false;
    }

    /** The cache memory of {@code addr}'s slot: {@link #dataOffset} bytes in. */
    MemorySegment data() {
        return data;
    }

    long dataOffset(long addr) {
        return (long) slot(addr) << RamBlock.PAGE_BITS;
    }

    /**
     * Copies the page at {@code offset} of {@code src} into the cache as {@code addr}'s. Refused
     * (false) when the slot holds another page used within the last {@link #CACHED_PAGE_LIFETIME} syncs.
     */
    boolean insert(long addr, MemorySegment src, long offset, long currentAge) {
        int s = slot(addr);
        if (address[s] != EMPTY && address[s] != addr && age[s] + CACHED_PAGE_LIFETIME > currentAge) {
            return false;
        }
        MemorySegment.copy(src, offset, data, (long) s << RamBlock.PAGE_BITS, RamBlock.PAGE_SIZE);
        address[s] = addr;
        age[s] = currentAge;
        return true;
    }

    /** As {@link #insert}, with a zero page. */
    boolean insertZero(long addr, long currentAge) {
        int s = slot(addr);
        if (address[s] != EMPTY && address[s] != addr && age[s] + CACHED_PAGE_LIFETIME > currentAge) {
            return false;
        }
        data.asSlice((long) s << RamBlock.PAGE_BITS, RamBlock.PAGE_SIZE).fill((byte) 0);
        address[s] = addr;
        age[s] = currentAge;
        return true;
    }

    @Override
    public void close() {
        arena.close();
    }
}
