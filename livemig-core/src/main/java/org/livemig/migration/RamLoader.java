package org.livemig.migration;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import org.livemig.memory.GuestRam;
import org.livemig.memory.RamBlock;
import org.livemig.memory.ZeroPages;
import org.livemig.memory.postcopy.PostcopyBackend;
import org.livemig.migration.multifd.MultifdReceiver;
import org.livemig.migration.ram.EncodedPageLoader;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.QemuStream;
import org.livemig.stream.RamPageRecord;
import org.livemig.stream.SectionHeader;
import org.livemig.stream.StreamFormatException;

/**
 * The destination half of the "ram" section (QEMU's ram_load). Pages go straight from the stream
 * into guest RAM, without the BQL. Every header field is checked before RAM is touched: block
 * names, block sizes, page offsets, flags.
 *
 * <p>Owned by the thread that loads the stream ({@code mig/dst/main}, or {@code main} for a snapshot).
 */
public final class RamLoader {
    private static final int KNOWN_FLAGS = RamPageRecord.FLAG_ZERO | RamPageRecord.FLAG_MEM_SIZE
            | RamPageRecord.FLAG_PAGE | RamPageRecord.FLAG_EOS | RamPageRecord.FLAG_CONTINUE
            | RamPageRecord.FLAG_XBZRLE | RamPageRecord.FLAG_COMPRESS_PAGE;

    /** The record being loaded: the codec frames it, this class decides what it means. */
    private final RamPageRecord record = new RamPageRecord(RamBlock.PAGE_SIZE);

    private final GuestRam ram;
    private final RamStats stats;
    /** Block of the previous page record, for CONTINUE; carried across sections. */
    private RamBlock lastBlock;
    /**
     * Pages this load has written, per block, while the RAM was pristine when the load began; a
     * ZERO record for any other page needs neither a check nor a write. Null when RAM was not
     * pristine (every ZERO record then checks the page, as QEMU's buffer_is_zero does).
     */
    private java.util.Map<RamBlock, java.util.BitSet> written;
    /** COLO checkpoints: pages go to the secondary's cache instead of guest RAM; null otherwise. */
    private PageRedirect redirect;
    /** multifd: the channels that carry the non-zero pages; each EOS waits for their SYNC. */
    private MultifdReceiver multifd;
    /** XBZRLE and COMPRESS_PAGE payloads (see EncodedPageLoader); made on first use without one given. */
    private EncodedPageLoader encodedPages;
    /** mapped-ram: each block's pages are read from their places in the file after its entry; null otherwise. */
    private org.livemig.migration.ram.MappedRamLoader mappedRam;

    /** Postcopy: the backend that tracks received pages; null outside postcopy. */
    private volatile PostcopyBackend postcopy;
    /** Postcopy after LISTEN: pages are placed through the backend, never written in place. */
    private volatile boolean placing;
    /** Staging page for placement (the listen thread owns it). */
    private MemorySegment staging;

    public RamLoader(GuestRam ram, RamStats stats) {
        this.ram = ram;
        this.stats = stats;
        if (ram.isPristine()) {
            written = new java.util.IdentityHashMap<>();
            for (RamBlock b : ram.blocks()) {
                written.put(b, new java.util.BitSet((int) b.pageCount()));
            }
        } else {
            written = null;
        }
        ram.markWritten();
    }

    /**
     * multifd: every RAM section's EOS waits until {@code receiver}'s channels have placed the
     * pages sent before it. The channels write pages this loader does not see, so a ZERO record
     * always checks its page (the pristine-RAM shortcut is off). Set before loading.
     */
    public void useMultifd(MultifdReceiver receiver) {
        this.multifd = receiver;
        this.written = null;
    }

    /**
     * Where a COLO secondary's checkpoint pages go instead of guest RAM: its RAM cache, which is
     * flushed into the guest only once a whole checkpoint has arrived.
     */
    public interface PageRedirect {
        /** The memory that stands for block {@code b}'s (same size and layout). */
        MemorySegment memoryOf(RamBlock b);

        /** Pages {@code first} to {@code first + count - 1} of {@code b} were written there. */
        void received(RamBlock b, long first, long count);
    }

    /**
     * From now on pages go to {@code r} (null: to guest RAM again). Set by the thread that loads,
     * between sections; the pristine-RAM shortcut for zero pages is off from then on.
     */
    public void redirectTo(PageRedirect r) {
        this.redirect = r;
        this.written = null;
    }

    /**
     * XBZRLE and compressed pages go through {@code pages} (the compress capability's decompress
     * threads); without it, XBZRLE is taken and compressed pages refused. Set before loading.
     */
    public void useEncodedPages(EncodedPageLoader pages) {
        this.encodedPages = pages;
    }

    private EncodedPageLoader encodedPages() {
        if (encodedPages == null) {
            encodedPages = new EncodedPageLoader();
        }
        return encodedPages;
    }

    /**
     * mapped-ram (QEMU 9.0): after each block entry of the MEM_SIZE record come its header and,
     * in the file, its pages, which {@code loader} reads. Set before loading.
     */
    public void useMappedRam(org.livemig.migration.ram.MappedRamLoader loader) {
        this.mappedRam = loader;
    }

    /** POSTCOPY_ADVISE: from now on every page loaded is recorded as received. */
    public void advise(PostcopyBackend backend) {
        this.postcopy = backend;
    }

    /** POSTCOPY_LISTEN: from now on pages are placed whole through the backend. */
    public void startPlacing() {
        staging = java.lang.foreign.Arena.ofAuto().allocate(RamBlock.PAGE_SIZE, RamBlock.PAGE_SIZE);
        placing = true;
    }

    /** Postcopy recovery: the new channel's first record names its block (no CONTINUE). */
    public void resetContinuation() {
        lastBlock = null;
    }

    /** Loads one START/PART/END body up to its EOS record. */
    public void load(MigrationFile f, int versionId) throws IOException {
        if (versionId != QemuStream.RAM_SECTION_VERSION) {
            throw new StreamFormatException("unsupported ram section version " + versionId
                    + " (expected " + QemuStream.RAM_SECTION_VERSION + ")", f.position());
        }
        // The loop stays this small on purpose: the per-record work is in methods called once
        // per page, which a start-up warm-up brings to full (C2) compilation by their call
        // counts. A section holds thousands of pages, so this loop itself is only ever compiled
        // on-stack once a real migration runs; kept tiny, that compilation costs little and,
        // the callees being compiled already, does not redo them (on a 2-core machine a
        // compiler thread busy with a large loop takes a CPU from the migration).
        while (loadRecord(f)) {
            stats.transferred.set(f.position());
        }
    }

    /** Loads one record; false when it was the section's EOS. */
    private boolean loadRecord(MigrationFile f) throws IOException {
        RamPageRecord r = record;
        r.readHeader(f);
        int flags = r.flags();
        if ((flags & ~KNOWN_FLAGS) != 0) {
            throw new StreamFormatException(String.format(
                    "unsupported RAM record flags 0x%03x (header 0x%016x)", flags, r.header()), r.at());
        }
        switch (r.kind()) {
            case EOS -> {
                if (multifd != null) {
                    multifd.syncMain();
                }
                if (encodedPages != null) {
                    encodedPages.awaitPages(); // the section's compressed pages are in RAM
                }
                return false;
            }
            case PAGE -> loadPage(f, block(f), r.address(), r.at());
            case ZERO -> loadZeroPage(f, block(f), r.address(), r.at());
            case MEM_SIZE -> loadBlockList(f, r.address(), r.at());
            case XBZRLE -> loadXbzrlePage(f, block(f), r.address(), r.at());
            case COMPRESS_PAGE -> loadCompressedPage(f, block(f), r.address(), r.at());
            default -> throw new StreamFormatException(String.format(
                    "invalid RAM record flags 0x%03x", flags), r.at());
        }
        return true;
    }

    /** A PAGE record's 4 KiB of content: into guest RAM, or placed whole once listening. */
    private void loadPage(MigrationFile f, RamBlock b, long addr, long recordAt) throws IOException {
        checkPage(b, addr, recordAt);
        PageRedirect r = redirect;
        if (r != null) {
            record.readPage(f, r.memoryOf(b), addr);
            r.received(b, addr >>> RamBlock.PAGE_BITS, 1);
            stats.normalPages.incrementAndGet();
            return;
        }
        if (placing) {
            record.readPage(f, staging, 0);
            postcopy.placePage(b, addr >>> RamBlock.PAGE_BITS, staging);
            placed(b, addr);
        } else {
            if (written != null) {
                written.get(b).set((int) (addr >>> RamBlock.PAGE_BITS));
            }
            record.readPage(f, b.memory(), addr);
            received(b, addr);
        }
        stats.normalPages.incrementAndGet();
    }

    /** An XBZRLE record: its delta applied to the page in place (never in postcopy, as in QEMU). */
    private void loadXbzrlePage(MigrationFile f, RamBlock b, long addr, long recordAt) throws IOException {
        checkPage(b, addr, recordAt);
        if (placing) {
            throw new StreamFormatException(String.format(
                    "XBZRLE record for page 0x%x of block '%s' while postcopy places pages", addr, b.name()), recordAt);
        }
        PageRedirect r = redirect;
        if (r != null) {
            encodedPages().loadXbzrle(f, r.memoryOf(b), b, addr, recordAt);
            r.received(b, addr >>> RamBlock.PAGE_BITS, 1);
            return;
        }
        encodedPages().loadXbzrle(f, b.memory(), b, addr, recordAt);
        if (written != null) {
            written.get(b).set((int) (addr >>> RamBlock.PAGE_BITS));
        }
        received(b, addr);
    }

    /** A COMPRESS_PAGE record: inflated by a decompress thread, or here when placed whole in postcopy. */
    private void loadCompressedPage(MigrationFile f, RamBlock b, long addr, long recordAt) throws IOException {
        checkPage(b, addr, recordAt);
        PageRedirect r = redirect;
        if (r != null) {
            encodedPages().loadCompressedInto(f, r.memoryOf(b).asSlice(addr, RamBlock.PAGE_SIZE), b, addr, recordAt);
            r.received(b, addr >>> RamBlock.PAGE_BITS, 1);
        } else if (placing) {
            encodedPages().loadCompressedInto(f, staging, b, addr, recordAt);
            postcopy.placePage(b, addr >>> RamBlock.PAGE_BITS, staging);
            placed(b, addr);
        } else {
            encodedPages().loadCompressed(f, b, addr, recordAt);
            if (written != null) {
                written.get(b).set((int) (addr >>> RamBlock.PAGE_BITS));
            }
            received(b, addr);
        }
        stats.normalPages.incrementAndGet();
    }

    /** A ZERO record (a page all one byte value, zero in practice), and the zero run after it. */
    private void loadZeroPage(MigrationFile f, RamBlock b, long addr, long recordAt) throws IOException {
        checkPage(b, addr, recordAt);
        int fill = record.readFill(f);
        long index = addr >>> RamBlock.PAGE_BITS;
        stats.zeroPages.incrementAndGet();
        PageRedirect r = redirect;
        if (r != null) {
            loadRedirectedZeroPages(f, r, b, index, fill);
            return;
        }
        if (placing) {
            if (fill == 0) {
                postcopy.placeZeroPage(b, index);
            } else {
                staging.fill((byte) fill);
                postcopy.placePage(b, index, staging);
            }
            placed(b, addr);
            return;
        }
        if (fill != 0) {
            if (written != null) {
                written.get(b).set((int) index);
            }
            b.page(index).fill((byte) fill);
            received(b, addr);
            return;
        }
        zeroPage(b, index);
        received(b, addr);
        loadZeroRun(f, b, index);
    }

    /** A ZERO record for the COLO cache, and the zero run after it: the cache's pages are filled. */
    private void loadRedirectedZeroPages(MigrationFile f, PageRedirect r, RamBlock b, long index, int fill)
            throws IOException {
        MemorySegment mem = r.memoryOf(b);
        mem.asSlice(index << RamBlock.PAGE_BITS, RamBlock.PAGE_SIZE).fill((byte) fill);
        long n = 0;
        if (fill == 0) {
            int room = (int) Math.min(Integer.MAX_VALUE, b.pageCount() - index - 1);
            n = room <= 0 ? 0 : record.takeZeroRun(f, room);
            if (n > 0) {
                mem.asSlice((index + 1) << RamBlock.PAGE_BITS, n << RamBlock.PAGE_BITS).fill((byte) 0);
                stats.zeroPages.addAndGet(n);
            }
        }
        r.received(b, index, 1 + n);
    }

    /** Makes page {@code index} of {@code b} zero, writing it only when it may not be. */
    private void zeroPage(RamBlock b, long index) {
        boolean knownZero = written != null && !written.get(b).get((int) index);
        if (!knownZero && !ZeroPages.isZeroPage(b.memory(), index << RamBlock.PAGE_BITS)) {
            b.page(index).fill((byte) 0);
        }
    }

    /**
     * After a zero record for page {@code index}: the zero records for the pages that follow it
     * in the same block that are already buffered, in one go ({@link RamPageRecord#takeZeroRun}
     * checks each continues the block with the next page and fill 0). A first pass over
     * never-written RAM is a quarter of a million of them a GiB (see RamSaver).
     */
    private void loadZeroRun(MigrationFile f, RamBlock b, long index) throws IOException {
        int room = (int) Math.min(Integer.MAX_VALUE, b.pageCount() - index - 1);
        if (room <= 0) {
            return;
        }
        int n = record.takeZeroRun(f, room);
        if (n == 0) {
            return;
        }
        long first = index + 1;
        for (long i = first; i < first + n; i++) {
            zeroPage(b, i);
        }
        PostcopyBackend p = postcopy;
        if (p != null) {
            p.receivedMap(b).markReceived(first, n);
        }
        stats.zeroPages.addAndGet(n);
    }

    /** Told of every page placed in postcopy (latency of requested pages). */
    public interface PlacementListener {
        void placed(RamBlock block, long page);
    }

    private volatile PlacementListener placementListener;

    public void setPlacementListener(PlacementListener l) {
        placementListener = l;
    }

    /** Pages placed between two yields of the CPU, 0 for never; see {@link #giveWayEvery}. */
    private int giveWayEvery;
    private int placedSinceGiveWay;

    /**
     * While placing, yield the CPU after every {@code pages} pages placed (0: never), so that a
     * thread loading a stream at full speed lets the page-request threads run. See
     * {@link org.livemig.migration.postcopy.PostcopyIncoming#LISTEN_GIVE_WAY_PAGES}.
     */
    public void giveWayEvery(int pages) {
        giveWayEvery = pages;
    }

    private void placed(RamBlock b, long addr) {
        if (giveWayEvery > 0 && ++placedSinceGiveWay >= giveWayEvery) {
            placedSinceGiveWay = 0;
            Thread.yield();
        }
        PlacementListener l = placementListener;
        if (l != null) {
            l.placed(b, addr >>> RamBlock.PAGE_BITS);
        }
    }

    private void received(RamBlock b, long addr) {
        PostcopyBackend p = postcopy;
        if (p != null) {
            p.receivedMap(b).markReceived(addr >>> RamBlock.PAGE_BITS);
        }
    }

    private void loadBlockList(MigrationFile f, long total, long at) throws IOException {
        long seen = 0;
        while (seen < total) {
            long entryAt = f.position();
            RamPageRecord.BlockEntry e = RamPageRecord.readBlockEntry(f, null, false);
            String name = e.name();
            long length = e.usedLength();
            RamBlock b = ram.block(name);
            if (b == null) {
                throw new StreamFormatException("unknown RAM block '" + name + "' in the stream's block list", entryAt);
            }
            if (length != b.usedLength()) {
                throw new StreamFormatException(String.format(
                        "RAM block '%s' has size 0x%x in the stream but 0x%x here", name, length, b.usedLength()), entryAt);
            }
            if (mappedRam != null) {
                mappedRam.loadBlock(f, b, written == null);
            } else if (org.livemig.stream.MappedRamHeader.follows(f)) {
                throw new StreamFormatException("RAM block '" + name + "' is followed by a mapped-ram header: the stream"
                        + " is in mapped-ram's layout, load it with the mapped-ram capability", f.position());
            }
            seen += length;
        }
        if (seen != total || total != ram.totalSize()) {
            throw new StreamFormatException(String.format(
                    "RAM size mismatch: stream says 0x%x in all, its blocks add up to 0x%x, this machine has 0x%x",
                    total, seen, ram.totalSize()), at);
        }
    }

    /** The block of the current page record: its name, or the last one's with CONTINUE. */
    private RamBlock block(MigrationFile f) throws IOException {
        if (record.continues()) {
            if (lastBlock == null) {
                throw new StreamFormatException("RAM record with CONTINUE but no previous block", record.at());
            }
            return lastBlock;
        }
        String name = record.readBlockName(f);
        RamBlock b = ram.block(name);
        if (b == null) {
            throw new StreamFormatException("unknown RAM block '" + SectionHeader.display(name) + "'", record.at());
        }
        lastBlock = b;
        return b;
    }

    /** Checks that page offset {@code addr} lies inside {@code b} (every record is checked before RAM is touched). */
    private static void checkPage(RamBlock b, long addr, long at) throws StreamFormatException {
        if (addr < 0 || addr >= b.usedLength()) {
            throw new StreamFormatException(String.format(
                    "RAM page offset 0x%x outside block '%s' of size 0x%x", addr, b.name(), b.usedLength()), at);
        }
    }
}
