package org.livemig.analyze;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.NavigableMap;
import java.util.TreeMap;

import org.livemig.stream.QemuStream;

/**
 * The guest RAM a stream leaves behind, block by block, kept sparse: only pages that are not
 * all zero are stored, each in an off-heap 4 KiB segment of one arena, so a multi-GiB guest whose
 * memory is mostly zero costs little and nothing of it sits on the Java heap. Pages filled with
 * one non-zero byte (ZERO records with a fill byte) are kept as that byte until written.
 *
 * <p>Not thread-safe: owned by the thread that runs the reader, then by whoever reads the result.
 * {@link #close()} frees all pages.
 */
public final class RamImage implements AutoCloseable {
    /** The x86 target page size, the default. */
    public static final int PAGE = QemuStream.TARGET_PAGE_SIZE;

    private final Arena arena = Arena.ofShared();
    private final Map<String, Block> blocks = new LinkedHashMap<>();
    private final ArrayDeque<MemorySegment> free = new ArrayDeque<>();
    private final int pageSize;
    private final long maxBytes;
    private long allocated;

    /**
     * @param pageSize target page size of the stream
     * @param maxBytes most bytes of page contents to keep off-heap
     */
    public RamImage(int pageSize, long maxBytes) {
        this.pageSize = pageSize;
        this.maxBytes = maxBytes;
    }

    public int pageSize() {
        return pageSize;
    }

    /** One RAM block: its name as in the stream, its used length, and its stored pages. */
    public static final class Block {
        private final String name;
        private final long usedLength;
        /** Page offset to a MemorySegment (page contents) or a Byte (page filled with that byte). */
        private final NavigableMap<Long, Object> pages = new TreeMap<>();

        Block(String name, long usedLength) {
            this.name = name;
            this.usedLength = usedLength;
        }

        public String name() {
            return name;
        }

        public long usedLength() {
            return usedLength;
        }

        /** Number of pages that are not all zero. */
        public int storedPages() {
            return pages.size();
        }
    }

    public Map<String, Block> blocks() {
        return Collections.unmodifiableMap(blocks);
    }

    public Block block(String name) {
        return blocks.get(name);
    }

    Block define(String name, long usedLength) {
        return blocks.computeIfAbsent(name, n -> new Block(n, usedLength));
    }

    /** Bytes of off-heap memory holding pages. */
    public long allocatedBytes() {
        return allocated;
    }

    /** Sets a page to all zero. */
    void zero(Block b, long offset) {
        Object old = b.pages.remove(offset);
        if (old instanceof MemorySegment s) {
            free.push(s);
        }
    }

    /** Sets a page to {@code fill} in every byte. */
    void fill(Block b, long offset, int fill) {
        if (fill == 0) {
            zero(b, offset);
            return;
        }
        Object old = b.pages.put(offset, (byte) fill);
        if (old instanceof MemorySegment s) {
            free.push(s);
        }
    }

    /**
     * The page's segment for writing, holding its current contents (allocated and filled if the
     * page was zero or a fill page). Fails when the image would exceed its byte limit.
     */
    MemorySegment pageForWrite(Block b, long offset) throws RamLimitException {
        Object cur = b.pages.get(offset);
        if (cur instanceof MemorySegment s) {
            return s;
        }
        MemorySegment s = free.poll();
        if (s == null) {
            if (allocated + pageSize > maxBytes) {
                throw new RamLimitException(maxBytes);
            }
            s = arena.allocate(pageSize, 64);
            allocated += pageSize;
        }
        s.fill(cur instanceof Byte f ? f : (byte) 0);
        b.pages.put(offset, s);
        return s;
    }

    /** Copies a page's current contents into {@code dst} (one page). */
    public void readPage(Block b, long offset, MemorySegment dst) {
        Object cur = b.pages.get(offset);
        if (cur instanceof MemorySegment s) {
            MemorySegment.copy(s, 0, dst, 0, pageSize);
        } else {
            dst.asSlice(0, pageSize).fill(cur instanceof Byte f ? f : (byte) 0);
        }
    }

    /** Forgets a stored page whose bytes are all zero (a PAGE record of zeros). */
    void dropIfZero(Block b, long offset) {
        if (b.pages.get(offset) instanceof MemorySegment s) {
            long words = pageSize / 8;
            for (long i = 0; i < words; i++) {
                if (s.getAtIndex(ValueLayout.JAVA_LONG_UNALIGNED, i) != 0) {
                    return;
                }
            }
            zero(b, offset);
        }
    }

    /** Forgets the pages in [start, start+length): a postcopy discard. */
    void discard(Block b, long start, long length) {
        NavigableMap<Long, Object> range = b.pages.subMap(start, true, start + length, false);
        for (Object o : range.values()) {
            if (o instanceof MemorySegment s) {
                free.push(s);
            }
        }
        range.clear();
    }

    /** Reads bytes of a block's final contents (for tests and tools). */
    public byte[] read(String block, long offset, int length) {
        Block b = blocks.get(block);
        if (b == null) {
            throw new IllegalArgumentException("no RAM block " + block);
        }
        byte[] out = new byte[length];
        for (int i = 0; i < length; ) {
            long addr = offset + i;
            long page = addr & -(long) pageSize;
            int in = (int) (addr - page);
            int n = Math.min(length - i, pageSize - in);
            Object cur = b.pages.get(page);
            if (cur instanceof MemorySegment s) {
                MemorySegment.copy(s, ValueLayout.JAVA_BYTE, in, out, i, n);
            } else if (cur instanceof Byte f) {
                java.util.Arrays.fill(out, i, i + n, f);
            }
            i += n;
        }
        return out;
    }

    /** Writes a block's final contents to {@code file} (sparse where the guest page is zero). */
    public void writeBlock(Block b, Path file) throws IOException {
        try (RandomAccessFile raf = new RandomAccessFile(file.toFile(), "rw");
             FileChannel ch = raf.getChannel()) {
            raf.setLength(0);
            raf.setLength(b.usedLength);
            MemorySegment fillPage = null;
            for (Map.Entry<Long, Object> e : b.pages.entrySet()) {
                long off = e.getKey();
                int n = (int) Math.min(pageSize, b.usedLength - off);
                if (n <= 0) {
                    continue;
                }
                MemorySegment src;
                if (e.getValue() instanceof MemorySegment s) {
                    src = s;
                } else {
                    if (fillPage == null) {
                        fillPage = Arena.ofAuto().allocate(pageSize);
                    }
                    fillPage.fill((Byte) e.getValue());
                    src = fillPage;
                }
                var buf = src.asSlice(0, n).asByteBuffer();
                long pos = off;
                while (buf.hasRemaining()) {
                    pos += ch.write(buf, pos);
                }
            }
        }
    }

    @Override
    public void close() {
        blocks.clear();
        free.clear();
        arena.close();
    }

    /** The image reached its byte limit. */
    static final class RamLimitException extends Exception {
        RamLimitException(long max) {
            super("guest RAM kept in memory would exceed " + max + " bytes");
        }
    }
}
