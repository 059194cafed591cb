package org.livemig.memory;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A machine's guest RAM: named {@link RamBlock}s, off-heap, with dirty logging. Reading or writing
 * guest RAM needs no lock. Dirty logging is switched on by the migration setup and off at its end;
 * while off, writes skip the bitmap entirely.
 *
 * <p>During postcopy on the destination a {@link org.livemig.memory.postcopy.PostcopyBackend} hooks the guest accessors
 * ({@link #readByte}, {@link #readLong}, {@link #writeByte}, {@link #writeLong}) so that an
 * access to a page not yet received waits for it. Code that reaches into
 * {@link RamBlock#memory()} directly bypasses that check and must not run on the destination
 * while postcopy listens.
 */
public final class GuestRam implements AutoCloseable {
    private final Arena arena = Arena.ofShared();
    private final Map<String, RamBlock> blocks = new LinkedHashMap<>();
    private volatile boolean dirtyLogging;
    /** True while guest RAM still holds the zeros it was mapped with (nothing has written it). */
    private volatile boolean pristine = true;
    /** Set by a postcopy backend while it listens; null otherwise (the common case). */
    private volatile GuestAccessHook accessHook;

    /** Adds a block; done while building the machine, before any other thread sees it. */
    public RamBlock addBlock(String name, long size, boolean prefault) {
        if (blocks.containsKey(name)) {
            throw new IllegalArgumentException("duplicate RAM block " + name);
        }
        RamBlock b = new RamBlock(name, size, prefault, arena);
        blocks.put(name, b);
        return b;
    }

    public List<RamBlock> blocks() {
        return Collections.unmodifiableList(new ArrayList<>(blocks.values()));
    }

    public RamBlock block(String name) {
        return blocks.get(name);
    }

    /** Sum of all blocks' sizes (the MEM_SIZE value of the RAM section). */
    public long totalSize() {
        long t = 0;
        for (RamBlock b : blocks.values()) {
            t += b.usedLength();
        }
        return t;
    }

    /**
     * True while no guest, fill or loader has written this RAM since it was mapped, so every page
     * reads as zero: an incoming migration can skip checking pages it has not written yet.
     */
    public boolean isPristine() {
        return pristine;
    }

    /**
     * Records that guest RAM may hold something other than zeros. Guest writes through this
     * class record it themselves; code that writes {@link RamBlock#memory()} directly (a fill, a
     * loader, a test) must call this.
     */
    public void markWritten() {
        pristine = false;
    }

    public boolean dirtyLogging() {
        return dirtyLogging;
    }

    public void setDirtyLogging(boolean on) {
        dirtyLogging = on;
    }

    /** Installs the postcopy access hook (the backend starts listening). */
    public void setAccessHook(GuestAccessHook hook) {
        accessHook = hook;
    }

    /** Removes {@code hook} if it is the one installed (the backend stops listening). */
    public void clearAccessHook(GuestAccessHook hook) {
        if (accessHook == hook) {
            accessHook = null;
        }
    }

    private void beforeAccess(RamBlock b, long offset, boolean write) {
        GuestAccessHook h = accessHook;
        if (h != null) {
            h.beforeAccess(b, offset, write);
        }
    }

    /**
     * After a guest store: RAM is no longer pristine, and the page is dirty when logging is on.
     * Both flags are volatile and written/read in opposite orders by the writer (pristine, then
     * logging) and by the migration setup (logging, then pristine), so a store that the setup
     * believed had not happened is always seen as dirty.
     */
    private void afterWrite(RamBlock b, long offset) {
        if (pristine) {
            pristine = false;
        }
        if (dirtyLogging) {
            b.markDirty(offset);
        }
    }

    /** Guest write of one byte: stores it, then marks the page dirty when logging is on. */
    public void writeByte(RamBlock b, long offset, byte value) {
        beforeAccess(b, offset, true);
        b.memory().set(ValueLayout.JAVA_BYTE, offset, value);
        afterWrite(b, offset);
    }

    /** Guest write of a little-endian long at an 8-byte-aligned offset. */
    public void writeLong(RamBlock b, long offset, long value) {
        beforeAccess(b, offset, true);
        b.memory().set(ValueLayout.JAVA_LONG, offset, value);
        afterWrite(b, offset);
    }

    public byte readByte(RamBlock b, long offset) {
        beforeAccess(b, offset, false);
        return b.memory().get(ValueLayout.JAVA_BYTE, offset);
    }

    /** Guest read of a little-endian long at an 8-byte-aligned offset. */
    public long readLong(RamBlock b, long offset) {
        beforeAccess(b, offset, false);
        return b.memory().get(ValueLayout.JAVA_LONG, offset);
    }

    /** Copies a page's contents into another segment (test and verification helper). */
    public static void copyPage(RamBlock b, long pageIndex, MemorySegment dst) {
        MemorySegment.copy(b.page(pageIndex), 0, dst, 0, RamBlock.PAGE_SIZE);
    }

    @Override
    public void close() {
        arena.close();
    }
}
