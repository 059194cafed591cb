package org.livemig.migration.ram;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
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
 * handed over through each slot's {@code busy} flag under {@link #lock} (a slot's buffers belong to
 * its thread while busy, to the migration thread otherwise). Waits are 100 ms slices that end on
 * {@link #close}.
 */
final class CompressThreads implements AutoCloseable {
    static final String THREAD_PREFIX = "mig/src/compress_";
    private static final long JOIN_MILLIS = 10_000;
    /** be64 header, be32 length, data. */
    private static final int MAX_RECORD = 8 + CompressedPageCodec.PAYLOAD_HEADER_BYTES
            + CompressedPageCodec.compressBound(RamBlock.PAGE_SIZE);

    private final Slot[] slots;
    private final boolean wait;
    private final boolean detectZeroPages;
    private final CompressionStats stats;
    private final AtomicLong zeroPages;
    private final ReentrantLock lock = new ReentrantLock();
    /** Signalled when a slot gets a job, when one finishes, and on close. */
    private final Condition changed = lock.newCondition();
    private volatile boolean closed;
    private volatile RuntimeException failure;

    private final class Slot {
        final int id;
        final CompressedPageCodec.Compressor compressor;
        final byte[] record = new byte[MAX_RECORD];
        Thread thread;
        // guarded by lock
        boolean busy;
        // the job and its result: the thread's while busy, the migration thread's otherwise
        RamBlock block;
        long offset;
        int recordLength;
        boolean zero;

        Slot(int id, int level) {
            this.id = id;
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
        if (threads < 1 || threads > 255) {
            throw new IllegalArgumentException("compress-threads must be 1..255, not " + threads);
        }
        this.wait = wait;
        this.detectZeroPages = detectZeroPages;
        this.stats = stats;
        this.zeroPages = zeroPages;
        this.slots = new Slot[threads];
        for (int i = 0; i < threads; i++) {
            slots[i] = new Slot(i, level);
        }
        for (Slot s : slots) {
            s.thread = Thread.ofPlatform().name(THREAD_PREFIX + s.id).daemon(true).start(() -> run(s));
        }
    }

    /**
     * Gives the page at {@code offset} of {@code block} (the block of the last record on
     * {@code f}) to an idle thread, after writing that thread's finished record to {@code f}.
     * With every thread busy it waits for one (compress-wait-thread) or returns false: the caller
     * then sends the page itself. The migration thread.
     */
    boolean submit(MigrationFile f, RamBlock block, long offset) throws IOException {
        Slot s = idleSlot(wait);
        if (s == null) {
            return false;
        }
        writeRecord(f, s);
        lock.lock();
        try {
            s.block = block;
            s.offset = offset;
            s.busy = true;
            changed.signalAll();
        } finally {
            lock.unlock();
        }
        return true;
    }

    /** Waits for every thread and writes their finished records to {@code f}. The migration thread. */
    void flush(MigrationFile f) throws IOException {
        for (Slot s : slots) {
            lock.lock();
            try {
                while (s.busy) {
                    awaitChange();
                }
            } finally {
                lock.unlock();
            }
            writeRecord(f, s);
        }
    }

    /** An idle slot, waiting for one when {@code block} is set; null when none is idle and not waiting. */
    private Slot idleSlot(boolean block) throws IOException {
        lock.lock();
        try {
            while (true) {
                check();
                for (Slot s : slots) {
                    if (!s.busy) {
                        return s;
                    }
                }
                if (!block) {
                    return null;
                }
                awaitChange();
            }
        } finally {
            lock.unlock();
        }
    }

    /** Lock held: a bounded wait that ends early on a change, a failure or close. */
    private void awaitChange() throws IOException {
        check();
        try {
            changed.await(100, TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted waiting for a compress thread", e);
        }
        check();
    }

    private void check() throws IOException {
        RuntimeException f = failure;
        if (f != null) {
            throw new IOException("compress thread failed: " + f.getMessage(), f);
        }
        if (closed) {
            throw new IOException("compress threads were shut down");
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

    /** {@code mig/src/compress_n}: one page per job until closed. */
    private void run(Slot s) {
        try {
            while (true) {
                lock.lock();
                try {
                    while (!s.busy && !closed) {
                        changed.await(100, TimeUnit.MILLISECONDS);
                    }
                    if (!s.busy) {
                        return;
                    }
                } finally {
                    lock.unlock();
                }
                buildRecord(s);
                lock.lock();
                try {
                    s.busy = false;
                    changed.signalAll();
                } finally {
                    lock.unlock();
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (RuntimeException e) {
            // The migration thread sees it at its next call rather than waiting for this slot.
            lock.lock();
            try {
                if (failure == null) {
                    failure = e;
                }
                changed.signalAll();
            } finally {
                lock.unlock();
            }
        } finally {
            s.compressor.close();
        }
    }

    /** The job's record: ZERO for a zero page, else COMPRESS_PAGE with the deflated page. */
    private void buildRecord(Slot s) {
        byte[] r = s.record;
        boolean zero = detectZeroPages && ZeroPages.isZeroPage(s.block.memory(), s.offset);
        int flag = zero ? RamPageRecord.FLAG_ZERO : RamPageRecord.FLAG_COMPRESS_PAGE;
        putBe64(r, 0, s.offset | flag | RamPageRecord.FLAG_CONTINUE);
        int n;
        if (zero) {
            r[8] = 0;
            n = 9;
        } else {
            int len = s.compressor.compress(s.block.memory(), s.offset, r, 12);
            putBe32(r, 8, len);
            n = 12 + len;
        }
        s.zero = zero;
        s.recordLength = n;
    }

    private static void putBe64(byte[] b, int at, long v) {
        for (int i = 7; i >= 0; i--) {
            b[at + i] = (byte) v;
            v >>>= 8;
        }
    }

    private static void putBe32(byte[] b, int at, int v) {
        b[at] = (byte) (v >>> 24);
        b[at + 1] = (byte) (v >>> 16);
        b[at + 2] = (byte) (v >>> 8);
        b[at + 3] = (byte) v;
    }

    /** Ends the threads (bounded joins); records not yet written are dropped. Any thread. */
    @Override
    public void close() {
        closed = true;
        lock.lock();
        try {
            changed.signalAll();
        } finally {
            lock.unlock();
        }
        List<Thread> alive = new ArrayList<>();
        for (Slot s : slots) {
            try {
                s.thread.join(JOIN_MILLIS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            if (s.thread.isAlive()) {
                alive.add(s.thread);
            }
        }
        if (!alive.isEmpty()) {
            System.getLogger(CompressThreads.class.getName())
                    .log(System.Logger.Level.WARNING, "compress threads still running after " + JOIN_MILLIS + " ms: " + alive);
        }
    }
}
