package org.livemig.migration.ram;

import java.util.concurrent.atomic.AtomicLong;

/**
 * XBZRLE counters of one outgoing migration, as QEMU's query-migrate "xbzrle-cache" reports them.
 * Written by the migration thread, read by the monitor at any time; the rates are those of the
 * last period between two dirty-bitmap syncs.
 */
public final class XbzrleStats {
    /** Bytes of XBZRLE records less their 8-byte headers, plus a page for each overflow (QEMU's count). */
    public final AtomicLong bytes = new AtomicLong();
    /** Pages found in the cache: sent as XBZRLE, skipped as unchanged, or overflowed. */
    public final AtomicLong pages = new AtomicLong();
    public final AtomicLong cacheMiss = new AtomicLong();
    /** Pages whose delta would have been no smaller than the page (sent whole). */
    public final AtomicLong overflow = new AtomicLong();
    public volatile double cacheMissRate;
    /** Page bytes the XBZRLE pages stand for over the bytes they took, in the last period. */
    public volatile double encodingRate;

    // The previous period's totals; the migration thread's own.
    private long missPrev;
    private long pagesPrev;
    private long bytesPrev;

    /**
     * Recomputes the rates at a dirty-bitmap sync (QEMU's migration_update_rates), given the
     * pages handled in the period just ended (sent in any form). The migration thread.
     */
    void updateRates(long periodPages, int pageSize) {
        if (periodPages <= 0) {
            return;
        }
        long miss = cacheMiss.get();
        long p = pages.get();
        long b = bytes.get();
        cacheMissRate = (double) (miss - missPrev) / periodPages;
        long encoded = b - bytesPrev;
        encodingRate = p == pagesPrev || encoded == 0 ? 0 : (double) (p - pagesPrev) * pageSize / encoded;
        missPrev = miss;
        pagesPrev = p;
        bytesPrev = b;
    }
}
