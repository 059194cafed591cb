package org.livemig.migration.ram;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
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
 * ({@code mig/dst/main}); {@link #shutdown} may come from any thread. The hand-over is
 * {@link PageWorkerPool}'s.
 */
final class DecompressThreads extends PageWorkerPool<DecompressThreads.Slot> {
    static final String THREAD_PREFIX = "mig/dst/decompress_";

    static final class Slot extends PageWorkerPool.Worker {
        final CompressedPageCodec.Decompressor decompressor = new CompressedPageCodec.Decompressor(RamBlock.PAGE_SIZE);
        final byte[] data = new byte[CompressedPageCodec.compressBound(RamBlock.PAGE_SIZE)];
        int length;
        RamBlock block;
        long offset;
        long recordAt;

        Slot(int id) {
            super(id);
        }
    }

    DecompressThreads(int threads) {
        super("decompress", workers("decompress", threads, Slot::new));
        start(THREAD_PREFIX);
    }

    /**
     * Reads the {@code len} bytes of a COMPRESS_PAGE record from {@code f} into an idle thread
     * (waiting for one) and lets it inflate them into the page at {@code offset} of {@code block}.
     * Called without the BQL; blocks on IO.
     *
     * @param recordAt the record's offset, for the error of a bad one
     */
    void submit(MigrationFile f, int len, RamBlock block, long offset, long recordAt) throws IOException {
        Slot s = idle(true);
        f.getBytes(s.data, 0, len);
        s.length = len;
        s.block = block;
        s.offset = offset;
        s.recordAt = recordAt;
        handOver(s);
    }

    /** Waits until every page handed over is in RAM. Throws the first bad record's error. */
    void awaitIdle() throws IOException {
        awaitAll();
    }

    /** A bad record's error is thrown again on the loading thread with its offset and section. */
    @Override
    IOException rethrown(IOException f) {
        return f instanceof StreamFormatException sfe
                ? new StreamFormatException(stripOffset(sfe), sfe.offset(), sfe.section(), sfe)
                : super.rethrown(f);
    }

    /** The message without the " (at byte offset ...)" a StreamFormatException adds itself. */
    private static String stripOffset(StreamFormatException e) {
        String m = e.getMessage();
        int cut = m.indexOf(" (at byte offset ");
        return cut >= 0 ? m.substring(0, cut) : m;
    }

    /** {@code mig/dst/decompress_n}: inflates one record, and writes the page only when it is whole. */
    @Override
    void work(Slot s) throws IOException {
        String err = s.decompressor.decompress(s.data, 0, s.length);
        if (err != null) {
            throw new StreamFormatException(String.format("compressed page 0x%x of block '%s': %s",
                    s.offset, s.block.name(), err), s.recordAt);
        }
        MemorySegment.copy(s.decompressor.page(), 0, s.block.memory(), ValueLayout.JAVA_BYTE, s.offset,
                RamBlock.PAGE_SIZE);
    }

    @Override
    void release(Slot s) {
        s.decompressor.close();
    }
}
