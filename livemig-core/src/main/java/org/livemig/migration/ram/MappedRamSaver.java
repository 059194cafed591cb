package org.livemig.migration.ram;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.StandardOpenOption;
import java.util.BitSet;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.LongConsumer;
import org.livemig.memory.RamBlock;
import org.livemig.stream.MappedRamHeader;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.RamPageRecord;

/**
 * The source half of mapped-ram (QEMU 9.0): each RAM block's entry in the stream is followed by
 * its {@link MappedRamHeader}, the stream moves past the block's region of the file, and every
 * non-zero page is written at its fixed place there instead of into the stream; a zero page is
 * only a clear bit. The bitmaps go to their places at the end. A page written again in a later
 * pass lands on its old copy, so the file never holds more than RAM.
 *
 * <p>Pages go out in runs of consecutive pages, at most {@link #RUN_PAGES} and never across a
 * {@link #RUN_PAGES} boundary. Without multifd the migration thread writes each run itself, on
 * the stream's own file descriptor (positional writes, which leave the stream's position alone).
 * With multifd, each of {@code channels} threads ({@code mig/src/send_n}, QEMU's multifd send
 * threads) writes the runs handed to it on a file descriptor of its own, opened with O_DIRECT
 * under direct-io. A page always goes to the same channel (chosen by its run's boundary), so a
 * page sent again after a dirty sync cannot be overtaken by its older copy; and {@link #flush}
 * at each RAM section's end waits for every channel, as QEMU's multifd sync does.
 *
 * <p>Threads: everything but the channel threads' writing is {@code mig/src/main}'s (the bitmaps,
 * the current run); a run is handed over whole through a channel's queue. The first failure of
 * a channel sticks and fails the next call.
 */
public final class MappedRamSaver implements AutoCloseable {
    /** Pages in one write at most: 8 MiB (fewer hand-overs and system calls; a plain write's size). */
    public static final int RUN_PAGES = 2048;
    public static final String THREAD_PREFIX = "mig/src/send_";
    private static final int QUEUE_RUNS = 8;

    /** Consecutive pages, from guest RAM or (src not null) from a copy of them at srcOffset of src. */
    private record Run(RamBlock block, long pagesOffset, long first, int count, MemorySegment src, long srcOffset) {}


    /** A block's layout in the file and which of its pages the file holds. Owned by mig/src/main. */
    private static final class Layout {
        final int index;
        MappedRamHeader header;
        final BitSet present;

        Layout(int index, RamBlock b) {
            this.index = index;
            this.present = new BitSet((int) b.pageCount());
        }
    }

    private final MappedRamOptions opts;
    private final FileChannel main;
    private final Map<RamBlock, Layout> layouts = new IdentityHashMap<>();
    private final LongConsumer onWritten;
    private final FileChannelWorkers<Run> channels;
    private long holeBytes;
    /** The account (mig/src/main's): time waiting at flushes, flushes, time writing the bitmaps. */
    private long flushNanos;
    private int flushes;
    private long bitmapNanos;
    private RamBlock runBlock;
    private long runFirst;
    private int runCount;
    /** The current run's copy, or null when it is guest RAM. */
    private MemorySegment runSrc;
    private long runSrcOffset;

    private MappedRamSaver(MappedRamOptions opts, FileChannel main, List<RamBlock> blocks, LongConsumer onWritten,
                           FileChannelWorkers<Run> channels) {
        this.opts = opts;
        this.main = main;
        this.onWritten = onWritten;
        this.channels = channels;
        for (int i = 0; i < blocks.size(); i++) {
            layouts.put(blocks.get(i), new Layout(i, blocks.get(i)));
        }
    }

    /**
     * Called without the BQL; opens the channels' file descriptors and starts their threads.
     * {@code main} is the stream's own file (its position is the stream's); {@code onWritten}
     * is told of every byte written to the file beside the stream.
     */
    public static MappedRamSaver open(MappedRamOptions opts, FileChannel main, List<RamBlock> blocks,
                                      LongConsumer onWritten) throws IOException {
        if (main == null) {
            throw new IOException("mapped-ram writes pages at fixed places of a file: its migration needs a plain file:"
                    + " connection");
        }
        FileChannelWorkers<Run> chans = FileChannelWorkers.start("mapped-ram saver", THREAD_PREFIX, opts.channels(),
                QUEUE_RUNS, i -> DirectIo.open(opts.path(), opts.directIo(), StandardOpenOption.WRITE), (file, r) -> {
                    try {
                        write(file, r);
                    } catch (IOException e) {
                        throw new IOException("mapped-ram " + Thread.currentThread().getName() + ": " + e.getMessage(), e);
                    }
                });
        MappedRamSaver s = new MappedRamSaver(opts, main, blocks, onWritten, chans);
        return s;
    }

    /** zero-page-detection: zero pages are left out of the file. */
    public boolean detectsZeroPages() {
        return opts.detectZeroPages();
    }

    /** Bytes of the stream that are the blocks' regions: moved over, not written into the stream. */
    public long holeBytes() {
        return holeBytes;
    }

    /**
     * Called on {@code mig/src/main} after block {@code b}'s entry in the MEM_SIZE record: writes
     * its header into {@code f} and moves {@code f} past the block's region of the file.
     */
    public void setupBlock(MigrationFile f, RamBlock b) throws IOException {
        Layout l = layout(b);
        long at = opts.offset() + f.position();
        l.header = MappedRamHeader.layout(at, b.usedLength(), RamBlock.PAGE_SIZE);
        l.header.write(f);
        long skip = l.header.pagesOffset() + b.usedLength() - (opts.offset() + f.position());
        f.seekForward(main, skip);
        holeBytes += skip;
    }

    /** The stream's block entry, then the header: the MEM_SIZE record of a mapped-ram stream. */
    public void writeMemSize(MigrationFile f, long total, List<RamBlock> blocks) throws IOException {
        RamPageRecord.writeMemSize(f, total, List.of());
        for (RamBlock b : blocks) {
            RamPageRecord.writeBlockEntry(f, new RamPageRecord.BlockEntry(b.name(), b.usedLength(), null, null));
            setupBlock(f, b);
        }
    }

    private Layout layout(RamBlock b) {
        Layout l = layouts.get(b);
        if (l == null) {
            throw new IllegalArgumentException("RAM block " + b + " is not known to this mapped-ram saver");
        }
        return l;
    }

    /** A non-zero page (or any page without zero-page detection): to its place in the file. */
    public void writePage(RamBlock b, long page) throws IOException {
        checkFailure();
        Layout l = layout(b);
        if (l.header == null) {
            throw new IllegalStateException("page of " + b + " before its mapped-ram header");
        }
        l.present.set((int) page);
        boolean continues = b == runBlock && runSrc == null && page == runFirst + runCount && runCount < RUN_PAGES
                && page % RUN_PAGES != 0;
        if (!continues) {
            submitRun();
            runBlock = b;
            runFirst = page;
        }
        runCount++;
        onWritten.accept(RamBlock.PAGE_SIZE);
    }

    /**
     * A non-zero page from a copy of it (background-snapshot, which copies pages out before they
     * go anywhere): to its place in the file, from {@code offset} of {@code copy}.
     */
    public void writeCopy(RamBlock b, long page, MemorySegment copy, long offset) throws IOException {
        checkFailure();
        Layout l = layout(b);
        if (l.header == null) {
            throw new IllegalStateException("page of " + b + " before its mapped-ram header");
        }
        l.present.set((int) page);
        boolean continues = b == runBlock && runSrc == copy && page == runFirst + runCount
                && offset == runSrcOffset + ((long) runCount << RamBlock.PAGE_BITS) && runCount < RUN_PAGES
                && page % RUN_PAGES != 0;
        if (!continues) {
            submitRun();
            runBlock = b;
            runFirst = page;
            runSrc = copy;
            runSrcOffset = offset;
        }
        runCount++;
        onWritten.accept(RamBlock.PAGE_SIZE);
    }

    /** A zero page: not in the file; its bit says so. */
    public void zeroPage(RamBlock b, long page) {
        layout(b).present.clear((int) page);
    }

    /** Hands the current run to its channel, or writes it here without channels. */
    private void submitRun() throws IOException {
        if (runCount == 0) {
            return;
        }
        Run r = new Run(runBlock, layout(runBlock).header.pagesOffset(), runFirst, runCount, runSrc, runSrcOffset);
        runCount = 0;
        runBlock = null;
        runSrc = null;
        if (channels.size() == 0) {
            write(main, r);
            return;
        }
        int ci = (int) (((long) layout(r.block()).index * 1_000_003L + r.first() / RUN_PAGES) % channels.size());
        channels.submit(ci, r);
    }

    private static void write(FileChannel file, Run r) throws IOException {
        long off = r.first() << RamBlock.PAGE_BITS;
        long len = (long) r.count() << RamBlock.PAGE_BITS;
        ByteBuffer src = r.src() == null ? r.block().memory().asSlice(off, len).asByteBuffer()
                : r.src().asSlice(r.srcOffset(), len).asByteBuffer();
        long pos = r.pagesOffset() + off;
        while (src.hasRemaining()) {
            pos += file.write(src, pos);
        }
    }

    /**
     * Called on {@code mig/src/main}: every page handed over so far is in the file (with a
     * background snapshot, before the pages may change again; at the end, before the bitmaps).
     */
    public void flush() throws IOException {
        submitRun();
        long t0 = System.nanoTime();
        channels.awaitAll();
        flushNanos += System.nanoTime() - t0;
        flushes++;
    }

    /**
     * Called on {@code mig/src/main} at a RAM section's end: the current run goes to its channel,
     * without waiting for the channels. A page sent again later goes to the same channel behind
     * its older copy, so nothing needs the file to be complete before the end ({@link
     * #writeBitmaps}); waiting here drained every channel's queue each section (every 50 ms),
     * an idle gap on each channel per section.
     */
    public void endSection() throws IOException {
        checkFailure();
        submitRun();
    }

    /**
     * Where the save's time went, for a log line and the benchmark: the main thread's waits for a
     * channel's full queue and for the channels at flushes, the bitmaps, and each channel's time
     * in its writes. Called on {@code mig/src/main} after the last flush.
     */
    public String account() {
        StringBuilder sb = new StringBuilder(String.format("queue-full waits %.1f ms, flushes %d waited %.1f ms,"
                + " bitmaps %.1f ms", channels.submitWaitNanos() / 1e6, flushes, flushNanos / 1e6, bitmapNanos / 1e6));
        long[] busy = channels.busyNanos();
        if (busy.length > 0) {
            sb.append(", channels writing");
            for (long b : busy) {
                sb.append(String.format(" %.1f", b / 1e6));
            }
            sb.append(" ms");
        }
        return sb.toString();
    }

    /** Called on {@code mig/src/main} at the end: every block's bitmap at its place (QEMU's ram_save_file_bmap). */
    public void writeBitmaps() throws IOException {
        flush();
        long t0 = System.nanoTime();
        for (Map.Entry<RamBlock, Layout> e : layouts.entrySet()) {
            Layout l = e.getValue();
            if (l.header == null) {
                continue;
            }
            ByteBuffer bits = MappedRamHeader.encodeBitmap(l.present.toLongArray(), e.getKey().pageCount());
            long pos = l.header.bitmapOffset();
            int n = bits.remaining();
            while (bits.hasRemaining()) {
                pos += main.write(bits, pos);
            }
            onWritten.accept(n);
        }
        bitmapNanos += System.nanoTime() - t0;
    }

    /** Pages the file holds now, over all blocks (statistics). */
    public long pagesInFile() {
        long n = 0;
        for (Layout l : layouts.values()) {
            n += l.present.cardinality();
        }
        return n;
    }

    private void checkFailure() throws IOException {
        IOException f = channels.failure();
        if (f != null) {
            throw new IOException(f.getMessage(), f);
        }
    }

    /** Stops the channels (a cancel or failure too: nothing queued is written after). Any thread. */
    public void shutdown() {
        channels.shutdown();
    }

    @Override
    public void close() {
        channels.close();
    }
}
