package org.livemig.stream;

import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;

/**
 * Reusable {@link ByteBuffer} views of pages of a (RAM) segment, for the JDK's and zstd's
 * buffer-based streams: one buffer per 1 GiB window of the segment, and one view of it re-pointed
 * at each page, so that inflating a gigabyte of pages allocates nothing per page. The view's limit
 * is the page's end, which is how a decoder never writes past a page.
 *
 * <p>Not thread-safe: one per decoder.
 */
final class PageWindows {
    private static final int WINDOW_BITS = 30;

    private MemorySegment segment;
    private ByteBuffer[] windows;
    private ByteBuffer view;
    private ByteBuffer viewOf;

    /** A view of {@code length} bytes at {@code offset} of {@code ram}, position at the start, limit at the end. */
    ByteBuffer page(MemorySegment ram, long offset, int length) {
        if (ram != segment) {
            segment = ram;
            windows = new ByteBuffer[(int) ((ram.byteSize() + (1L << WINDOW_BITS) - 1) >>> WINDOW_BITS)];
            view = null;
            viewOf = null;
        }
        int index = (int) (offset >>> WINDOW_BITS);
        int at = (int) (offset & ((1L << WINDOW_BITS) - 1));
        ByteBuffer w = windows[index];
        if (w == null) {
            long start = (long) index << WINDOW_BITS;
            w = ram.asSlice(start, Math.min(1L << WINDOW_BITS, ram.byteSize() - start)).asByteBuffer();
            windows[index] = w;
        }
        if (at + length > w.capacity()) {
            return ram.asSlice(offset, length).asByteBuffer(); // across two windows: a view of its own
        }
        if (viewOf != w) {
            view = w.duplicate();
            viewOf = w;
        }
        view.limit(at + length).position(at);
        return view;
    }
}
