package org.livemig.memory;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Objects;

/**
 * One named region of guest RAM ("pc.ram"), off-heap, in 4 KiB target pages, with its own dirty
 * bitmap. The segment is shared: vCPUs write it, migration threads read or fill it, without the
 * BQL. Read-only after construction except for the memory itself.
 */
public final class RamBlock {
    /** The guest page: QEMU's x86 target page, as {@code stream.QemuStream.TARGET_PAGE_SIZE} (a test pins them equal). */
    public static final int PAGE_BITS = 12;
    public static final int PAGE_SIZE = 1 << PAGE_BITS;

    private final String name;
    private final long usedLength;
    private final MemorySegment memory;
    private final DirtyBitmap dirty;
    /** Every page has been mapped since creation (pre-faulted, and none dropped since). */
    private volatile boolean allPagesMapped;
    /** The mapping was advised for transparent huge pages when it was made. */
    private final boolean hugePagesAdvised;

    RamBlock(String name, long usedLength, boolean prefault, Arena arena) {
        this.name = Objects.requireNonNull(name);
        if (name.isEmpty() || name.getBytes(java.nio.charset.StandardCharsets.UTF_8).length > 255) {
            throw new IllegalArgumentException("RAM block name must be 1..255 bytes: '" + name + "'");
        }
        if (usedLength <= 0 || (usedLength & (PAGE_SIZE - 1)) != 0) {
            throw new IllegalArgumentException("RAM block size must be a positive multiple of "
                    + PAGE_SIZE + ": " + usedLength);
        }
        this.usedLength = usedLength;
        this.memory = NativeMemory.mapAnonymous(usedLength, prefault, arena);
        this.dirty = new DirtyBitmap(usedLength >>> PAGE_BITS);
        this.allPagesMapped = prefault;
        this.hugePagesAdvised = NativeMemory.advisesHugePages(prefault);
    }

    /** Whether the block's mapping was advised for transparent huge pages when it was made. */
    public boolean hugePagesAdvised() {
        return hugePagesAdvised;
    }

    /**
     * True while every page of the block is mapped: it was pre-faulted and no page has been given
     * back to the kernel since. A page that is mapped does not fault as missing under userfaultfd.
     */
    public boolean allPagesMapped() {
        return allPagesMapped;
    }

    /** Some pages were given back to the kernel (a postcopy discard): they are no longer mapped. */
    public void pagesUnmapped() {
        allPagesMapped = false;
    }

    public String name() {
        return name;
    }

    /** Size in bytes (QEMU's used_length). */
    public long usedLength() {
        return usedLength;
    }

    public long pageCount() {
        return usedLength >>> PAGE_BITS;
    }

    /** The whole block. Writers must call {@link #markDirty} after writing through it. */
    public MemorySegment memory() {
        return memory;
    }

    /** A view of one page. */
    public MemorySegment page(long pageIndex) {
        return memory.asSlice(pageIndex << PAGE_BITS, PAGE_SIZE);
    }

    public DirtyBitmap dirtyBitmap() {
        return dirty;
    }

    /** Records that the page holding {@code offset} was written. */
    public void markDirty(long offset) {
        dirty.mark(offset >>> PAGE_BITS);
    }

    @Override
    public String toString() {
        return name + "[" + usedLength + " bytes]";
    }
}
