package org.livemig.migration;

import java.util.concurrent.atomic.AtomicLong;
import org.livemig.migration.ram.CompressionStats;
import org.livemig.migration.ram.XbzrleStats;

/**
 * RAM counters of one migration, as QEMU's query-migrate "ram" object reports them. Written by the
 * migration thread that moves pages, read by the monitor at any time.
 */
public final class RamStats {
    public final AtomicLong normalPages = new AtomicLong();
    public final AtomicLong zeroPages = new AtomicLong();
    /** All bytes put on the wire by the migration (headers included). */
    public final AtomicLong transferred = new AtomicLong();
    public final AtomicLong precopyBytes = new AtomicLong();
    public final AtomicLong downtimeBytes = new AtomicLong();
    public final AtomicLong postcopyBytes = new AtomicLong();
    public final AtomicLong postcopyRequests = new AtomicLong();
    /** Bytes on the multifd channels (also counted in {@link #transferred} on the source). */
    public final AtomicLong multifdBytes = new AtomicLong();
    public final AtomicLong dirtySyncCount = new AtomicLong();
    /** Pages per second dirtied, measured over the last sync period. */
    public volatile long dirtyPagesRate;
    /** Mbit/s over the last period. */
    public volatile double mbps;
    public volatile long pagesPerSecond;
    public volatile long remainingBytes;
    public volatile long totalBytes;
    /** query-migrate's "xbzrle-cache" (with the xbzrle capability). */
    public final XbzrleStats xbzrle = new XbzrleStats();
    /** query-migrate's "compression" (with the compress capability). */
    public final CompressionStats compression = new CompressionStats();
}
