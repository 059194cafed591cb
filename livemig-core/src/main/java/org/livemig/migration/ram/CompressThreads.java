package org.livemig.migration.ram;

import java.io.IOException;
import java.util.concurrent.atomic.AtomicLong;
import org.livemig.memory.RamBlock;
import org.livemig.memory.ZeroPages;
import org.livemig.stream.CompressedPageCodec;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.RamPageRecord;

/**
 * The source's compress threads of QEMU 7.2's {@code compress} capability: {@code compress-threads}
 * threads ({@code mig/src/compress_n}, QEMU's "compress"), each with its own zlib stream at
 * {@code compress-level}. The migration thread hands a page to an idle thread, which checks it for
 * zero and deflates it into a whole record of its own (ZERO or COMPRESS_PAGE, always CONTINUE:
 * a block's first page goes uncompressed, so its name is already on the stream). The next time
 * the migration thread takes that thread, it first copies the finished record onto the main
 * channel; {@link #flush} copies all of them. So records reach the stream in the order threads
 * come free, not page order, which the destination takes: within a pass a page goes once, and
 * every pass boundary and block change flushes.
 *
 * <p>Threads: {@link #submit} and {@link #flush} belong to the migration thread; the records are
 * handed over as {@link PageWorkerPool} hands its jobs over (a slot's buffers belong to its thread
 * while busy, to the migration thread otherwise).
 */
final class CompressThreads extends PageWorkerPool<CompressThreads.Slot> {
    static final String THREAD_PREFIX = "mig/src/compress_";
    /** be64 header, be32 length, data. */
    private static final int MAX_RECORD = 8 + CompressedPageCodec.PAYLOAD_HEADER_BYTES
            + CompressedPageCodec.compressBound(RamBlock.PAGE_SIZE);

    private final boolean wait;
    private final boolean detectZeroPages;
    private final CompressionStats stats;
    private final AtomicLong zeroPages;

    static final class Slot extends PageWorkerPool.Worker {
        final CompressedPageCodec.Compressor compressor;
        final byte[] record = new byte[MAX_RECORD];
        // the job and its result: the thread's while busy, the migration thread's otherwise
        RamBlock block;
        long offset;
        int recordLength;
        boolean zero;

        Slot(int id, int level) {
            super(id);
            this.compressor = new CompressedPageCodec.Compressor(level, RamBlock.PAGE_SIZE);
        }
    }

    /**
     * Starts the threads.
     *
     * @param wait            compress-wait-thread: wait for a free thread rather than send the page uncompressed
     * @param detectZeroPages check pages for zero first (zero-page-detection legacy)
     * @param zeroPages       counts the zero pages found (query-migrate's "duplicate")
     */
    CompressThreads(int threads, int level, boolean wait, boolean detectZeroPages, CompressionStats stats,
                    AtomicLong zeroPages) {
        super("compress", workers("compress", threads, id -> new Slot(id, level)));
        this.wait = wait;
        this.detectZeroPages = detectZeroPages;
        this.stats = stats;
        this.zeroPages = zeroPages;
        start(THREAD_PREFIX);
    }

    /**
     * Gives the page at {@code offset} of {@code block} (the block of the last record on
     * {@code f}) to an idle thread, after writing that thread's finished record to {@code f}.
     * With every thread busy it waits for one (compress-wait-thread) or returns false: the caller
     * then sends the page itself. The migration thread.
     */
    boolean submit(MigrationFile f, RamBlock block, long offset) throws IOException {
        Slot s = idle(wait);
        if (s == null) {
            return false;
        }
        writeRecord(f, s);
        s.block = block;
        s.offset = offset;
        handOver(s);
        return true;
    }

    /** Waits for every thread and writes their finished records to {@code f}. The migration thread. */
    void flush(MigrationFile f) throws IOException {
        for (Slot s : workers) {
            awaitDone(s);
            writeRecord(f, s);
        }
    }

    /** Copies an idle slot's finished record (if any) to {@code f} and counts it. */
    private void writeRecord(MigrationFile f, Slot s) throws IOException {
        int n = s.recordLength;
        if (n == 0) {
            return;
        }
        f.putBytes(s.record, 0, n);
        s.recordLength = 0;
        if (s.zero) {
            zeroPages.incrementAndGet();
        } else {
            stats.pages.incrementAndGet();
            stats.compressedSize.addAndGet(n - 8);
        }
    }

    /** {@code mig/src/compress_n}: the job's record, ZERO for a zero page, else COMPRESS_PAGE with the deflated page. */
    @Override
    void work(Slot s) {
        boolean zero = detectZeroPages && ZeroPages.isZeroPage(s.block.memory(), s.offset);
        int len = zero ? 0 : s.compressor.compress(s.block.memory(), s.offset, s.record,
                RamPageRecord.COMPRESSED_PREFIX_BYTES);
        s.recordLength = RamPageRecord.encodeContinued(s.record, s.offset, zero, len);
        s.zero = zero;
    }

    @Override
    void release(Slot s) {
        s.compressor.close();
    }
}
