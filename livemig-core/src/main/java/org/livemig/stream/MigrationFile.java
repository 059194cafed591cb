package org.livemig.stream;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.Channels;
import java.nio.channels.GatheringByteChannel;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.ScatteringByteChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.IdentityHashMap;
import java.util.Map;
import java.util.Objects;

/**
 * QEMU's QEMUFile in Java: a buffered, big-endian reader or writer over one channel.
 *
 * <p>One direction per instance. The first IO error sticks: every later call fails with it and
 * writes become no-ops, so a caller may write a whole section and check once. Byte counters give
 * the stream offset of every read and write, which errors report.
 *
 * <p>Page payloads never pass through a {@code byte[]}: {@link #putRam} queues a view of guest
 * RAM beside the buffered header bytes and both go out in one gathering write.
 * {@link #readInto} copies what the (direct) read buffer already holds into the destination
 * segment and reads a large remainder straight into it. A reader cannot do better on one stream:
 * where a payload goes is in the header before it, so reading payloads straight into guest RAM
 * would take a system call per page. {@code livemig bench precopy} measures that beside its
 * baseline: on the 2-core machine of the benchmarks a raw copy of 1 GiB over a Unix socket read
 * 4 KiB at a time took 0.79 s and 0.75 CPU-s of the receiver, read 8 MiB at a time 0.13 s and
 * 0.12 CPU-s; a whole migration of 1 GiB over it, buffer copy included, takes 0.3-0.35 s.
 * (A multifd packet lists its pages before their data, so its channel reads them with
 * {@link #readInto(MemorySegment, long, long)}, which takes what is buffered and reads the rest
 * straight into RAM.)
 *
 * <p>Not thread-safe: owned by one migration thread at a time (handed over with the channel).
 */
public final class MigrationFile implements AutoCloseable {
    /** Reader buffer: large, so that a read system call brings in many pages at once. */
    private static final int READ_BUFFER_SIZE = 1 << 20;
    /** Writer buffer: holds only headers and small fields between queued page views. */
    private static final int WRITE_BUFFER_SIZE = 256 * 1024;
    /** Linux's IOV_MAX. */
    private static final int MAX_IOV = 1024;
    /** Flush queued page views once this many bytes are pending. */
    private static final int MAX_PENDING = 2 << 20;
    /** Room kept for urgent bytes (a section of a few requested pages) so that no write splits them. */
    private static final int URGENT_IOV = 64;
    private static final int URGENT_BUFFERED = 8 << 10;
    private static final int URGENT_BYTES = 256 << 10;
    /** Rate-limit window, as QEMU's BUFFER_DELAY. */
    private static final long RATE_WINDOW_NANOS = 100_000_000L;

    private final ReadableByteChannel in;
    private final WritableByteChannel out;
    private final ByteBuffer buf;
    private final ByteBuffer[] iov = new ByteBuffer[MAX_IOV];
    /*
     * Writer: the iov entries are reusable views, one of buf and one of RAM per slot, re-pointed
     * (position, limit) for each entry; so queuing a page record allocates nothing. A gigabyte
     * of pages is a quarter of a million records: with a new buffer for each header and each
     * page, the source made about 45 MiB of garbage a GiB, and on the machine of the benchmarks
     * the young collections it caused paused the migration thread 5-12 ms each, once or twice
     * a GiB (a larger young generation, fresh memory to fault in, made the migration slower).
     */
    private final ByteBuffer[] bufViews = new ByteBuffer[MAX_IOV];
    private final ByteBuffer[] ramViews = new ByteBuffer[MAX_IOV];
    /** The window each of {@link #ramViews} is a duplicate of. */
    private final ByteBuffer[] ramViewWindows = new ByteBuffer[MAX_IOV];
    /** Buffers over RAM segments queued with {@link #putRam}, per 1 GiB window (a buffer spans less than 2 GiB). */
    private final Map<MemorySegment, ByteBuffer[]> ramWindows = new IdentityHashMap<>();
    /** Reader: the whole read buffer as a segment, made once (pages are copied out of it). */
    private final MemorySegment bufMemory;
    private int iovCount;
    private long iovBytes;
    /** Start in {@link #buf} of bytes not yet queued in {@link #iov}. */
    private int unqueuedStart;
    private long position;
    private IOException error;
    private boolean eof;

    /*
     * Writer, urgent bytes (postcopy without preempt: a page a vCPU waits for): the iov index
     * where the first self-contained unit (a section) still queued starts, -1 when the queue
     * starts inside one; and the index where the urgent bytes being written start, -1 outside.
     */
    private int unitStart = -1;
    private int urgentFrom = -1;

    private long rateLimitBytesPerSec;
    private long rateWindowStart = System.nanoTime();
    private long rateWindowBytes;

    private MigrationFile(ReadableByteChannel in, WritableByteChannel out) {
        this.in = in;
        this.out = out;
        this.buf = ByteBuffer.allocateDirect(in != null ? READ_BUFFER_SIZE : WRITE_BUFFER_SIZE).order(ByteOrder.BIG_ENDIAN);
        this.bufMemory = in != null ? MemorySegment.ofBuffer(buf.duplicate().clear()) : null;
        if (in != null) {
            buf.limit(0);
        }
    }

    public static MigrationFile forReading(ReadableByteChannel channel) {
        return new MigrationFile(Objects.requireNonNull(channel), null);
    }

    public static MigrationFile forWriting(WritableByteChannel channel) {
        return new MigrationFile(null, Objects.requireNonNull(channel));
    }

    /** A reader over bytes in memory (a postcopy package, a COLO device-state buffer, a test). */
    public static MigrationFile ofBytes(byte[] bytes) {
        return forReading(Channels.newChannel(new java.io.ByteArrayInputStream(bytes)));
    }

    /** A writer into memory; take the bytes with {@link #toByteArray()} after {@link #flush()}. */
    public static MigrationFile toMemory() {
        return forWriting(new MemoryChannel());
    }

    public boolean isWriter() {
        return out != null;
    }

    /** Bytes read or written so far: the stream offset of the next byte. */
    public long position() {
        return position;
    }

    /** The first error seen, or null. */
    public IOException error() {
        return error;
    }

    /** Records an error unless one is already recorded (the first error sticks). */
    public void setError(IOException e) {
        if (error == null) {
            error = e;
        }
    }

    private void checkError() throws IOException {
        if (error != null) {
            throw error;
        }
    }

    // ---------------------------------------------------------------- writing

    public void putByte(int v) throws IOException {
        ensureRoom(1);
        buf.put((byte) v);
        position += 1;
    }

    public void putBe16(int v) throws IOException {
        ensureRoom(2);
        buf.putShort((short) v);
        position += 2;
    }

    public void putBe32(int v) throws IOException {
        ensureRoom(4);
        buf.putInt(v);
        position += 4;
    }

    public void putBe64(long v) throws IOException {
        ensureRoom(8);
        buf.putLong(v);
        position += 8;
    }

    public void putBytes(byte[] b) throws IOException {
        putBytes(b, 0, b.length);
    }

    public void putBytes(byte[] b, int off, int len) throws IOException {
        while (len > 0) {
            ensureRoom(1);
            int n = Math.min(len, buf.remaining());
            buf.put(b, off, n);
            off += n;
            len -= n;
            position += n;
        }
    }

    /**
     * Copies {@code length} bytes of {@code src} at {@code offset} into the stream now, straight
     * into the write buffer: for bytes that change right after (a cache slot, a scratch page),
     * which {@link #putRam} must not be given.
     */
    public void putCopy(MemorySegment src, long offset, int length) throws IOException {
        while (length > 0) {
            ensureRoom(1);
            int n = Math.min(length, buf.remaining());
            MemorySegment.copy(src, offset, MemorySegment.ofBuffer(buf), 0, n);
            buf.position(buf.position() + n);
            offset += n;
            length -= n;
            position += n;
        }
    }

    /** Writes a counted string: u8 length, then the bytes (at most 255). */
    public void putCountedString(String s) throws IOException {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        if (b.length > QemuStream.MAX_COUNTED_STRING) {
            throw new IllegalArgumentException("counted string longer than 255 bytes: " + s);
        }
        putByte(b.length);
        putBytes(b);
    }

    /** RAM windows of one buffer each: 1 GiB. */
    private static final int RAM_WINDOW_BITS = 30;
    /** RAM segments whose windows are kept; more (not a migration's pattern) start the cache over. */
    private static final int MAX_RAM_SEGMENTS = 64;

    /**
     * Queues {@code length} bytes of {@code ram} at {@code offset} to be written after everything
     * put so far, without copying them: a view of them joins the gathering write. {@code ram} is
     * a long-lived segment (a RAM block's memory), seen through reusable buffers, so this
     * allocates nothing. It must stay open until the next {@link #flush()}; its bytes may change
     * meanwhile (a page dirtied again is sent again in a later pass).
     */
    public void putRam(MemorySegment ram, long offset, int length) throws IOException {
        checkError();
        queueBuffered();
        if (!extendLastRamView(ram, offset, length)) {
            if (iovCount == MAX_IOV) {
                flushQueued();
            }
            iov[iovCount] = ramView(iovCount, ram, offset, length);
            iovCount++;
        }
        iovBytes += length;
        position += length;
        if (iovBytes >= MAX_PENDING || iovCount == MAX_IOV) {
            flushQueued();
        }
    }

    /**
     * Grows the last queued entry over the next {@code length} bytes when it is a view of the
     * same RAM window ending at {@code offset}: a multifd packet's adjacent pages go to the
     * kernel as one range instead of one per page.
     */
    private boolean extendLastRamView(MemorySegment ram, long offset, int length) {
        int last = iovCount - 1;
        if (last < 0 || last < urgentFrom || iov[last] != ramViews[last]) {
            return false;
        }
        ByteBuffer[] windows = ramWindows.get(ram);
        long index = offset >>> RAM_WINDOW_BITS;
        if (windows == null || windows[(int) index] != ramViewWindows[last]) {
            return false;
        }
        int at = (int) (offset & ((1L << RAM_WINDOW_BITS) - 1));
        ByteBuffer v = ramViews[last];
        if (v.limit() != at || at + length > v.capacity()) {
            return false;
        }
        v.limit(at + length);
        return true;
    }

    private ByteBuffer ramView(int slot, MemorySegment ram, long offset, int length) {
        ByteBuffer window = ramWindow(ram, offset >>> RAM_WINDOW_BITS);
        int at = (int) (offset & ((1L << RAM_WINDOW_BITS) - 1));
        if (at + length > window.capacity()) {
            return ram.asSlice(offset, length).asByteBuffer(); // across two windows: a view of its own
        }
        ByteBuffer v = ramViews[slot];
        if (ramViewWindows[slot] != window) {
            v = window.duplicate();
            ramViews[slot] = v;
            ramViewWindows[slot] = window;
        }
        v.limit(at + length).position(at);
        return v;
    }

    private ByteBuffer ramWindow(MemorySegment ram, long index) {
        ByteBuffer[] windows = ramWindows.get(ram);
        if (windows == null) {
            if (ramWindows.size() >= MAX_RAM_SEGMENTS) {
                ramWindows.clear();
            }
            windows = new ByteBuffer[(int) ((ram.byteSize() + (1L << RAM_WINDOW_BITS) - 1) >>> RAM_WINDOW_BITS)];
            ramWindows.put(ram, windows);
        }
        ByteBuffer w = windows[(int) index];
        if (w == null) {
            long start = index << RAM_WINDOW_BITS;
            w = ram.asSlice(start, Math.min(1L << RAM_WINDOW_BITS, ram.byteSize() - start)).asByteBuffer();
            windows[(int) index] = w;
        }
        return w;
    }

    /**
     * Marks the start of a self-contained unit of the stream (a section that names its block in
     * its first record): urgent bytes put later may go out ahead of it and of every queued unit
     * after it. Only the first mark in the queue counts; a write that sends the queue clears it.
     */
    public void markUnitStart() throws IOException {
        checkError();
        if (unitStart < 0) {
            queueBuffered();
            if (iovCount == MAX_IOV) {
                flushQueued(); // a full list takes no more buffered bytes
            }
            unitStart = iovCount;
        }
    }

    /**
     * Starts urgent bytes, a whole unit: what is put until {@link #endUrgent} goes out ahead of
     * the units queued since {@link #markUnitStart}, at the next write. Bytes already handed to
     * the channel are not overtaken (one stream keeps its order).
     */
    public void beginUrgent() throws IOException {
        checkError();
        if (urgentFrom >= 0) {
            throw new IllegalStateException("urgent bytes already begun");
        }
        // Room for a few urgent records, so that no write sends the queue in their middle.
        if (iovCount + URGENT_IOV > MAX_IOV || buf.remaining() < URGENT_BUFFERED || iovBytes + URGENT_BYTES >= MAX_PENDING) {
            queueBuffered();
            flushQueued();
        }
        queueBuffered();
        urgentFrom = iovCount;
    }

    /**
     * Ends urgent bytes: moves them ahead of the queued units (after earlier urgent bytes).
     * Returns whether they overtook anything queued.
     */
    public boolean endUrgent() throws IOException {
        if (urgentFrom < 0) {
            throw new IllegalStateException("endUrgent without beginUrgent");
        }
        int from = urgentFrom;
        urgentFrom = -1;
        queueBuffered();
        int n = iovCount - from;
        if (unitStart < 0 || unitStart >= from || n == 0) {
            if (iovCount == MAX_IOV) {
                flushQueued();
            }
            return false;
        }
        ByteBuffer[] moved = Arrays.copyOfRange(iov, from, iovCount);
        System.arraycopy(iov, unitStart, iov, unitStart + n, from - unitStart);
        System.arraycopy(moved, 0, iov, unitStart, n);
        // Views are reused by slot: every moved entry stays below iovCount, whose slots are the only ones re-pointed.
        unitStart += n;
        if (iovCount == MAX_IOV) {
            flushQueued();
        }
        return true;
    }

    /** Writes out everything buffered and queued. */
    public void flush() throws IOException {
        if (out == null) {
            return;
        }
        checkError();
        queueBuffered();
        flushQueued();
    }

    private void ensureRoom(int n) throws IOException {
        checkError();
        if (out == null) {
            throw new IllegalStateException("MigrationFile opened for reading");
        }
        if (buf.remaining() < n) {
            queueBuffered();
            flushQueued();
        }
    }

    /** Moves the bytes put since the last queueing into the iov list, as a slice of buf. */
    private void queueBuffered() throws IOException {
        int end = buf.position();
        if (end > unqueuedStart) {
            if (iovCount == MAX_IOV) {
                flushQueued();
                // flushQueued reset buf; nothing of it was lost because it was all queued
                return;
            }
            ByteBuffer v = bufViews[iovCount];
            if (v == null) {
                v = buf.duplicate();
                bufViews[iovCount] = v;
            }
            iov[iovCount++] = v.limit(end).position(unqueuedStart);
            iovBytes += end - unqueuedStart;
            unqueuedStart = end;
        }
    }

    private void flushQueued() throws IOException {
        checkError();
        try {
            if (iovCount > 0) {
                if (out instanceof GatheringByteChannel g) {
                    long remaining = iovBytes;
                    int first = 0;
                    while (remaining > 0) {
                        long n = g.write(iov, first, iovCount - first);
                        remaining -= n;
                        while (first < iovCount && !iov[first].hasRemaining()) {
                            first++;
                        }
                    }
                } else {
                    for (int i = 0; i < iovCount; i++) {
                        while (iov[i].hasRemaining()) {
                            out.write(iov[i]);
                        }
                    }
                }
                accountRate(iovBytes);
            }
        } catch (IOException e) {
            setError(e);
            throw e;
        } finally {
            for (int i = 0; i < iovCount; i++) {
                iov[i] = null;
            }
            iovCount = 0;
            iovBytes = 0;
            buf.clear();
            unqueuedStart = 0;
            unitStart = -1;
            if (urgentFrom >= 0) {
                urgentFrom = 0; // more urgent bytes than room: what went is sent, in order
            }
        }
    }

    // ---------------------------------------------------------------- rate limit

    /**
     * Limits writes to this many bytes per second (0: no limit), as QEMU's rate limiting. The
     * value is read unsigned, as QMP's size: one above {@code Long.MAX_VALUE} is no limit.
     */
    public void setRateLimit(long bytesPerSecond) {
        this.rateLimitBytesPerSec = Math.max(0, bytesPerSecond);
    }

    public long rateLimit() {
        return rateLimitBytesPerSec;
    }

    private void accountRate(long n) {
        rateWindowBytes += n;
    }

    /**
     * Counts {@code n} bytes sent on another channel against this file's rate limit (multifd:
     * QEMU's limit covers the main and multifd channels together). The writer's thread.
     */
    public void accountOtherChannel(long n) {
        rollRateWindow();
        accountRate(n);
    }

    /**
     * True while the bytes written in the current 100 ms window exceed the limit. The migration
     * thread then waits for {@link #nanosUntilRateWindowEnds()} before sending more.
     */
    public boolean rateLimitExceeded() {
        return rateBudgetBytes() == 0;
    }

    /** Bytes that may still go in the current window; {@code Long.MAX_VALUE} without a limit. */
    public long rateBudgetBytes() {
        if (rateLimitBytesPerSec <= 0) {
            return Long.MAX_VALUE;
        }
        rollRateWindow();
        long pending = iovBytes + (buf.position() - unqueuedStart);
        return Math.max(0, windowAllowance(rateLimitBytesPerSec) - rateWindowBytes - pending);
    }

    /**
     * Bytes one window allows at {@code bytesPerSecond} (positive). Divided, not multiplied
     * first: a limit such as 100 GiB/s times the window's nanoseconds overflows a long. At
     * least one byte, so that even 1 B/s sends a record per window instead of nothing for ever.
     */
    static long windowAllowance(long bytesPerSecond) {
        return Math.max(1, bytesPerSecond / (1_000_000_000L / RATE_WINDOW_NANOS));
    }

    public long nanosUntilRateWindowEnds() {
        long left = rateWindowStart + RATE_WINDOW_NANOS - System.nanoTime();
        return Math.max(0, left);
    }

    private void rollRateWindow() {
        long now = System.nanoTime();
        if (now - rateWindowStart >= RATE_WINDOW_NANOS) {
            rateWindowStart = now;
            rateWindowBytes = 0;
        }
    }

    // ---------------------------------------------------------------- reading

    /** Makes at least n (≤ buffer size) bytes available, or fails with a truncation error. */
    private void require(int n) throws IOException {
        checkError();
        if (in == null) {
            throw new IllegalStateException("MigrationFile opened for writing");
        }
        if (buf.remaining() >= n) {
            return;
        }
        if (!fill(n)) {
            throw truncated(n);
        }
    }

    /** Reads until n bytes are buffered; false at end of stream. */
    private boolean fill(int n) throws IOException {
        buf.compact();
        try {
            while (buf.position() < n) {
                int r;
                try {
                    r = in.read(buf);
                } catch (IOException e) {
                    setError(e);
                    throw e;
                }
                if (r < 0) {
                    eof = true;
                    return false;
                }
            }
            return true;
        } finally {
            buf.flip();
        }
    }

    private StreamFormatException truncated(long wanted) {
        StreamFormatException e = new StreamFormatException(
                "stream truncated: needed " + wanted + " more byte(s), " + buf.remaining() + " available",
                position);
        setError(e);
        return e;
    }

    /** True when no byte is left (reads ahead to find out). */
    public boolean atEof() throws IOException {
        checkError();
        if (buf.hasRemaining()) {
            return false;
        }
        return eof || !fill(1);
    }

    public int getByte() throws IOException {
        require(1);
        position += 1;
        return buf.get() & 0xFF;
    }

    public int getBe16() throws IOException {
        require(2);
        position += 2;
        return buf.getShort() & 0xFFFF;
    }

    public int getBe32() throws IOException {
        require(4);
        position += 4;
        return buf.getInt();
    }

    public long getBe64() throws IOException {
        require(8);
        position += 8;
        return buf.getLong();
    }

    /** Bytes a reader has buffered: what can be peeked at or read without a system call. */
    public int buffered() {
        return in == null ? 0 : buf.remaining();
    }

    /** The be64 at {@code ahead} bytes from the read position, which must lie within {@link #buffered()}. */
    public long peekBufferedBe64(int ahead) {
        return buf.getLong(buf.position() + ahead);
    }

    /** The byte at {@code ahead} bytes from the read position, which must lie within {@link #buffered()}. */
    public int peekBufferedByte(int ahead) {
        return buf.get(buf.position() + ahead) & 0xFF;
    }

    /** The next byte without consuming it, or -1 at end of stream. */
    public int peekByte() throws IOException {
        return peekByte(0);
    }

    /** The byte at {@code ahead} bytes from the read position (ahead smaller than the read buffer), or -1 past the end. */
    public int peekByte(int ahead) throws IOException {
        checkError();
        if (buf.remaining() <= ahead && !fill(ahead + 1)) {
            return -1;
        }
        return buf.get(buf.position() + ahead) & 0xFF;
    }

    public void getBytes(byte[] dst, int off, int len) throws IOException {
        while (len > 0) {
            if (!buf.hasRemaining()) {
                require(1);
            }
            int n = Math.min(len, buf.remaining());
            buf.get(dst, off, n);
            off += n;
            len -= n;
            position += n;
        }
    }

    /**
     * Reads {@code len} bytes into a new array. The caller must have checked {@code len}
     * against a limit: this is where a hostile length would become an allocation.
     */
    public byte[] getBytes(int len) throws IOException {
        byte[] b = new byte[len];
        getBytes(b, 0, len);
        return b;
    }

    public void skip(long len) throws IOException {
        while (len > 0) {
            if (!buf.hasRemaining()) {
                require(1);
            }
            int n = (int) Math.min(len, buf.remaining());
            buf.position(buf.position() + n);
            position += n;
            len -= n;
        }
    }

    /** Reads a counted string (u8 length + bytes) as ISO-8859-1-safe UTF-8 text. */
    public String getCountedString() throws IOException {
        int len = getByte();
        byte[] b = getBytes(len);
        return new String(b, StandardCharsets.UTF_8);
    }

    /** Fills {@code dst} entirely from the stream: buffered bytes first, then straight from the channel. */
    public void readInto(MemorySegment dst) throws IOException {
        readInto(dst, 0, dst.byteSize());
    }

    /**
     * Fills {@code length} bytes of {@code dst} at {@code offset} from the stream, as
     * {@link #readInto(MemorySegment)}; for a page of a RAM block's memory without a view of it.
     */
    public void readInto(MemorySegment dst, long offset, long length) throws IOException {
        checkError();
        long done = takeBuffered(dst, offset, length);
        if (done == length) {
            return;
        }
        if (length - done < buf.capacity() / 4) {
            // small remainder: refill the buffer rather than doing a tiny direct read
            while (done < length) {
                require(1);
                done += takeBuffered(dst, offset + done, length - done);
            }
            return;
        }
        ByteBuffer target = dst.asSlice(offset + done, length - done).asByteBuffer();
        try {
            while (target.hasRemaining()) {
                int r = in.read(target);
                if (r < 0) {
                    eof = true;
                    position += target.position();
                    throw truncated(target.remaining());
                }
            }
        } catch (StreamFormatException e) {
            throw e;
        } catch (IOException e) {
            setError(e);
            throw e;
        }
        position += length - done;
    }

    /**
     * Buffers up to {@code n} bytes (at most the buffer's size) without reading past them: the
     * bytes after stay in the channel, for {@link #readPages} to read straight into place.
     * Returns how many are buffered, fewer than {@code n} only at the end of the stream.
     */
    public int bufferUpTo(int n) throws IOException {
        checkError();
        if (in == null) {
            throw new IllegalStateException("MigrationFile opened for writing");
        }
        if (n > buf.capacity()) {
            throw new IllegalArgumentException(n + " bytes do not fit the " + buf.capacity() + "-byte read buffer");
        }
        if (buf.remaining() >= n || eof) {
            return buf.remaining();
        }
        buf.compact();
        try {
            buf.limit(n);
            while (buf.position() < n) {
                int r;
                try {
                    r = in.read(buf);
                } catch (IOException e) {
                    setError(e);
                    throw e;
                }
                if (r < 0) {
                    eof = true;
                    break;
                }
            }
        } finally {
            buf.limit(buf.position());
            buf.position(0);
        }
        return buf.remaining();
    }

    /** The big-endian 32-bit value {@code at} bytes into what is buffered, without consuming it; it must be buffered. */
    public int peekBe32(int at) {
        if (at < 0 || at + 4 > buf.remaining()) {
            throw new IllegalStateException("peek at " + at + ": only " + buf.remaining() + " bytes buffered");
        }
        return buf.getInt(buf.position() + at);
    }

    /**
     * Fills {@code count} pages of {@code pageSize} bytes at {@code offsets} of {@code ram}, in
     * order, from the stream: buffered bytes first, then straight from the channel into RAM with
     * scattering reads (adjacent pages as one range), so the pages are not copied in user space.
     */
    public void readPages(MemorySegment ram, long[] offsets, int count, int pageSize) throws IOException {
        checkError();
        int i = 0;
        while (i < count && buf.hasRemaining()) {
            readInto(ram, offsets[i++], pageSize);
        }
        if (i == count) {
            return;
        }
        if (!(in instanceof ScatteringByteChannel sc)) {
            for (; i < count; i++) {
                readInto(ram, offsets[i], pageSize);
            }
            return;
        }
        ByteBuffer[] ranges = new ByteBuffer[count - i];
        int n = 0;
        long total = 0;
        while (i < count) {
            long start = offsets[i];
            int len = pageSize;
            i++;
            while (i < count && offsets[i] == start + len && len <= Integer.MAX_VALUE - pageSize) {
                len += pageSize;
                i++;
            }
            ranges[n++] = ram.asSlice(start, len).asByteBuffer();
            total += len;
        }
        long done = 0;
        int first = 0;
        try {
            while (done < total) {
                long r = sc.read(ranges, first, n - first);
                if (r < 0) {
                    eof = true;
                    position += done;
                    throw truncated(total - done);
                }
                done += r;
                while (first < n && !ranges[first].hasRemaining()) {
                    first++;
                }
            }
        } catch (StreamFormatException e) {
            throw e;
        } catch (IOException e) {
            setError(e);
            throw e;
        }
        position += total;
    }

    /** Copies up to {@code length} buffered bytes to {@code dst} at {@code offset}; returns how many. */
    private int takeBuffered(MemorySegment dst, long offset, long length) {
        int n = (int) Math.min(buf.remaining(), length);
        if (n > 0) {
            MemorySegment.copy(bufMemory, buf.position(), dst, offset, n);
            buf.position(buf.position() + n);
            position += n;
        }
        return n;
    }

    // ---------------------------------------------------------------- seeking

    /**
     * Moves the stream on by {@code n} bytes without writing or reading them, over
     * {@code channel}, the seekable channel this file reads or writes (mapped-ram leaves each RAM
     * block's pages a region of the file this way): a writer flushes and seeks past them, a
     * reader drops what it buffered of them and seeks. The skipped bytes count in {@link #position()}.
     */
    public void seekForward(java.nio.channels.SeekableByteChannel channel, long n) throws IOException {
        checkError();
        if (n < 0) {
            throw new IllegalArgumentException("cannot seek backwards (" + n + " bytes)");
        }
        try {
            if (out != null) {
                flush();
                channel.position(channel.position() + n);
            } else {
                long inBuffer = Math.min(n, buf.remaining());
                buf.position(buf.position() + (int) inBuffer);
                if (n > inBuffer) {
                    channel.position(channel.position() + (n - inBuffer));
                }
            }
        } catch (IOException e) {
            setError(e);
            throw e;
        }
        position += n;
    }

    // ---------------------------------------------------------------- memory writer

    /** The bytes written so far, for a writer made by {@link #toMemory()}. */
    public byte[] toByteArray() throws IOException {
        flush();
        if (!(out instanceof MemoryChannel m)) {
            throw new IllegalStateException("not a memory writer");
        }
        return m.bytes.toByteArray();
    }

    @Override
    public void close() throws IOException {
        IOException first = null;
        if (out != null && error == null) {
            try {
                flush();
            } catch (IOException e) {
                first = e;
            }
        }
        try {
            if (in != null) {
                in.close();
            }
            if (out != null) {
                out.close();
            }
        } catch (IOException e) {
            if (first == null) {
                first = e;
            }
        }
        if (first != null) {
            throw first;
        }
    }

    private static final class MemoryChannel implements GatheringByteChannel {
        final ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        boolean open = true;

        @Override
        public int write(ByteBuffer src) {
            int n = src.remaining();
            if (src.hasArray()) {
                bytes.write(src.array(), src.arrayOffset() + src.position(), n);
                src.position(src.limit());
            } else {
                byte[] tmp = new byte[n];
                src.get(tmp);
                bytes.write(tmp, 0, n);
            }
            return n;
        }

        @Override
        public long write(ByteBuffer[] srcs, int offset, int length) {
            long n = 0;
            for (int i = offset; i < offset + length; i++) {
                n += write(srcs[i]);
            }
            return n;
        }

        @Override
        public long write(ByteBuffer[] srcs) {
            return write(srcs, 0, srcs.length);
        }

        @Override
        public boolean isOpen() {
            return open;
        }

        @Override
        public void close() {
            open = false;
        }
    }
}
