package org.livemig.memory.postcopy;

import org.livemig.memory.RamBlock;

/**
 * A guest access that found its page missing during postcopy: what {@code mig/dst/fault} turns
 * into a page request. The same page may be reported more than once (several vCPUs, or a vCPU
 * retrying); the fault thread deduplicates.
 *
 * @param block      the block holding the page
 * @param page       target page index in the block
 * @param write      true when the access was a write (as far as the backend knows)
 * @param seenNanos  {@link System#nanoTime()} when the backend saw the fault, for fault-to-placed latency
 */
public record PageFault(RamBlock block, long page, boolean write, long seenNanos) {
    /** Byte offset of the page in its block, as a REQ_PAGES start. */
    public long offset() {
        return page << RamBlock.PAGE_BITS;
    }
}
