package org.livemig.analyze;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.NavigableMap;
import java.util.TreeMap;
import org.livemig.stream.SectionHeader;

/**
 * The guest RAM a stream leaves behind, block by block, never on the Java heap. Two backings:
 * <ul>
 * <li>in memory ({@link #inMemory}): each block is a sparse map of 256 KiB off-heap chunks,
 *     allocated on the first non-zero page written into them and counted against a byte limit,
 *     so a mostly-zero multi-GiB guest costs little;</li>
 * <li>in files ({@link #inDirectory}): each block is a sparse file of its used length, mapped
 *     into memory; pages go straight to the file, which is the block's extract.</li>
 * </ul>
 *
 * <p>Not thread-safe: owned by the thread that runs the reader, then handed to whoever reads the
 * result. {@link #close()} frees the memory (and unmaps and trims the files).
 */
public final class RamImage implements AutoCloseable {
    static final int CHUNK = 256 * 1024;

    private final int pageSize;
    private final long maxBytes;
    private final Path dir;
    private final Map<String, Block> blocks = new LinkedHashMap<>();
    private Arena arena;
    private long allocated;

    private RamImage(int pageSize, long maxBytes, Path dir) {
        this.pageSize = pageSize;
        this.maxBytes = maxBytes;
        this.dir = dir;
    }

    /** An image in off-heap memory holding at most {@code maxBytes} of chunks. */
    public static RamImage inMemory(int pageSize, long maxBytes) {
        return new RamImage(pageSize, maxBytes, null);
    }

    /** An image whose blocks are sparse files under {@code dir}, named as {@link #fileName} says. */
    public static RamImage inDirectory(int pageSize, Path dir) {
        return new RamImage(pageSize, Long.MAX_VALUE, dir);
    }

    public int pageSize() {
        return pageSize;
    }

    /** One RAM block: its name as in the stream, its used length, and its contents. */
    public static final class Block {
        private final String name;
        private final long usedLength;
        /** In memory: chunk index to chunk. */
        private final NavigableMap<Long, MemorySegment> chunks = new TreeMap<>();
        /** In files: the mapping (page-rounded) and the file. */
        private MemorySegment mapped;
        private Path file;

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

        /** The file holding the block, for an image in a directory. */
        public Path file() {
            return file;
        }
    }

    public Map<String, Block> blocks() {
        return Collections.unmodifiableMap(blocks);
    }

    public Block block(String name) {
        return blocks.get(name);
    }

    /** Off-heap bytes of chunks held (in-memory images). */
    public long allocatedBytes() {
        return allocated;
    }

    /** A block name as a relative path that cannot leave the extract directory. */
    public static String fileName(String raw) {
        String name = SectionHeader.display(raw);
        StringBuilder sb = new StringBuilder();
        for (String part : name.split("/")) {
            if (part.isEmpty()) {
                continue;
            }
            if (part.equals(".") || part.equals("..")) {
                part = "_" + part;
            }
            part = part.replace('\u0000', '_').replace('\\', '_');
            if (sb.length() > 0) {
                sb.append('/');
            }
            sb.append(part);
        }
        String s = sb.length() == 0 ? "_" : sb.toString();
        return s.equals("state.json") ? "ram-state.json" : s;
    }

    private Arena arena() {
        if (arena == null) {
            arena = Arena.ofShared();
        }
        return arena;
    }

    Block define(String name, long usedLength) throws IOException {
        Block b = blocks.get(name);
        if (b != null) {
            return b;
        }
        b = new Block(name, usedLength);
        if (dir != null) {
            Path f = dir.resolve(fileName(name));
            Files.createDirectories(f.getParent());
            long mapLength = (usedLength + pageSize - 1) / pageSize * pageSize;
            try (FileChannel ch = FileChannel.open(f, StandardOpenOption.CREATE, StandardOpenOption.READ,
                    StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
                b.mapped = ch.map(FileChannel.MapMode.READ_WRITE, 0, mapLength, arena());
            }
            b.file = f;
        }
        blocks.put(name, b);
        return b;
    }

    /** The page's memory for writing, holding its current contents. */
    MemorySegment pageForWrite(Block b, long offset) throws RamLimitException {
        if (b.mapped != null) {
            return b.mapped.asSlice(offset, pageSize);
        }
        long index = offset / CHUNK;
        MemorySegment c = b.chunks.get(index);
        if (c == null) {
            if (allocated + CHUNK > maxBytes) {
                throw new RamLimitException(maxBytes);
            }
            c = arena().allocate(CHUNK, 64);
            allocated += CHUNK;
            b.chunks.put(index, c);
        }
        return c.asSlice(offset % CHUNK, pageSize);
    }

    /** The page's current contents if they may be non-zero, or null when the page is surely zero. */
    private MemorySegment pageIfPresent(Block b, long offset) {
        if (b.mapped != null) {
            return b.mapped.asSlice(offset, pageSize);
        }
        MemorySegment c = b.chunks.get(offset / CHUNK);
        return c == null ? null : c.asSlice(offset % CHUNK, pageSize);
    }

    /** Sets a page to all zero. */
    void zero(Block b, long offset) {
        MemorySegment p = pageIfPresent(b, offset);
        if (p != null && !isZero(p)) {
            p.fill((byte) 0);
        }
    }

    /** Sets a page to {@code fill} in every byte. */
    void fill(Block b, long offset, int fill) throws RamLimitException {
        if (fill == 0) {
            zero(b, offset);
        } else {
            pageForWrite(b, offset).fill((byte) fill);
        }
    }

    /** Stores a page's contents (not writing anything for a zero page onto a zero page). */
    void store(Block b, long offset, MemorySegment page) throws RamLimitException {
        if (isZero(page)) {
            zero(b, offset);
        } else {
            pageForWrite(b, offset).copyFrom(page.asSlice(0, pageSize));
        }
    }

    /** Copies a page's current contents into {@code dst} (one page). */
    public void readPage(Block b, long offset, MemorySegment dst) {
        MemorySegment p = pageIfPresent(b, offset);
        if (p == null) {
            dst.asSlice(0, pageSize).fill((byte) 0);
        } else {
            MemorySegment.copy(p, 0, dst, 0, pageSize);
        }
    }

    /** Zeroes the pages in [start, start+length): a postcopy discard. */
    void discard(Block b, long start, long length) {
        if (b.mapped != null) {
            for (long off = start; off < start + length; off += pageSize) {
                zero(b, off);
            }
            return;
        }
        long first = start / CHUNK;
        long last = (start + length - 1) / CHUNK;
        if (length == 0) {
            return;
        }
        for (var e : b.chunks.subMap(first, true, last, true).entrySet()) {
            long chunkStart = e.getKey() * CHUNK;
            long from = Math.max(start, chunkStart) - chunkStart;
            long to = Math.min(start + length, chunkStart + CHUNK) - chunkStart;
            e.getValue().asSlice(from, to - from).fill((byte) 0);
        }
    }

    static boolean isZero(MemorySegment page) {
        long n = page.byteSize() / 8;
        for (long i = 0; i < n; i++) {
            if (page.getAtIndex(ValueLayout.JAVA_LONG_UNALIGNED, i) != 0) {
                return false;
            }
        }
        for (long i = n * 8; i < page.byteSize(); i++) {
            if (page.get(ValueLayout.JAVA_BYTE, i) != 0) {
                return false;
            }
        }
        return true;
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
            long chunkStart = addr / CHUNK * CHUNK;
            int in = (int) (addr - chunkStart);
            int n = Math.min(length - i, CHUNK - in);
            MemorySegment src = b.mapped != null ? b.mapped.asSlice(chunkStart, Math.min(CHUNK, b.mapped.byteSize() - chunkStart))
                    : b.chunks.get(addr / CHUNK);
            if (src != null) {
                MemorySegment.copy(src, ValueLayout.JAVA_BYTE, in, out, i, n);
            }
            i += n;
        }
        return out;
    }

    /**
     * Writes a block's final contents to {@code file} (sparse where the guest memory is zero).
     * For an image in a directory the block already is its file; it is copied if {@code file}
     * is another one.
     */
    public void writeBlock(Block b, Path file) throws IOException {
        if (b.file != null && b.file.toAbsolutePath().equals(file.toAbsolutePath())) {
            b.mapped.force();
            return;
        }
        try (RandomAccessFile raf = new RandomAccessFile(file.toFile(), "rw");
             FileChannel ch = raf.getChannel()) {
            raf.setLength(0);
            raf.setLength(b.usedLength);
            if (b.mapped != null) {
                write(ch, b.mapped.asSlice(0, b.usedLength), 0);
                return;
            }
            for (var e : b.chunks.entrySet()) {
                long off = e.getKey() * CHUNK;
                long n = Math.min(CHUNK, b.usedLength - off);
                if (n > 0 && !isZero(e.getValue())) {
                    write(ch, e.getValue().asSlice(0, n), off);
                }
            }
        }
    }

    private static void write(FileChannel ch, MemorySegment src, long pos) throws IOException {
        var buf = src.asByteBuffer();
        while (buf.hasRemaining()) {
            pos += ch.write(buf, pos);
        }
    }

    @Override
    public void close() {
        for (Block b : blocks.values()) {
            b.chunks.clear();
        }
        if (arena != null) {
            arena.close();
            arena = null;
        }
        for (Block b : blocks.values()) {
            if (b.file != null) {
                try (RandomAccessFile raf = new RandomAccessFile(b.file.toFile(), "rw")) {
                    raf.setLength(b.usedLength);
                } catch (IOException e) {
                    // the file keeps its page-rounded length; its contents are complete
                }
            }
        }
    }

    /** The image reached its byte limit. */
    static final class RamLimitException extends Exception {
        RamLimitException(long max) {
            super("guest RAM kept in memory would exceed " + max + " bytes");
        }
    }
}
