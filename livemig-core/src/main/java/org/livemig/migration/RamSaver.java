package org.livemig.migration;

import java.io.IOException;
import java.util.BitSet;
import java.util.List;
import org.livemig.memory.GuestRam;
import org.livemig.memory.RamBlock;
import org.livemig.memory.ZeroPages;
import org.livemig.memory.postcopy.WriteTracker;
import org.livemig.migration.multifd.MultifdSender;
import org.livemig.migration.ram.MappedRamSaver;
import org.livemig.migration.ram.TargetPageSaver;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.RamPageRecord;

/**
 * The source half of the "ram" section (QEMU's ram.c save side). Keeps its own bitmap of pages
 * still to send per block, filled from the blocks' dirty bitmaps at each sync.
 *
 * <p>Owned by the migration thread; {@link #pendingBytes} and the stats may be read anywhere.
 * Once postcopy runs, {@code mig/src/rp_thr} also sends requested pages (postcopy-preempt):
 * from then on a page is claimed (its to-send bit cleared) under {@link #claimLock}, and
 * written after the lock is released, so that neither thread waits on the other's socket.
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
    /** RAM had never been written when tracking started: the first pass sends ZERO records without looking. */
    private boolean firstPassAllZero;
    private volatile boolean postcopy;
    /**
     * The counter page bytes go to in the current phase: precopy, downtime (completing), postcopy.
     * A field set when the phase changes, so that the per-page path does not branch on the phase
     * (such a branch, never taken while the path was first compiled, sends the compiled code
     * back to the interpreter when the phase comes; see RamLoader.load).
     */
    private volatile java.util.concurrent.atomic.AtomicLong phaseBytes;
    /** Guards the to-send bitmaps and {@link #pendingPages} once postcopy runs (two senders). */
    private final java.util.concurrent.locks.ReentrantLock claimLock = new java.util.concurrent.locks.ReentrantLock();
    /** multifd: non-zero pages go to these channels; the main channel keeps ZERO records and EOS. */
    private MultifdSender multifd;
    /** Writes the zero pages the multifd channels left out as ZERO records on the main channel. */
    private final MultifdSender.ZeroPageWriter multifdZeroPages = this::putMultifdZeroPage;
    /** xbzrle, compress, zero-page-detection none: what they do to a page comes first; null without them. */
    private TargetPageSaver pageSaver;
    /** mapped-ram: pages go to their places in the file, not into the stream; null without it. */
    private MappedRamSaver mappedRam;
    /**
     * background-snapshot: one pass, no dirty tracking; each page is copied out and released
     * before it goes out (see {@link BackgroundRamSaver}). Null otherwise.
     */
    private WriteTracker tracker;
    private BackgroundRamSaver background;

    public RamSaver(GuestRam ram, RamStats stats) {
        this.ram = ram;
        this.blocks = ram.blocks();
        this.toSend = new BitSet[blocks.size()];
        this.stats = stats;
        this.phaseBytes = stats.precopyBytes;
        for (int i = 0; i < toSend.length; i++) {
            toSend[i] = new BitSet((int) blocks.get(i).pageCount());
        }
    }

    /**
     * multifd (QEMU 7.2's layout): from now on each non-zero page goes to {@code sender}, and
     * every RAM section syncs the channels before its EOS. Set before {@link #saveSetup}.
     */
    public void useMultifd(MultifdSender sender) {
        this.multifd = sender;
    }

    /**
     * xbzrle, compress or zero-page-detection: pages go through {@code saver} before the plain
     * path (see {@link TargetPageSaver}). Set before {@link #startDirtyTracking}.
     */
    public void useTargetPageSaver(TargetPageSaver saver) {
        this.pageSaver = saver;
    }

    /**
     * mapped-ram (QEMU 9.0): the MEM_SIZE record carries each block's header, every page goes to
     * its place in the file through {@code saver}, and the stream holds no page. Set before
     * {@link #startDirtyTracking}, instead of multifd or a target page saver.
     */
    public void useMappedRam(MappedRamSaver saver) {
        this.mappedRam = saver;
    }

    /**
     * background-snapshot: RAM is saved in one pass as it was when {@code t} started, without
     * dirty tracking (see {@link #saveIterate}). Set before {@link #startDirtyTracking}.
     */
    public void useWriteTracker(WriteTracker t) {
        this.tracker = t;
        this.background = new BackgroundRamSaver(this, t, blocks);
    }

    /** background-snapshot: tracking has started; guest writes' faults are served from now on. */
    public void writeTrackingStarted() {
        background.start();
    }

    /** background-snapshot: stops serving guest writes' faults (before tracking ends). */
    public void stopWriteTracking() {
        BackgroundRamSaver b = background;
        if (b != null) {
            b.close();
        }
    }

    /** background-snapshot: copies of faulted pages wait to go out. */
    boolean hasFaultedCopies() {
        return background != null && background.hasCopies();
    }

    /**
     * background-snapshot, while the rate limit holds the pass back: a RAM section's body holding
     * the copies of the pages guest writes faulted on, then EOS.
     */
    void saveFaultedCopies(MigrationFile f) throws IOException {
        background.writeCopies(f);
        putEos(f);
    }

    /**
     * Claims page {@code page} of {@code b} for sending (any thread): true when it was still to
     * send, and now no other thread sends it.
     */
    boolean claimPage(RamBlock b, long page) {
        int i = blocks.indexOf(b);
        claimLock.lock();
        try {
            if (i < 0 || !toSend[i].get((int) page)) {
                return false;
            }
            toSend[i].clear((int) page);
            pendingPages--;
            return true;
        } finally {
            claimLock.unlock();
        }
    }

    /**
     * Claims every page of block {@code blockIndex} from {@code from} to {@code to - 1} still to
     * send, under one hold of the claim lock (background-snapshot's chunks): their bits relative
     * to {@code from} are set in {@code into} (cleared first). Returns how many.
     */
    int claimRange(int blockIndex, long from, long to, BitSet into) {
        into.clear();
        claimLock.lock();
        try {
            BitSet bits = toSend[blockIndex];
            int n = 0;
            for (int p = bits.nextSetBit((int) from); p >= 0 && p < to; p = bits.nextSetBit(p + 1)) {
                into.set(p - (int) from);
                n++;
            }
            bits.clear((int) from, (int) to);
            pendingPages -= n;
            return n;
        } finally {
            claimLock.unlock();
        }
    }

    /** The first page of block {@code blockIndex} from {@code from} still to send, or -1. */
    long nextToSend(int blockIndex, long from) {
        claimLock.lock();
        try {
            return toSend[blockIndex].nextSetBit((int) from);
        } finally {
            claimLock.unlock();
        }
    }

    /** Whether page {@code page} of {@code b} is to go as a zero page: it is zero and zero pages are detected. */
    boolean isZero(RamBlock b, long page) {
        return detectsZeroPages() && ZeroPages.isZeroPage(b.memory(), page << RamBlock.PAGE_BITS);
    }

    /**
     * Sends page {@code page} of {@code b} from a copy of it at {@code offset} of {@code copy},
     * or as a zero page when {@code copy} is null (background-snapshot): a ZERO or PAGE record,
     * or its place in a mapped-ram file.
     */
    void putCopy(MigrationFile f, RamBlock b, long page, java.lang.foreign.MemorySegment copy, long offset)
            throws IOException {
        long addr = page << RamBlock.PAGE_BITS;
        boolean zero = copy == null;
        if (mappedRam != null) {
            if (zero) {
                mappedRam.zeroPage(b, page);
            } else {
                mappedRam.writeCopy(b, page, copy, offset);
            }
        } else {
            long before = f.position();
            String name = b == lastSentBlock ? null : b.name();
            if (zero) {
                RamPageRecord.writeZero(f, addr, name, 0);
            } else {
                RamPageRecord.writePage(f, addr, name, copy, offset, RamBlock.PAGE_SIZE);
            }
            lastSentBlock = b;
            phaseBytes.addAndGet(f.position() - before);
        }
        if (zero) {
            stats.zeroPages.incrementAndGet();
        } else {
            stats.normalPages.incrementAndGet();
            if (mappedRam != null) {
                phaseBytes.addAndGet(RamBlock.PAGE_SIZE);
            }
        }
        stats.remainingBytes = pendingPages * RamBlock.PAGE_SIZE;
    }

    private boolean detectsZeroPages() {
        if (mappedRam != null) {
            return mappedRam.detectsZeroPages();
        }
        if (multifd != null) {
            return multifd.detectsZeroPages();
        }
        return pageSaver == null || pageSaver.detectsZeroPages();
    }

    /**
     * The end of a RAM section: multifd channels sync first, then EOS. With multifd the EOS is
     * flushed at once: the destination's channels wait at their SYNC until its main thread reads
     * this EOS, and the next section's pages cannot go out on them before then.
     */
    private void putEos(MigrationFile f) throws IOException {
        if (mappedRam != null) {
            // Every page is in the file before the bitmaps go at the very end; a section's end waits for nothing.
            if (completing) {
                mappedRam.writeBitmaps();
            } else {
                mappedRam.endSection();
            }
            RamPageRecord.writeEos(f);
        } else if (multifd != null) {
            multifd.sync();
            multifd.takeZeroPages(f, multifdZeroPages);
            RamPageRecord.writeEos(f);
            f.flush();
        } else {
            if (pageSaver != null) {
                pageSaver.flush(f);
            }
            RamPageRecord.writeEos(f);
        }
    }

    /** Turns dirty logging on and marks every page to be sent once. */
    public void startDirtyTracking() {
        for (RamBlock b : blocks) {
            b.dirtyBitmap().clearAll();
        }
        if (tracker == null) {
            ram.setDirtyLogging(true);
        }
        // Read after logging is on (see GuestRam.afterWrite): if RAM is still pristine now, every
        // page is zero at this point, and any page written later is dirty and goes again.
        firstPassAllZero = ram.isPristine() && detectsZeroPages() && tracker == null;
        long pages = 0;
        for (int i = 0; i < blocks.size(); i++) {
            toSend[i].set(0, (int) blocks.get(i).pageCount());
            pages += blocks.get(i).pageCount();
        }
        pendingPages = pages;
        stats.totalBytes = ram.totalSize();
        stats.remainingBytes = pages * RamBlock.PAGE_SIZE;
        // QEMU counts the sync that starts dirty logging (its setup) as the first: its
        // dirty-sync-count is 1 during the first pass and 2 at its end; so is livemig's.
        stats.dirtySyncCount.incrementAndGet();
    }

    public void stopDirtyTracking() {
        ram.setDirtyLogging(false);
    }

    /**
     * Moves pages dirtied since the last sync into the to-send bitmaps (migration_bitmap_sync).
     * Returns the number of pages newly dirtied. The architecture takes the BQL around it.
     */
    public long syncDirtyBitmap() {
        firstPassAllZero = false;
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
        if (pageSaver != null) {
            pageSaver.afterSync();
        }
        return newly;
    }

    public long pendingBytes() {
        return pendingPages * RamBlock.PAGE_SIZE;
    }

    /** True when the current pass over the bitmaps reached the end (a pass is complete). */
    public boolean passComplete() {
        if (background != null) {
            return background.done(); // every page's copy is out, the faulted ones' too
        }
        return pendingPages == 0;
    }

    public void saveSetup(MigrationFile f) throws IOException {
        if (mappedRam != null) {
            mappedRam.writeMemSize(f, ram.totalSize(), blocks);
            putEos(f);
            return;
        }
        List<RamPageRecord.BlockEntry> list = new java.util.ArrayList<>();
        for (RamBlock b : blocks) {
            list.add(new RamPageRecord.BlockEntry(b.name(), b.usedLength(), null, null));
        }
        RamPageRecord.writeMemSize(f, ram.totalSize(), list);
        putEos(f);
    }

    public boolean saveIterate(MigrationFile f) throws IOException {
        if (background != null) {
            boolean done = background.saveIterate(f, MAX_ITERATE_NANOS);
            putEos(f);
            return done;
        }
        long start = System.nanoTime();
        int sent = 0;
        while (!f.rateLimitExceeded()) {
            if (knownZero()) {
                // As many records as the rate window still allows (at least one).
                int max = (int) Math.max(1, Math.min(PAGES_PER_CLOCK_CHECK * 64, f.rateBudgetBytes() / RamPageRecord.ZERO_RECORD_BYTES));
                int n = sendKnownZeroRun(f, max);
                if (n > 0) {
                    sent += n;
                    if (System.nanoTime() - start > MAX_ITERATE_NANOS) {
                        break;
                    }
                    continue;
                }
            }
            if (!sendNextDirtyPage(f)) {
                break;
            }
            if (++sent % PAGES_PER_CLOCK_CHECK == 0 && System.nanoTime() - start > MAX_ITERATE_NANOS) {
                break;
            }
        }
        putEos(f);
        return pendingPages == 0;
    }

    public void saveComplete(MigrationFile f) throws IOException {
        completing = true;
        if (!postcopy) {
            phaseBytes = stats.downtimeBytes;
        }
        if (tracker == null) {
            syncDirtyBitmap(); // a background snapshot saves RAM as it was at its start: nothing dirtied counts
        }
        while (sendNextDirtyPage(f)) {
            // the guest is stopped: send everything left, without rate limit
        }
        putEos(f);
    }

    /** Everything sent so far has left guest RAM: written to the stream's channel and to mapped-ram's file. */
    void flushPages(MigrationFile f) throws IOException {
        f.flush();
        if (mappedRam != null) {
            mappedRam.flush();
        }
    }

    /** From now on pages go out as postcopy pages (statistics). */
    public void enterPostcopy() {
        postcopy = true;
        phaseBytes = stats.postcopyBytes;
    }

    /**
     * True while the first pass over RAM that was never written runs: each of its pages is zero
     * or has been dirtied since (and is sent again after the next sync, which ends this).
     */
    private boolean knownZero() {
        return firstPassAllZero && !completing && !postcopy;
    }

    /** The largest RECV_BITMAP any block of this RAM may answer with, in bytes. */
    public long maxBitmapBytes() {
        long max = 8;
        for (RamBlock b : blocks) {
            max = Math.max(max, org.livemig.memory.postcopy.ReceivedMap.bitmapBytes(b.pageCount()));
        }
        return max;
    }

    /**
     * The next record on the main channel names its block: a section that starts so stands on
     * its own, and postcopy may send a requested page's section ahead of it.
     */
    public void nameNextBlock() {
        lastSentBlock = null;
    }

    /**
     * Postcopy recovery, before the first page on the new channel: the next record names its
     * block (the destination's last block belongs to the lost channel), and the background
     * pass starts over from the first page still to send.
     */
    public void prepareResume() {
        lastSentBlock = null;
        blockCursor = 0;
        pageCursor = 0;
    }

    /**
     * Postcopy recovery: the destination holds exactly the pages set in {@code receivedWords}
     * (its RECV_BITMAP, bit i = page i); every other page of {@code b} is sent again, whether it
     * was never sent or was lost with the broken channel.
     *
     * @throws IOException when the bitmap does not have the block's size
     */
    public void reloadFromReceived(RamBlock b, long[] receivedWords) throws IOException {
        long want = org.livemig.memory.postcopy.ReceivedMap.bitmapBytes(b.pageCount()) / 8;
        if (receivedWords.length != want) {
            throw new IOException(String.format("RECV_BITMAP of block '%s' has %d words, expected %d for %d pages",
                    b.name(), receivedWords.length, want, b.pageCount()));
        }
        claimLock.lock();
        try {
            BitSet bits = toSend[blocks.indexOf(b)];
            bits.clear();
            bits.set(0, (int) b.pageCount());
            bits.andNot(BitSet.valueOf(receivedWords));
            long pending = 0;
            for (BitSet t : toSend) {
                pending += t.cardinality();
            }
            pendingPages = pending;
            stats.remainingBytes = pending * RamBlock.PAGE_SIZE;
        } finally {
            claimLock.unlock();
        }
    }

    /** The block of this name, or null. */
    public RamBlock block(String name) {
        for (RamBlock b : blocks) {
            if (b.name().equals(name)) {
                return b;
            }
        }
        return null;
    }

    /**
     * Runs of pages not yet sent in {@code b}, as {start page, page count} pairs: what the
     * destination must discard at the postcopy switch (its copies are stale or absent).
     */
    public java.util.List<long[]> unsentRuns(RamBlock b) {
        BitSet bits = toSend[blocks.indexOf(b)];
        java.util.List<long[]> runs = new java.util.ArrayList<>();
        for (int start = bits.nextSetBit(0); start >= 0; ) {
            int end = bits.nextClearBit(start);
            runs.add(new long[] {start, end - start});
            start = bits.nextSetBit(end);
        }
        return runs;
    }

    /**
     * Postcopy: sends a page the destination asked for, unless it was sent since the switch
     * (then it is already on its way). Returns whether it was sent now.
     */
    public boolean sendRequestedPage(MigrationFile f, RamBlock b, long page) throws IOException {
        return sendRequestedPage(f, b, page, true);
    }

    /**
     * As above; {@code mainChannel} false writes to a channel of its own (postcopy-preempt),
     * where each record names its block (no CONTINUE) and the main channel's block is left alone.
     */
    public boolean sendRequestedPage(MigrationFile f, RamBlock b, long page, boolean mainChannel) throws IOException {
        BitSet bits = toSend[blocks.indexOf(b)];
        if (page < 0 || page >= b.pageCount()) {
            return false;
        }
        claimLock.lock();
        try {
            if (!bits.get((int) page)) {
                return false;
            }
            bits.clear((int) page);
            pendingPages--;
        } finally {
            claimLock.unlock();
        }
        if (mainChannel) {
            savePage(f, b, page);
        } else {
            savePageOnOwnChannel(f, b, page);
        }
        return true;
    }

    /**
     * postcopy-preempt: sends a page that already went out on the main channel once more, on
     * {@code f}. The destination asked for it, so it does not have it yet: it is still behind
     * the main channel's backlog (socket buffers hold megabytes). The guest is stopped here, so
     * both copies are the same; the destination places whichever comes first and drops the other.
     */
    public void resendPage(MigrationFile f, RamBlock b, long page) throws IOException {
        if (page >= 0 && page < b.pageCount()) {
            savePageOnOwnChannel(f, b, page);
        }
    }

    /** Sends up to {@code max} pages still to send, in address order; returns how many. */
    public int sendBackgroundPages(MigrationFile f, int max) throws IOException {
        int n = 0;
        while (n < max && sendNextDirtyPage(f)) {
            n++;
        }
        return n;
    }

    /**
     * The first pass over never-written RAM: sends up to {@code max} consecutive to-send pages of
     * the current block as ZERO records in one go, without looking at them (see
     * {@link #knownZero}). Returns how many; 0 when the next page is not in a run that can go
     * this way (another block's first record needs its name: the page-by-page path sends it).
     */
    private int sendKnownZeroRun(MigrationFile f, int max) throws IOException {
        RamBlock block = blocks.get(blockCursor);
        if (block != lastSentBlock && mappedRam == null) {
            return 0;
        }
        BitSet bits = toSend[blockCursor];
        int first = bits.nextSetBit(pageCursor);
        if (first < 0) {
            return 0;
        }
        int end = Math.min(bits.nextClearBit(first), first + max);
        int n = end - first;
        if (mappedRam == null) {
            RamPageRecord.writeZeroRun(f, (long) first << RamBlock.PAGE_BITS, RamBlock.PAGE_SIZE, n);
            stats.precopyBytes.addAndGet((long) RamPageRecord.ZERO_RECORD_BYTES * n);
        } // mapped-ram: a page never written is a clear bit already
        bits.clear(first, end);
        pageCursor = end;
        pendingPages -= n;
        stats.zeroPages.addAndGet(n);
        stats.remainingBytes = pendingPages * RamBlock.PAGE_SIZE;
        return n;
    }

    /** Sends the next page marked in the to-send bitmaps; false when none is left. */
    private boolean sendNextDirtyPage(MigrationFile f) throws IOException {
        boolean locked = postcopy;
        if (locked) {
            claimLock.lock();
        }
        int block = -1;
        int page = -1;
        try {
            for (int n = 0; n <= blocks.size(); n++) {
                BitSet bits = toSend[blockCursor];
                int p = bits.nextSetBit(pageCursor);
                if (p >= 0) {
                    bits.clear(p);
                    pageCursor = p + 1;
                    pendingPages--;
                    block = blockCursor;
                    page = p;
                    break;
                }
                blockCursor = (blockCursor + 1) % blocks.size();
                pageCursor = 0;
            }
        } finally {
            if (locked) {
                claimLock.unlock();
            }
        }
        if (page < 0) {
            return false;
        }
        savePage(f, blocks.get(block), page);
        return true;
    }

    /** Sends a page on the main channel: a CONTINUE record when the one before was of the same block. */
    private void savePage(MigrationFile f, RamBlock block, long page) throws IOException {
        if (putPageRecord(f, block, page, block == lastSentBlock)) {
            lastSentBlock = block;
        }
    }

    /** Sends a page on a channel of its own (postcopy-preempt): the record names its block. */
    private void savePageOnOwnChannel(MigrationFile f, RamBlock block, long page) throws IOException {
        putPageRecord(f, block, page, false);
    }

    /**
     * One page's record: ZERO when the page is all zero, else PAGE with its 4 KiB. A page that is
     * zero here only because {@link #knownZero} says so gets the same record ({@link #saveIterate}
     * sends those in runs without looking; this path sees only a run's first page). With
     * multifd a non-zero page goes to a channel instead. Returns whether a record went on {@code f}.
     */
    private boolean putPageRecord(MigrationFile f, RamBlock block, long page, boolean cont) throws IOException {
        long offset = page << RamBlock.PAGE_BITS;
        long before = f.position();
        if (mappedRam != null) {
            if (mappedRam.detectsZeroPages() && ZeroPages.isZeroPage(block.memory(), offset)) {
                mappedRam.zeroPage(block, page);
                stats.zeroPages.incrementAndGet();
            } else {
                mappedRam.writePage(block, page);
                stats.normalPages.incrementAndGet();
                phaseBytes.addAndGet(RamBlock.PAGE_SIZE);
            }
            stats.remainingBytes = pendingPages * RamBlock.PAGE_SIZE;
            return false; // nothing in the stream
        }
        if (multifd != null) {
            // Zero pages are found on the channel threads and come back as ZERO records.
            multifd.queuePage(block, offset);
            stats.normalPages.incrementAndGet();
            phaseBytes.addAndGet(RamBlock.PAGE_SIZE);
            stats.remainingBytes = pendingPages * RamBlock.PAGE_SIZE;
            multifd.takeZeroPages(f, multifdZeroPages);
            return false;
        }
        if (pageSaver != null && !postcopy) {
            int r = pageSaver.save(f, block, offset, cont, stats.dirtySyncCount.get(), completing);
            if (r != TargetPageSaver.NOT_HANDLED) {
                phaseBytes.addAndGet(f.position() - before);
                stats.remainingBytes = pendingPages * RamBlock.PAGE_SIZE;
                return r == TargetPageSaver.RECORD;
            }
        }
        boolean zero = detectsZeroPages() && ZeroPages.isZeroPage(block.memory(), offset);
        String name = cont ? null : block.name();
        if (zero) {
            RamPageRecord.writeZero(f, offset, name, 0);
            stats.zeroPages.incrementAndGet();
        } else {
            RamPageRecord.writePage(f, offset, name, block.memory(), offset, RamBlock.PAGE_SIZE);
            stats.normalPages.incrementAndGet();
        }
        phaseBytes.addAndGet(f.position() - before);
        stats.remainingBytes = pendingPages * RamBlock.PAGE_SIZE;
        return true;
    }

    /**
     * A zero page a multifd channel left out of its packet (counted as normal when queued): a
     * ZERO record on the main channel, before the section's EOS.
     */
    private void putMultifdZeroPage(MigrationFile f, RamBlock block, long offset) throws IOException {
        long before = f.position();
        boolean cont = block == lastSentBlock;
        RamPageRecord.writeZero(f, offset, cont ? null : block.name(), 0);
        lastSentBlock = block;
        stats.normalPages.decrementAndGet();
        stats.zeroPages.incrementAndGet();
        phaseBytes.addAndGet(f.position() - before - RamBlock.PAGE_SIZE);
    }

}
