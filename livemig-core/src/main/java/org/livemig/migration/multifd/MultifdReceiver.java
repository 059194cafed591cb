package org.livemig.migration.multifd;

import java.io.IOException;
import java.lang.System.Logger.Level;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import org.livemig.memory.GuestRam;
import org.livemig.memory.RamBlock;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.MultifdCompression;
import org.livemig.stream.MultifdPacket;
import org.livemig.stream.StreamFormatException;
import org.livemig.transport.MigrationConnection;

/**
 * The destination side of multifd (QEMU 7.2's multifd_recv_*): one thread per channel
 * ({@code mig/dst/recv_n}) reads packets and writes their pages straight into guest RAM, after
 * checking the block, every offset and the sizes. A SYNC packet is reported to the main
 * channel's loader, and the channel then waits until {@link #syncMain} has seen every channel's
 * SYNC, so that no channel runs into the next RAM section's pages early. With
 * multifd-compression each channel inflates its packets with its own zlib or zstd stream
 * ({@link MultifdCompression}) straight into the pages, never past them.
 *
 * <p>Threads: {@link #addChannel} runs on the accept thread, {@link #syncMain} on
 * {@code mig/dst/main}; {@link #shutdown} from anywhere. A channel's failure is reported to
 * {@code onError} once, and makes every later {@link #syncMain} throw it.
 */
public final class MultifdReceiver implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(MultifdReceiver.class.getName());
    public static final String THREAD_PREFIX = "mig/dst/recv_";
    private static final long JOIN_MILLIS = 10_000;

    private final GuestRam ram;
    private final MultifdCompression.Method compression;
    private final Channel[] channels;
    private final Consumer<IOException> onError;
    private final AtomicLong bytes;
    private final AtomicLong pages = new AtomicLong();
    /** Every connection handed in, also one whose initial packet is still being read. */
    private final List<MigrationConnection> connections = new CopyOnWriteArrayList<>();
    private volatile boolean stopping;
    private volatile IOException failure;
    private int added;
    /** Where device-state packets go; null refuses them. */
    private volatile DeviceStateSink deviceState;

    /** Largest device-state packet accepted, in data bytes. */
    public static final int MAX_DEVICE_STATE_BYTES = 64 << 20;

    /**
     * Takes the data of a device-state packet (QEMU's qemu_loadvm_load_state_buffer), on the
     * channel's thread without the BQL; may block while the device's load threads catch up.
     */
    @FunctionalInterface
    public interface DeviceStateSink {
        void accept(String idstr, int instanceId, byte[] data, long at) throws IOException;
    }

    /** Device-state packets go to {@code sink} from now on (before the channels start). */
    public void setDeviceStateSink(DeviceStateSink sink) {
        this.deviceState = sink;
    }

    private final class Channel {
        final int id;
        final MigrationConnection connection;
        final MigrationFile file;
        /** Released by the channel at each SYNC packet; taken by syncMain. */
        final Semaphore synced = new Semaphore(0);
        /** Released by syncMain once all channels synced; taken by the channel. */
        final Semaphore proceed = new Semaphore(0);
        volatile boolean ended;
        Thread thread;

        Channel(int id, MigrationConnection connection, MigrationFile file) {
            this.id = id;
            this.connection = connection;
            this.file = file;
        }
    }

    /**
     * @param bytes   counts the bytes read on the channels (query-migrate's multifd-bytes)
     * @param onError told a channel's failure, once, on the channel's thread
     */
    public MultifdReceiver(GuestRam ram, int channelCount, AtomicLong bytes, Consumer<IOException> onError) {
        this(ram, channelCount, MultifdCompression.Method.NONE, bytes, onError);
    }

    /** As above, for packets compressed with {@code compression} (multifd-compression here). */
    public MultifdReceiver(GuestRam ram, int channelCount, MultifdCompression.Method compression, AtomicLong bytes,
                           Consumer<IOException> onError) {
        this.compression = compression;
        if (channelCount < 1 || channelCount > 255) {
            throw new IllegalArgumentException("multifd channels must be 1..255, not " + channelCount);
        }
        this.ram = ram;
        this.channels = new Channel[channelCount];
        this.onError = onError;
        this.bytes = bytes;
    }

    /** Pages written into RAM by the channels. */
    public long pages() {
        return pages.get();
    }

    /**
     * Takes a new connection as a multifd channel: reads its initial packet (blocking; the accept
     * thread, no BQL) and checks its id. Returns true once every channel has arrived; the channel
     * threads start then.
     *
     * @throws IOException on a bad initial packet, an id out of range or seen twice
     */
    public boolean addChannel(MigrationConnection c) throws IOException {
        connections.add(c);
        if (stopping) {
            throw new IOException("multifd channels were shut down");
        }
        try {
            return admit(c);
        } catch (IOException e) {
            // Recorded too: the main thread would otherwise wait for this channel at its next EOS.
            fail(e);
            throw e;
        }
    }

    private boolean admit(MigrationConnection c) throws IOException {
        MigrationFile f = MigrationFile.forReading(c.in());
        MultifdPacket.Init init;
        try {
            init = MultifdPacket.readInit(f);
        } catch (IOException e) {
            throw new IOException("multifd channel from " + c.description() + ": " + e.getMessage(), e);
        }
        int id = init.channelId();
        if (id >= channels.length) {
            throw new IOException("multifd channel id " + id + " from " + c.description()
                    + ", expected 0.." + (channels.length - 1) + " (multifd-channels " + channels.length + ")");
        }
        synchronized (this) {
            if (channels[id] != null) {
                throw new IOException("multifd channel id " + id + " connected twice (" + c.description() + ")");
            }
            channels[id] = new Channel(id, c, f);
            notifyAll();
            bytes.addAndGet(MultifdPacket.INIT_PACKET_BYTES);
            if (++added < channels.length) {
                return false;
            }
        }
        for (Channel ch : channels) {
            ch.thread = Thread.ofPlatform().name(THREAD_PREFIX + ch.id).daemon(true).start(() -> run(ch));
        }
        return true;
    }

    /**
     * At a RAM section's EOS on the main channel: waits until every channel has read its SYNC
     * packet (all pages sent before it are in RAM), then lets them go on. Called without the BQL.
     *
     * @throws IOException when a channel failed, ended, or the receiver was shut down
     */
    public void syncMain() throws IOException {
        for (int i = 0; i < channels.length; i++) {
            Channel c = awaitChannel(i);
            try {
                while (!c.synced.tryAcquire(100, TimeUnit.MILLISECONDS)) {
                    checkFailure();
                    if (c.ended) {
                        throw new IOException("multifd channel " + c.id + " ended before its SYNC packet");
                    }
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IOException("interrupted waiting for multifd channel " + c.id, e);
            }
        }
        checkFailure();
        for (Channel c : channels) {
            c.proceed.release();
        }
    }

    /** Channel {@code i}, waiting for it to connect (the source connects them as the main stream starts). */
    private Channel awaitChannel(int i) throws IOException {
        synchronized (this) {
            while (channels[i] == null) {
                checkFailure();
                try {
                    wait(100);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IOException("interrupted waiting for multifd channel " + i + " to connect", e);
                }
            }
            return channels[i];
        }
    }

    private void checkFailure() throws IOException {
        ChannelState.check(failure, stopping);
    }

    /** Trace events per packet (off for a warm-up's scratch migrations). */
    private volatile boolean traced = true;

    /** Whether each packet read is a trace event ({@link org.livemig.trace.MultifdBatchEvent}); default on. */
    public void setTraced(boolean on) {
        traced = on;
    }

    /** {@code mig/dst/recv_n}: packets until the source closes the channel at a packet boundary. */
    private void run(Channel c) {
        MigrationFile f = c.file;
        int maxPages = MultifdPacket.PAGES_PER_PACKET;
        MultifdCompression.Decoder decoder = null;
        try {
            if (compression != MultifdCompression.Method.NONE) {
                decoder = MultifdCompression.decoder(compression, maxPages, RamBlock.PAGE_SIZE);
            }
            while (bufferHeader(f)) {
                org.livemig.trace.MultifdBatchEvent event = traced ? org.livemig.trace.Trace.multifdBegin() : null;
                MultifdPacket.Packet p = receivePacket(f, ram, maxPages, compression, decoder, deviceState);
                bytes.addAndGet(f.position() - p.at());
                if (!(p instanceof MultifdPacket.Header h)) {
                    // a device-state packet, handed to its device
                    org.livemig.trace.Trace.end(event, c.id, false, 0, f.position() - p.at(), false);
                    continue;
                }
                pages.addAndGet(h.normalPages());
                org.livemig.trace.Trace.end(event, c.id, false, h.normalPages(), f.position() - h.at(), h.sync());
                if (h.sync()) {
                    c.synced.release();
                    while (!c.proceed.tryAcquire(100, TimeUnit.MILLISECONDS)) {
                        if (stopping || failure != null) {
                            return;
                        }
                    }
                }
            }
        } catch (IOException | RuntimeException e) {
            fail(new IOException("multifd channel " + c.id + " (" + c.connection.description() + "): "
                    + e.getMessage(), e));
        } catch (InterruptedException e) {
            fail(new IOException("multifd channel " + c.id + " interrupted", e));
        } finally {
            c.ended = true;
            if (decoder != null) {
                decoder.close();
            }
        }
    }

    /**
     * Buffers the next packet's header and no more, so that its pages are read from the channel
     * straight into RAM ({@link MigrationFile#readPages}); false at the end of the channel's
     * stream, at a packet boundary. What does not look like a header is left for
     * {@link MultifdPacket#readPacket} to refuse.
     */
    private static boolean bufferHeader(MigrationFile f) throws IOException {
        int have = f.bufferUpTo(MultifdPacket.DEVICE_STATE_HEADER_BYTES);
        if (have == 0) {
            return false;
        }
        if (have == MultifdPacket.DEVICE_STATE_HEADER_BYTES
                && (f.peekBe32(8) & MultifdPacket.FLAG_DEVICE_STATE) == 0) {
            int pagesAlloc = f.peekBe32(12);
            if (pagesAlloc >= 0 && pagesAlloc <= MultifdPacket.PAGES_PER_PACKET) {
                f.bufferUpTo(MultifdPacket.headerBytes(pagesAlloc));
            }
        }
        return true;
    }

    /**
     * A compressed packet's data: its length checked against the decoder's buffer before it is
     * read, then inflated into the pages. An error names the packet, the page it stopped at and
     * the data's offset in the channel.
     */
    private static void readCompressed(MigrationFile f, MultifdPacket.Header h, RamBlock b,
                                       MultifdCompression.Decoder decoder) throws IOException {
        long len = Integer.toUnsignedLong(h.nextPacketSize());
        long max = decoder.input().byteSize();
        if (len > max) {
            throw new StreamFormatException(String.format("multifd packet %d says %d compressed bytes follow, more than"
                    + " the %d a packet of %d pages may take", h.packetNum(), len, max, h.normalPages()), h.at() + 20);
        }
        long dataAt = f.position();
        f.readInto(decoder.input(), 0, len);
        String err = decoder.decode((int) len, b.memory(), h.offsets(), h.normalPages(), RamBlock.PAGE_SIZE);
        if (err != null) {
            int i = decoder.failedPage();
            String page = i >= 0 ? String.format("page 0x%x of block '%s' (page %d of the packet)", h.offsets()[i],
                    b.name(), i) : String.format("its %d pages of block '%s'", h.normalPages(), b.name());
            throw new StreamFormatException(String.format("multifd packet %d, %s: %s", h.packetNum(), page, err), dataAt);
        }
    }

    /** As below, for a channel without multifd-compression that takes no device-state packets. */
    static MultifdPacket.Header receivePacket(MigrationFile f, GuestRam ram, int maxPages) throws IOException {
        return (MultifdPacket.Header) receivePacket(f, ram, maxPages, MultifdCompression.Method.NONE, null, null);
    }

    /**
     * Reads one packet of a channel and writes its pages into {@code ram}: the header checked
     * (magic, version, sizes), its compression flag the one agreed on, the block known, every
     * page offset inside it and page-aligned, before any page is written; compressed data is
     * inflated by {@code decoder} (null without compression). A device-state packet's data goes
     * to {@code deviceState} (refused when null). Called on {@code mig/dst/recv_n} without the BQL.
     *
     * @throws StreamFormatException naming what is wrong and where
     */
    static MultifdPacket.Packet receivePacket(MigrationFile f, GuestRam ram, int maxPages,
                                              MultifdCompression.Method compression,
                                              MultifdCompression.Decoder decoder,
                                              DeviceStateSink deviceState) throws IOException {
        MultifdPacket.Packet p = MultifdPacket.readPacket(f, maxPages, RamBlock.PAGE_SIZE, MAX_DEVICE_STATE_BYTES);
        if (p instanceof MultifdPacket.DeviceStateHeader d) {
            if (deviceState == null) {
                throw new StreamFormatException("multifd device-state packet for '" + d.idstr() + "' instance "
                        + Integer.toUnsignedString(d.instanceId()) + ", but this destination takes none", d.at());
            }
            long dataAt = f.position();
            byte[] data = f.getBytes(d.size());
            deviceState.accept(d.idstr(), d.instanceId(), data, dataAt);
            return d;
        }
        MultifdPacket.Header h = (MultifdPacket.Header) p;
        if (h.normalPages() > 0) {
            if (h.compression() != compression.flag()) {
                // QEMU 7.2's check, and its words: "flags received %x flags expected %x"
                throw new StreamFormatException(String.format(
                        "multifd packet %d: flags received 0x%x flags expected 0x%x (multifd-compression %s here)",
                        h.packetNum(), h.compression(), compression.flag(), compression.qemuName()), h.at() + 8);
            }
            RamBlock b = ram.block(h.block());
            if (b == null) {
                throw new StreamFormatException("multifd packet for unknown RAM block '" + h.block() + "'", h.at() + 64);
            }
            long[] offsets = h.offsets();
            for (int i = 0; i < h.normalPages(); i++) {
                long off = offsets[i];
                if (off < 0 || (off & (RamBlock.PAGE_SIZE - 1)) != 0 || off + RamBlock.PAGE_SIZE > b.usedLength()) {
                    throw new StreamFormatException(String.format(
                            "multifd packet page offset 0x%x outside block '%s' (0x%x bytes) or not page-aligned",
                            off, b.name(), b.usedLength()), h.at() + MultifdPacket.FIXED_HEADER_BYTES + 8L * i);
                }
            }
            if (decoder == null) {
                f.readPages(b.memory(), offsets, h.normalPages(), RamBlock.PAGE_SIZE);
            } else {
                readCompressed(f, h, b, decoder);
            }
        }
        return h;
    }

    private void fail(IOException e) {
        synchronized (this) {
            if (failure != null || stopping) {
                return;
            }
            failure = e;
        }
        LOG.log(Level.WARNING, e.getMessage());
        onError.accept(e);
    }

    /** The first channel's failure, or null. */
    public IOException failure() {
        return failure;
    }

    /** Unblocks every channel (cancel, yank, a failed load); from any thread. Idempotent. */
    public void shutdown() {
        stopping = true;
        for (MigrationConnection c : connections) {
            c.shutdown();
        }
    }

    /** Shuts down, joins the channel threads (bounded) and closes the connections. */
    @Override
    public void close() {
        shutdown();
        for (Channel c : channels) {
            if (c != null && c.thread != null) {
                try {
                    c.thread.join(JOIN_MILLIS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        }
        for (MigrationConnection c : connections) {
            try {
                c.close();
            } catch (IOException ignored) {
                // closing anyway
            }
        }
    }
}
