package org.livemig.migration.ram;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import org.livemig.memory.RamBlock;
import org.livemig.stream.CompressedPageCodec;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.StreamFormatException;

/**
 * The destination's decompress threads of QEMU 7.2's {@code compress} capability:
 * {@code decompress-threads} threads ({@code mig/dst/decompress_n}, QEMU's "decompress"), each
 * with its own zlib stream. The loading thread reads a COMPRESS_PAGE record's data into an idle
 * thread's buffer and goes on with the stream; the thread inflates it into its own page buffer,
 * checks it is exactly one page, and only then copies it into guest RAM, so a bad record never
 * writes RAM. {@link #awaitIdle} (at every RAM section's end) waits until every page handed over
 * is in RAM and reports the first bad record, with its offset and page.
 *
 * <p>Threads: {@link #submit} and {@link #awaitIdle} belong to the loading thread
 * ({@code mig/dst/main}); {@link #shutdown} may come from any thread. A slot's job fields are its
 * thread's while busy and the loading thread's otherwise (the flag under {@link #lock}). Waits are
 * 100 ms slices that end on failure or shutdown.
 */
final class DecompressThreads implements AutoCloseable {
    static final String THREAD_PREFIX = "mig/dst/decompress_";
    private static final long JOIN_MILLIS = 10_000;

    private final Slot[] slots;
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition changed = lock.newCondition();
    private volatile boolean stopping;
    /** The first bad record or thread failure; guarded by lock, read without it to fail fast. */
    private volatile IOException failure;

    private final class Slot {
        final int id;
        final CompressedPageCodec.Decompressor decompressor = new CompressedPageCodec.Decompressor(RamBlock.PAGE_SIZE);
        final byte[] data = new byte[CompressedPageCodec.compressBound(RamBlock.PAGE_SIZE)];
        Thread thread;
        boolean busy;
        int length;
        RamBlock block;
        long offset;
        long recordAt;

        Slot(int id) {
            this.id = id;
        }
    }

    DecompressThreads(int threads) {
        if (threads < 1 || threads > 255) {
            throw new IllegalArgumentException("decompress-threads must be 1..255, not " + threads);
        }
        slots = new Slot[threads];
        for (int i = 0; i < threads; i++) {
            slots[i] = new Slot(i);
        }
        for (Slot s : slots) {
            s.thread = Thread.ofPlatform().name(THREAD_PREFIX + s.id).daemon(true).start(() -> run(s));
        }
    }

    /**
     * Reads the {@code len} bytes of a COMPRESS_PAGE record from {@code f} into an idle thread
     * (waiting for one) and lets it inflate them into the page at {@code offset} of {@code block}.
     * Called without the BQL; blocks on IO.
     *
     * @param recordAt the record's offset, for the error of a bad one
     */
    void submit(MigrationFile f, int len, RamBlock block, long offset, long recordAt) throws IOException {
        Slot s = idleSlot();
        f.getBytes(s.data, 0, len);
        lock.lock();
        try {
            s.length = len;
            s.block = block;
            s.offset = offset;
            s.recordAt = recordAt;
            s.busy = true;
            changed.signalAll();
        } finally {
            lock.unlock();
        }
    }

    private Slot idleSlot() throws IOException {
        lock.lock();
        try {
            while (true) {
                check();
                for (Slot s : slots) {
                    if (!s.busy) {
                        return s;
                    }
                }
                awaitChange();
            }
        } finally {
            lock.unlock();
        }
    }

    /** Waits until every page handed over is in RAM. Throws the first bad record's error. */
    void awaitIdle() throws IOException {
        lock.lock();
        try {
            for (Slot s : slots) {
                while (s.busy) {
                    awaitChange();
                }
            }
            check();
        } finally {
            lock.unlock();
        }
    }

    private void awaitChange() throws IOException {
        check();
        try {
            changed.await(100, TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted waiting for a decompress thread", e);
        }
        check();
    }

    private void check() throws IOException {
        IOException f = failure;
        if (f != null) {
            throw f instanceof StreamFormatException sfe
                    ? new StreamFormatException(stripOffset(sfe), sfe.offset(), sfe.section(), sfe)
                    : new IOException(f.getMessage(), f);
        }
        if (stopping) {
            throw new IOException("decompress threads were shut down");
        }
    }

    /** The message without the " (at byte offset ...)" a StreamFormatException adds itself. */
    private static String stripOffset(StreamFormatException e) {
        String m = e.getMessage();
        int cut = m.indexOf(" (at byte offset ");
        return cut >= 0 ? m.substring(0, cut) : m;
    }

    private void fail(IOException e) {
        lock.lock();
        try {
            if (failure == null) {
                failure = e;
            }
            changed.signalAll();
        } finally {
            lock.unlock();
        }
    }

    /** {@code mig/dst/decompress_n}: one page per job until shut down. */
    private void run(Slot s) {
        try {
            while (true) {
                lock.lock();
                try {
                    while (!s.busy && !stopping) {
                        changed.await(100, TimeUnit.MILLISECONDS);
                    }
                    if (!s.busy) {
                        return;
                    }
                } finally {
                    lock.unlock();
                }
                String err = s.decompressor.decompress(s.data, 0, s.length);
                if (err != null) {
                    fail(new StreamFormatException(String.format("compressed page 0x%x of block '%s': %s",
                            s.offset, s.block.name(), err), s.recordAt));
                } else {
                    MemorySegment.copy(s.decompressor.page(), 0, s.block.memory(), ValueLayout.JAVA_BYTE, s.offset,
                            RamBlock.PAGE_SIZE);
                }
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
            fail(new IOException("decompress thread " + s.id + " failed: " + e, e));
        } finally {
            s.decompressor.close();
        }
    }

    /** Unblocks every wait (cancel, yank, a failed load); any thread. */
    void shutdown() {
        stopping = true;
        lock.lock();
        try {
            changed.signalAll();
        } finally {
            lock.unlock();
        }
    }

    /** Shuts down and joins the threads (bounded). */
    @Override
    public void close() {
        shutdown();
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
            System.getLogger(DecompressThreads.class.getName())
                    .log(System.Logger.Level.WARNING, "decompress threads still running after " + JOIN_MILLIS + " ms: " + alive);
        }
    }
}
