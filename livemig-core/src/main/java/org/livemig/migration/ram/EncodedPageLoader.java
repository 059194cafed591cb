package org.livemig.migration.ram;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.livemig.memory.RamBlock;
import org.livemig.stream.CompressedPageCodec;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.StreamFormatException;
import org.livemig.stream.XbzrleCodec;

/**
 * The destination's half of XBZRLE and of the {@code compress} capability: the payloads of XBZRLE
 * and COMPRESS_PAGE records, after the RAM loader has read and checked their header and page.
 * XBZRLE deltas are applied in place on the loading thread (any destination takes them, as
 * QEMU's does); compressed pages go to the decompress threads, which need the {@code compress}
 * capability here as in QEMU ({@link #acceptCompressedPages}).
 *
 * <p>A compressed page reaches RAM some time before its section's end ({@link #awaitPages}), so
 * a section must not carry the same page twice: as in QEMU, every source sends a page at most
 * once a pass and ends its section before the next pass.
 *
 * <p>Owned by the loading thread; {@link #shutdown} from any thread.
 */
public final class EncodedPageLoader implements AutoCloseable {
    private final byte[] delta = new byte[RamBlock.PAGE_SIZE];
    private volatile DecompressThreads threads;
    /** For pages placed whole in postcopy: inflated here, not by the threads. */
    private CompressedPageCodec.Decompressor inline;
    private byte[] inlineData;

    /** With the compress capability: COMPRESS_PAGE records are taken, inflated on {@code decompressThreads} threads. */
    public void acceptCompressedPages(int decompressThreads) {
        if (threads == null) {
            threads = new DecompressThreads(decompressThreads);
        }
    }

    public boolean acceptsCompressedPages() {
        return threads != null;
    }

    /**
     * Called without the BQL; blocks on IO. An XBZRLE record's payload, applied in place to the
     * page at {@code offset} of {@code memory}: the block's RAM, or what stands for it (a COLO
     * secondary's cache).
     *
     * @throws StreamFormatException naming the record's offset and page on a bad encoding, length or delta
     */
    public void loadXbzrle(MigrationFile f, MemorySegment memory, RamBlock block, long offset, long recordAt)
            throws IOException {
        int len = XbzrleCodec.readPayload(f, delta, RamBlock.PAGE_SIZE);
        String err = XbzrleCodec.decode(delta, len, memory, offset, RamBlock.PAGE_SIZE);
        if (err != null) {
            throw new StreamFormatException(String.format("XBZRLE record for page 0x%x of block '%s': %s",
                    offset, block.name(), err), recordAt);
        }
    }

    /**
     * A COMPRESS_PAGE record's payload: its length is checked, its data handed to a decompress
     * thread, which writes the page later ({@link #awaitPages}). Called without the BQL; blocks on IO.
     */
    public void loadCompressed(MigrationFile f, RamBlock block, long offset, long recordAt) throws IOException {
        requireCompress(block, offset, recordAt);
        int len = CompressedPageCodec.readLength(f, RamBlock.PAGE_SIZE);
        threads.submit(f, len, block, offset, recordAt);
    }

    /** As {@link #loadCompressed}, inflated here into {@code page} (postcopy places pages whole). */
    public void loadCompressedInto(MigrationFile f, MemorySegment page, RamBlock block, long offset, long recordAt)
            throws IOException {
        requireCompress(block, offset, recordAt);
        int len = CompressedPageCodec.readLength(f, RamBlock.PAGE_SIZE);
        if (inline == null) {
            inline = new CompressedPageCodec.Decompressor(RamBlock.PAGE_SIZE);
            inlineData = new byte[CompressedPageCodec.compressBound(RamBlock.PAGE_SIZE)];
        }
        byte[] data = inlineData;
        f.getBytes(data, 0, len);
        String err = inline.decompress(data, 0, len);
        if (err != null) {
            throw new StreamFormatException(String.format("compressed page 0x%x of block '%s': %s",
                    offset, block.name(), err), recordAt);
        }
        MemorySegment.copy(inline.page(), 0, page, ValueLayout.JAVA_BYTE, 0, RamBlock.PAGE_SIZE);
    }

    private void requireCompress(RamBlock block, long offset, long recordAt) throws StreamFormatException {
        if (threads == null) {
            // QEMU 7.2's destination refuses them too without the capability.
            throw new StreamFormatException(String.format("unexpected compressed page 0x%x of block '%s': the compress"
                    + " capability is off on this destination", offset, block.name()), recordAt);
        }
    }

    /** At a RAM section's end: every compressed page handed over is in RAM, or the first bad one is thrown. */
    public void awaitPages() throws IOException {
        if (threads != null) {
            threads.awaitIdle();
        }
    }

    /** Unblocks a wait for the decompress threads (cancel, yank, failure); any thread. */
    public void shutdown() {
        DecompressThreads t = threads;
        if (t != null) {
            t.shutdown();
        }
    }

    @Override
    public void close() {
        if (threads != null) {
            threads.close();
        }
        if (inline != null) {
            inline.close();
        }
    }
}
