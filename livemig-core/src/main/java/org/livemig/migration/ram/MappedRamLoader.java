package org.livemig.migration.ram;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import org.livemig.memory.RamBlock;
import org.livemig.memory.ZeroPages;
import org.livemig.stream.MappedRamHeader;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.SectionHeader;
import org.livemig.stream.StreamFormatException;

/**
 * The destination half of mapped-ram (QEMU 9.0's parse_ramblock_mapped_ram): after a RAM block's
 * entry in the MEM_SIZE record comes its {@link MappedRamHeader}; every field is checked against
 * the block and the file first (version, page size, alignment, the bitmap and the pages inside the
 * file, after the header and apart from each other, no bit beyond the block's pages), then the
 * pages the bitmap marks are read from their places straight into guest RAM, at most
 * {@link #READ_BYTES} at a time, and the stream moves on past the block's
 * region. Pages the bitmap leaves out are zero; they are made zero only when guest RAM may hold
 * something else (QEMU does so only for a loadvm into a running machine).
 *
 * <p>With multifd, {@code channels} threads ({@code mig/dst/recv_n}, QEMU's multifd receive
 * threads) read in parallel, each on a file descriptor of its own (O_DIRECT under direct-io);
 * the loading thread hands them the reads, does every {@code channels + 1}-th read itself on a
 * file descriptor of its own (it would only wait otherwise), and waits for all of a block's
 * before going on. A
 * failed or short read fails the load naming the block, the page and the file offset.
 *
 * <p>Threads: {@link #loadBlock} runs on the loading thread ({@code mig/dst/main}, or
 * {@code main} for a snapshot); reads are handed over whole through each channel's queue.
 */
public final class MappedRamLoader implements AutoCloseable {
    public static final String THREAD_PREFIX = "mig/dst/recv_";
    private static final int QUEUE_READS = 16;
    /**
     * The most one read takes: 8 MiB, a plain sequential read's size (QEMU reads
     * {@link MappedRamHeader#LOAD_BUF_SIZE}, 1 MiB; the file's layout does not depend on it).
     */
    static final int READ_BYTES = 8 << 20;

    private record Read(RamBlock block, long offset, long length, long filePos) {}

    private final MappedRamOptions opts;
    private final FileChannel main;
    private final FileChannelWorkers<Read> channels;
    /** Pages read from the file and pages the bitmaps left out, so far (read by progress displays). */
    private final AtomicLong pagesRead;
    private final AtomicLong pagesAbsent;

    private MappedRamLoader(MappedRamOptions opts, FileChannel main, FileChannelWorkers<Read> channels, AtomicLong pagesRead,
                            AtomicLong pagesAbsent) {
        this.opts = opts;
        this.main = main;
        this.channels = channels;
        this.pagesRead = pagesRead;
        this.pagesAbsent = pagesAbsent;
    }

    /**
     * Opens the channels' file descriptors and starts their threads. {@code main} is the stream's
     * own file, its position the stream's. {@code pagesRead} and {@code pagesAbsent} count the
     * pages read from the file and those its bitmaps leave out, as loading goes.
     */
    public static MappedRamLoader open(MappedRamOptions opts, FileChannel main, AtomicLong pagesRead,
                                       AtomicLong pagesAbsent) throws IOException {
        if (main == null) {
            throw new IOException("mapped-ram reads pages from fixed places of a file: its migration needs a plain file:"
                    + " connection");
        }
        FileChannelWorkers<Read> chans = FileChannelWorkers.start("mapped-ram loader", THREAD_PREFIX, opts.channels(),
                QUEUE_READS, i -> DirectIo.open(opts.path(), opts.directIo(), StandardOpenOption.READ), MappedRamLoader::read);
        MappedRamLoader l = new MappedRamLoader(opts, main, chans, pagesRead, pagesAbsent);
        if (opts.channels() > 0) {
            try {
                l.own = DirectIo.open(opts.path(), opts.directIo(), StandardOpenOption.READ);
            } catch (IOException e) {
                l.close();
                throw e;
            }
        } else {
            l.own = main; // no channels: every read is the loading thread's, on the stream's file
        }
        return l;
    }

    /**
     * Called on the loading thread right after block {@code b}'s entry: reads its header from
     * {@code f}, checks it, loads its pages and moves {@code f} past its region. With
     * {@code zeroAbsent}, pages the bitmap leaves out are made zero.
     *
     * @throws StreamFormatException naming the block and the offset when the header, the bitmap
     *     or the file does not fit the block
     */
    public void loadBlock(MigrationFile f, RamBlock b, boolean zeroAbsent) throws IOException {
        long at = f.position();
        long fileAt = opts.offset() + at;
        String block = "'" + SectionHeader.display(b.name()) + "'";
        MappedRamHeader h = MappedRamHeader.read(f);
        long afterHeader = fileAt + MappedRamHeader.SIZE;
        String where = String.format("RAM block %s, mapped-ram header at file offset 0x%x: ", block, fileAt);
        if (h.version() > MappedRamHeader.VERSION) {
            throw new StreamFormatException(where + String.format("Migration mapped-ram capability version not supported"
                    + " (expected <= %d, got %d)", MappedRamHeader.VERSION, h.version()), at);
        }
        if (h.pageSize() != RamBlock.PAGE_SIZE) {
            throw new StreamFormatException(where + String.format("page size %d, this machine's is %d", h.pageSize(),
                    RamBlock.PAGE_SIZE), at);
        }
        if (h.pagesOffset() % RamBlock.PAGE_SIZE != 0) {
            throw new StreamFormatException(where + String.format("Error reading ramblock %s pages, region has bad alignment"
                    + " (pages offset 0x%x)", block, h.pagesOffset()), at);
        }
        long pages = b.pageCount();
        long bitmapBytes = MappedRamHeader.bitmapBytes(pages);
        long size = main.size();
        checkRegion(where, "bitmap", h.bitmapOffset(), bitmapBytes, afterHeader, size, at);
        checkRegion(where, "pages", h.pagesOffset(), b.usedLength(), afterHeader, size, at);
        if (h.bitmapOffset() < h.pagesOffset() + b.usedLength() && h.pagesOffset() < h.bitmapOffset() + bitmapBytes) {
            throw new StreamFormatException(where + String.format("its bitmap [0x%x, +0x%x) overlaps its pages [0x%x, +0x%x)",
                    h.bitmapOffset(), bitmapBytes, h.pagesOffset(), b.usedLength()), at);
        }
        long[] bitmap = readBitmap(where, h.bitmapOffset(), bitmapBytes, at);
        long last = pages - 1;
        int lastWord = (int) (last >>> 6);
        long beyond = lastWord < bitmap.length ? bitmap[lastWord] & (-2L << (last & 63)) : 0;
        if (beyond != 0) {
            long bit = ((long) lastWord << 6) + Long.numberOfTrailingZeros(beyond);
            throw new StreamFormatException(where + String.format("its bitmap at file offset 0x%x marks page %d, beyond the"
                    + " block's %d pages", h.bitmapOffset(), bit, pages), at);
        }
        java.util.BitSet present = java.util.BitSet.valueOf(bitmap);
        loadPages(b, block, h, present, zeroAbsent);
        long skip = h.pagesOffset() + b.usedLength() - (opts.offset() + f.position());
        f.seekForward(main, skip);
    }

    private static void checkRegion(String where, String what, long offset, long length, long afterHeader, long fileSize,
                                    long at) throws StreamFormatException {
        if (offset < afterHeader || offset > fileSize || length > fileSize - offset) {
            String why = offset < afterHeader ? String.format("starts before the end of its header at 0x%x", afterHeader)
                    : String.format("does not fit in the file of 0x%x bytes (truncated?)", fileSize);
            throw new StreamFormatException(where + String.format("its %s at file offset 0x%x (+0x%x bytes) %s",
                    what, offset, length, why), at);
        }
    }

    private long[] readBitmap(String where, long offset, long bytes, long at) throws IOException {
        ByteBuffer buf = ByteBuffer.allocate((int) bytes);
        long pos = offset;
        while (buf.hasRemaining()) {
            int n = main.read(buf, pos);
            if (n < 0) {
                throw new StreamFormatException(where + String.format("Error reading dirty bitmap: the file ends at 0x%x",
                        pos), at);
            }
            pos += n;
        }
        return MappedRamHeader.decodeBitmap(buf.flip());
    }

    /** Reads every marked page; zeroes the others when asked. */
    private void loadPages(RamBlock b, String block, MappedRamHeader h, java.util.BitSet present, boolean zeroAbsent)
            throws IOException {
        int pages = (int) b.pageCount();
        int clear = 0;
        for (int set = present.nextSetBit(0); ; set = present.nextSetBit(clear)) {
            int runEnd = set < 0 ? pages : set;
            if (zeroAbsent) {
                for (int p = clear; p < runEnd; p++) {
                    if (!ZeroPages.isZeroPage(b.memory(), (long) p << RamBlock.PAGE_BITS)) {
                        b.page(p).fill((byte) 0);
                    }
                }
            }
            pagesAbsent.addAndGet(runEnd - clear);
            if (set < 0) {
                break;
            }
            clear = present.nextClearBit(set);
            if (clear > pages) {
                clear = pages;
            }
            long offset = (long) set << RamBlock.PAGE_BITS;
            long end = (long) clear << RamBlock.PAGE_BITS;
            while (offset < end) {
                long n = Math.min(READ_BYTES, end - offset);
                submit(new Read(b, offset, n, h.pagesOffset() + offset), block);
                pagesRead.addAndGet(n >>> RamBlock.PAGE_BITS);
                offset += n;
            }
            if (clear >= pages) {
                break;
            }
        }
        awaitReads(block);
    }

    private int next;
    /**
     * Where the loading thread reads: with channels a file descriptor of its own (O_DIRECT under
     * direct-io), without them the stream's file {@link #main}.
     */
    private FileChannel own;

    private void submit(Read r, String block) throws IOException {
        if (next == channels.size()) {
            // The loading thread's turn: each read without channels, else its share (it would
            // only wait for the channels otherwise).
            next = 0;
            try {
                read(own, r);
            } catch (IOException e) {
                throw new StreamFormatException(e.getMessage(), -1);
            }
            return;
        }
        try {
            channels.submit(next, r);
        } catch (IOException e) {
            throw failed(e);
        }
        next = (next + 1) % (channels.size() + 1);
    }

    private void awaitReads(String block) throws IOException {
        try {
            channels.awaitAll();
        } catch (IOException e) {
            throw failed(e);
        }
    }

    /** A channel's read failure as the load's error (it names the block, page and offset); else {@code e}. */
    private IOException failed(IOException e) {
        IOException f = channels.failure();
        return f != null ? new StreamFormatException(f.getMessage(), -1) : e;
    }

    /** One read of consecutive pages straight into guest RAM; a short file names the block, page and offset. */
    private static void read(FileChannel file, Read r) throws IOException {
        MemorySegment dst = r.block().memory().asSlice(r.offset(), r.length());
        ByteBuffer buf = dst.asByteBuffer();
        long pos = r.filePos();
        while (buf.hasRemaining()) {
            int n = file.read(buf, pos);
            if (n < 0) {
                long page = r.offset() + buf.position();
                throw new IOException(String.format("mapped-ram RAM block '%s': failed to read page 0x%x from file offset"
                        + " 0x%x: the file ends there", SectionHeader.display(r.block().name()), page & -RamBlock.PAGE_SIZE,
                        pos));
            }
            pos += n;
        }
    }

    /** Stops the channels (a failed or abandoned load). Any thread. */
    public void shutdown() {
        channels.shutdown();
    }

    @Override
    public void close() {
        channels.close();
        if (own != null && own != main) {
            try {
                own.close();
            } catch (IOException ignored) {
                // the reads are over
            }
        }
    }
}
