package org.livemig.migration.ram;

import java.util.concurrent.atomic.AtomicLong;

/**
 * Counters of the {@code compress} capability for one outgoing migration, as QEMU's query-migrate
 * "compression" reports them. Written by the migration thread, read by the monitor at any time.
 */
public final class CompressionStats {
    /** Pages sent as COMPRESS_PAGE records. */
    public final AtomicLong pages = new AtomicLong();
    /** Pages that found every compress thread busy and went uncompressed (compress-wait-thread off). */
    public final AtomicLong busy = new AtomicLong();
    /** Bytes of COMPRESS_PAGE records less their 8-byte headers. */
    public final AtomicLong compressedSize = new AtomicLong();
    public volatile double busyRate;
    /** Page bytes over compressed bytes, in the last period. */
    public volatile double compressionRate;

    private long busyPrev;
    private long sizePrev;
    private long pagesPrev;

    /** Recomputes the rates at a dirty-bitmap sync, given the pages handled in the period. The migration thread. */
    void updateRates(long periodPages, int pageSize) {
        if (periodPages <= 0) {
            return;
        }
        long b = busy.get();
        busyRate = (double) (b - busyPrev) / periodPages;
        busyPrev = b;
        long size = compressedSize.get();
        long p = pages.get();
        if (size != sizePrev) {
            compressionRate = (double) (p - pagesPrev) * pageSize / (size - sizePrev);
            pagesPrev = p;
            sizePrev = size;
        }
    }
}
