package org.livemig.migration.ram;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import org.livemig.memory.RamBlock;
import org.livemig.memory.ZeroPages;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.RamPageRecord;
import org.livemig.stream.XbzrleCodec;

/**
 * What {@code xbzrle}, {@code compress} and {@code zero-page-detection} do to one page on the
 * source, in QEMU 7.2's order (ram_save_target_page): while XBZRLE has not started, a page of the
 * block last written goes to a compress thread ({@link CompressThreads}; the first page of a block
 * goes plain); from the second pass on, with XBZRLE, a zero page goes as ZERO and replaces its
 * cached copy, a page in the cache goes as an XBZRLE delta when that is smaller than the page (or
 * not at all when unchanged), and a page not in the cache enters it and goes whole. Anything else
 * is left to the RAM saver's plain path ({@link #NOT_HANDLED}).
 *
 * <p>XBZRLE starts after the first complete pass (the first dirty-bitmap sync), when the cache is
 * made. It is indexed by page address, QEMU's ram_addr: a block's offset in the order of blocks
 * plus the page's offset in the block. A page sent whole while XBZRLE runs goes from its cached
 * copy, so the destination holds exactly what the next delta is taken against.
 *
 * <p>Owned by the migration thread ({@code mig/src/main}), which never holds the BQL here;
 * {@link #requestXbzrleCacheSize} may come from any thread (migrate-set-parameters while the
 * migration runs, as QEMU allows): the migration thread makes the new, empty, cache before its next page.
 */
public final class TargetPageSaver implements AutoCloseable {
    /** {@link #save} sent nothing: the caller sends the page the plain way. */
    public static final int NOT_HANDLED = -1;
    /** {@link #save} took the page and put no record on the stream (yet). */
    public static final int NO_RECORD = 0;
    /** {@link #save} put the page's record on the stream. */
    public static final int RECORD = 1;

    /**
     * The features in use for one migration.
     *
     * @param xbzrleCacheSize    xbzrle-cache-size with the xbzrle capability, 0 without
     * @param compressThreads    compress-threads with the compress capability, 0 without
     * @param compressLevel      compress-level
     * @param compressWaitThread compress-wait-thread
     * @param detectZeroPages    zero-page-detection legacy (none: zero pages go as normal pages)
     */
    public record Options(long xbzrleCacheSize, int compressThreads, int compressLevel, boolean compressWaitThread,
                          boolean detectZeroPages) {
    }

    private final Options options;
    private final XbzrleStats xbzrleStats;
    private final CompressionStats compressionStats;
    private final AtomicLong normalPages;
    private final AtomicLong zeroPages;
    /** Page address of each block's first byte (QEMU's block offset in ram_addr space). */
    private final Map<RamBlock, Long> blockAddress = new IdentityHashMap<>();
    private final long ramSpan;
    private final CompressThreads compress;
    private final Arena arena = Arena.ofShared();
    /** The page as it was when encoded: what the delta and the cache describe. */
    private final MemorySegment current;
    private final byte[] encoded = new byte[RamBlock.PAGE_SIZE];
    private XbzrleCache cache;
    private long cacheSize;
    private volatile long requestedCacheSize;
    private long pagesAtLastSync;

    /**
     * Starts the compress threads if asked for; the XBZRLE cache comes at the first sync.
     *
     * @param normalPages counter of pages sent whole (query-migrate's "normal")
     * @param zeroPages   counter of ZERO records (query-migrate's "duplicate")
     */
    public TargetPageSaver(List<RamBlock> blocks, Options options, XbzrleStats xbzrleStats,
                           CompressionStats compressionStats, AtomicLong normalPages, AtomicLong zeroPages) {
        this.options = options;
        this.xbzrleStats = xbzrleStats;
        this.compressionStats = compressionStats;
        this.normalPages = normalPages;
        this.zeroPages = zeroPages;
        long at = 0;
        for (RamBlock b : blocks) {
            blockAddress.put(b, at);
            at += (b.usedLength() + RamBlock.PAGE_SIZE - 1) & -(long) RamBlock.PAGE_SIZE;
        }
        this.ramSpan = at;
        this.cacheSize = options.xbzrleCacheSize();
        this.requestedCacheSize = cacheSize;
        this.current = arena.allocate(RamBlock.PAGE_SIZE, 64);
        this.compress = options.compressThreads() > 0
                ? new CompressThreads(options.compressThreads(), options.compressLevel(), options.compressWaitThread(),
                        options.detectZeroPages(), compressionStats, zeroPages)
                : null;
    }

    /** Whether zero pages are looked for at all (zero-page-detection legacy). */
    public boolean detectsZeroPages() {
        return options.detectZeroPages();
    }

    /** A new xbzrle-cache-size while the migration runs (any thread): a new, empty cache from the next page on. */
    public void requestXbzrleCacheSize(long size) {
        requestedCacheSize = size;
    }

    /**
     * One page of the precopy passes (not postcopy). Returns {@link #RECORD} when a record for
     * the page went on {@code f} (the block is then the last one written), {@link #NO_RECORD}
     * when the page was taken without one, {@link #NOT_HANDLED} when the caller must send it.
     *
     * @param cont      the block is the one of the last record on {@code f} (CONTINUE)
     * @param syncs     dirty-bitmap syncs so far (the cache's clock; XBZRLE starts after the first)
     * @param lastStage the guest is stopped (completion): the cache is no longer updated
     */
    public int save(MigrationFile f, RamBlock block, long offset, boolean cont, long syncs, boolean lastStage)
            throws IOException {
        boolean xbzrleStarted = options.xbzrleCacheSize() > 0 && syncs > 0;
        if (compress != null && !xbzrleStarted) {
            if (!cont) {
                // A block's first page goes plain, after everything compressed of the block before.
                compress.flush(f);
                return NOT_HANDLED;
            }
            if (compress.submit(f, block, offset)) {
                return NO_RECORD;
            }
            compressionStats.busy.incrementAndGet();
            return NOT_HANDLED;
        }
        if (!xbzrleStarted) {
            return NOT_HANDLED;
        }
        XbzrleCache c = cache();
        long addr = blockAddress.get(block) + offset;
        if (options.detectZeroPages() && ZeroPages.isZeroPage(block.memory(), offset)) {
            RamPageRecord.writeZero(f, offset, cont ? null : block.name(), 0);
            zeroPages.incrementAndGet();
            // A stale copy would make the next delta wrong; a page not cached yet gets in cheaply.
            c.insertZero(addr, syncs);
            return RECORD;
        }
        return saveXbzrle(f, c, block, offset, addr, cont, syncs, lastStage);
    }

    /** QEMU's save_xbzrle_page and what ram_save_page does with its answer. */
    private int saveXbzrle(MigrationFile f, XbzrleCache c, RamBlock block, long offset, long addr, boolean cont,
                           long syncs, boolean lastStage) throws IOException {
        if (!c.isCached(addr, syncs)) {
            xbzrleStats.cacheMiss.incrementAndGet();
            if (!lastStage && c.insert(addr, block.memory(), offset, syncs)) {
                putPage(f, block, offset, cont, c.data(), c.dataOffset(addr));
            } else {
                putPage(f, block, offset, cont, block.memory(), offset);
            }
            return RECORD;
        }
        xbzrleStats.pages.incrementAndGet();
        MemorySegment.copy(block.memory(), offset, current, 0, RamBlock.PAGE_SIZE);
        int len = XbzrleCodec.encode(c.data(), c.dataOffset(addr), current, 0, RamBlock.PAGE_SIZE, encoded,
                RamBlock.PAGE_SIZE - 1);
        if (len == XbzrleCodec.UNCHANGED) {
            return NO_RECORD; // the destination's copy is this page already
        }
        if (!lastStage) {
            MemorySegment.copy(current, 0, c.data(), c.dataOffset(addr), RamBlock.PAGE_SIZE);
        }
        if (len == XbzrleCodec.OVERFLOW) {
            xbzrleStats.overflow.incrementAndGet();
            xbzrleStats.bytes.addAndGet(RamBlock.PAGE_SIZE);
            putPage(f, block, offset, cont, current, 0);
            return RECORD;
        }
        long before = f.position();
        RamPageRecord.writeXbzrle(f, offset, cont ? null : block.name(), encoded, len);
        xbzrleStats.bytes.addAndGet(f.position() - before - 8); // QEMU counts all but the be64 header
        return RECORD;
    }

    /** The cache, made (or made anew at a new size) on the migration thread. */
    private XbzrleCache cache() {
        long want = requestedCacheSize;
        if (cache == null || want != cacheSize) {
            if (cache != null) {
                cache.close();
            }
            cacheSize = want;
            cache = new XbzrleCache(want, ramSpan);
        }
        return cache;
    }

    /**
     * A PAGE record of the page at {@code srcOffset} of {@code src}: guest RAM joins the write as
     * it is (a page dirtied again is sent again later); a cache slot or scratch copy, which
     * changes before the write, is copied into the stream's buffer now.
     */
    private void putPage(MigrationFile f, RamBlock block, long offset, boolean cont, MemorySegment src, long srcOffset)
            throws IOException {
        RamPageRecord.writePageHeader(f, offset, RamPageRecord.FLAG_PAGE, cont ? null : block.name());
        if (src == block.memory()) {
            f.putRam(src, srcOffset, RamBlock.PAGE_SIZE);
        } else {
            f.putCopy(src, srcOffset, RamBlock.PAGE_SIZE);
        }
        normalPages.incrementAndGet();
    }

    /** Before a RAM section's EOS: the compress threads' records go out. The migration thread. */
    public void flush(MigrationFile f) throws IOException {
        if (compress != null) {
            compress.flush(f);
        }
    }

    /** At a dirty-bitmap sync: the rates of the period just ended. The migration thread. */
    public void afterSync() {
        long handled = normalPages.get() + zeroPages.get() + xbzrleStats.pages.get() + compressionStats.pages.get();
        long period = handled - pagesAtLastSync;
        pagesAtLastSync = handled;
        xbzrleStats.updateRates(period, RamBlock.PAGE_SIZE);
        compressionStats.updateRates(period, RamBlock.PAGE_SIZE);
    }

    /** Ends the compress threads and frees the cache. */
    @Override
    public void close() {
        if (compress != null) {
            compress.close();
        }
        if (cache != null) {
            cache.close();
        }
        arena.close();
    }
}
