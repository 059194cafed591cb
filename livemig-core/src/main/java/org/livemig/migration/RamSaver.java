package org.livemig.migration;

import java.io.IOException;
import java.util.BitSet;
import java.util.List;
import org.livemig.memory.GuestRam;
import org.livemig.memory.RamBlock;
import org.livemig.memory.ZeroPages;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.QemuStream;

/**
 * The source half of the "ram" section (QEMU's ram.c save side). Keeps its own bitmap of pages
 * still to send per block, filled from the blocks' dirty bitmaps at each sync.
 *
 * <p>Owned by the migration thread; {@link #pendingBytes} and the stats may be read anywhere.
 */
public final class RamSaver {
    /** Check the clock every this many pages in an iteration, as QEMU does. */
    private static final int PAGES_PER_CLOCK_CHECK = 64;
    /** Longest time one iteration may send before returning to the migration loop. */
    private static final long MAX_ITERATE_NANOS = 50_000_000L;

    private final GuestRam ram;
    private final List<RamBlock> blocks;
    private final BitSet[] toSend;
    private final RamStats stats;
    private volatile long pendingPages;
    /** Block of the last page record, for the CONTINUE flag; null at the start of a stream. */
    private RamBlock lastSentBlock;
    private int blockCursor;
    private int pageCursor;
    private boolean completing;

    public RamSaver(GuestRam ram, RamStats stats) {
        this.ram = ram;
        this.blocks = ram.blocks();
        this.toSend = new BitSet[blocks.size()];
        this.stats = stats;
        for (int i = 0; i < toSend.length; i++) {
            toSend[i] = new BitSet((int) blocks.get(i).pageCount());
        }
    }

    /** Turns dirty logging on and marks every page to be sent once. */
    public void startDirtyTracking() {
        for (RamBlock b : blocks) {
            b.dirtyBitmap().clearAll();
        }
        ram.setDirtyLogging(true);
        long pages = 0;
        for (int i = 0; i < blocks.size(); i++) {
            toSend[i].set(0, (int) blocks.get(i).pageCount());
            pages += blocks.get(i).pageCount();
        }
        pendingPages = pages;
        stats.totalBytes = ram.totalSize();
        stats.remainingBytes = pages * RamBlock.PAGE_SIZE;
    }

    public void stopDirtyTracking() {
        ram.setDirtyLogging(false);
    }

    /**
     * Moves pages dirtied since the last sync into the to-send bitmaps (migration_bitmap_sync).
     * Returns the number of pages newly dirtied. The architecture takes the BQL around it.
     */
    public long syncDirtyBitmap() {
        long newly = 0;
        for (int i = 0; i < blocks.size(); i++) {
            newly += blocks.get(i).dirtyBitmap().harvestInto(toSend[i]);
        }
        long pending = 0;
        for (BitSet b : toSend) {
            pending += b.cardinality();
        }
        pendingPages = pending;
        stats.remainingBytes = pending * RamBlock.PAGE_SIZE;
        stats.dirtySyncCount.incrementAndGet();
        return newly;
    }

    public long pendingBytes() {
        return pendingPages * RamBlock.PAGE_SIZE;
    }

    /** True when the current pass over the bitmaps reached the end (a pass is complete). */
    public boolean passComplete() {
        return pendingPages == 0;
    }

    public void saveSetup(MigrationFile f) throws IOException {
        f.putBe64(ram.totalSize() | QemuStream.RAM_FLAG_MEM_SIZE);
        for (RamBlock b : blocks) {
            f.putCountedString(b.name());
            f.putBe64(b.usedLength());
        }
        f.putBe64(QemuStream.RAM_FLAG_EOS);
    }

    public boolean saveIterate(MigrationFile f) throws IOException {
        long start = System.nanoTime();
        int sent = 0;
        while (!f.rateLimitExceeded()) {
            if (!sendNextDirtyPage(f)) {
                break;
            }
            if (++sent % PAGES_PER_CLOCK_CHECK == 0 && System.nanoTime() - start > MAX_ITERATE_NANOS) {
                break;
            }
        }
        f.putBe64(QemuStream.RAM_FLAG_EOS);
        return pendingPages == 0;
    }

    public void saveComplete(MigrationFile f) throws IOException {
        completing = true;
        syncDirtyBitmap();
        while (sendNextDirtyPage(f)) {
            // the guest is stopped: send everything left, without rate limit
        }
        f.putBe64(QemuStream.RAM_FLAG_EOS);
    }

    /** Sends the next page marked in the to-send bitmaps; false when none is left. */
    private boolean sendNextDirtyPage(MigrationFile f) throws IOException {
        for (int n = 0; n <= blocks.size(); n++) {
            BitSet bits = toSend[blockCursor];
            int page = bits.nextSetBit(pageCursor);
            if (page >= 0) {
                bits.clear(page);
                pageCursor = page + 1;
                pendingPages--;
                savePage(f, blocks.get(blockCursor), page);
                return true;
            }
            blockCursor = (blockCursor + 1) % blocks.size();
            pageCursor = 0;
        }
        return false;
    }

    private void savePage(MigrationFile f, RamBlock block, long page) throws IOException {
        var seg = block.page(page);
        long before = f.position();
        int cont = block == lastSentBlock ? QemuStream.RAM_FLAG_CONTINUE : 0;
        if (ZeroPages.isZero(seg)) {
            f.putBe64((page << RamBlock.PAGE_BITS) | QemuStream.RAM_FLAG_ZERO | cont);
            if (cont == 0) {
                f.putCountedString(block.name());
            }
            f.putByte(0);
            stats.zeroPages.incrementAndGet();
        } else {
            f.putBe64((page << RamBlock.PAGE_BITS) | QemuStream.RAM_FLAG_PAGE | cont);
            if (cont == 0) {
                f.putCountedString(block.name());
            }
            f.putSegment(seg);
            stats.normalPages.incrementAndGet();
        }
        lastSentBlock = block;
        long n = f.position() - before;
        (completing ? stats.downtimeBytes : stats.precopyBytes).addAndGet(n);
        stats.remainingBytes = pendingPages * RamBlock.PAGE_SIZE;
    }

}
