package org.livemig.migration.multifd;

import java.io.IOException;
import java.lang.System.Logger.Level;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.Consumer;
import java.util.function.LongConsumer;
import org.livemig.memory.RamBlock;
import org.livemig.memory.ZeroPages;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.MultifdCompression;
import org.livemig.stream.MultifdPacket;
import org.livemig.transport.MigrationConnection;

/**
 * The source side of multifd (QEMU 7.2's multifd_send_*): the migration thread fills a packet
 * of up to 128 pages of one block with {@link #queuePage}, and hands each full packet to a
 * channel thread ({@code mig/src/send_n}), which writes its header and the pages straight from
 * guest RAM. Each channel holds two jobs, the one it writes and the next, so that it goes on
 * from one packet to the next without sleeping until the migration thread wakes and refills it
 * (on two cores that round of wakeups cost more than the channel saved); a channel thread is
 * signalled only when it had nothing, the migration thread only when it waits. A page may change while it is written; it is then dirty and goes again, and
 * the last copy goes with the guest stopped, as in QEMU.
 *
 * <p>{@link #sync} ends a round: the partial packet goes, every channel sends a SYNC packet,
 * and it returns once all of them are written out. The migration thread calls it before each
 * RAM section's EOS, so the destination, which waits for every channel's SYNC at that EOS,
 * never sees a page of one section after the next section's records.
 *
 * <p>Work on the pages happens on the channel threads, off the migration thread's path: with
 * zero-page detection a channel checks each page of its packet and leaves the zero ones out, to
 * be sent as ZERO records on the main channel ({@link #takeZeroPages}; the 7.2 packet has no
 * place for them), and with multifd-compression it runs its channel's zlib or zstd stream
 * ({@link MultifdCompression}).
 *
 * <p>Threads: {@link #queuePage}, {@link #sync}, {@link #takeZeroPages} and {@link #finish}
 * belong to the migration thread; {@link #shutdown} may be called from any thread (cancel,
 * yank). Every wait is bounded by a failed or shut-down channel: it then throws instead of waiting.
 */
public final class MultifdSender implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(MultifdSender.class.getName());
    public static final String THREAD_PREFIX = "mig/src/send_";
    private static final long JOIN_MILLIS = 10_000;

    /**
     * What the channels do to pages besides sending them.
     *
     * @param compression     multifd-compression
     * @param level           the method's level (multifd-zlib-level or multifd-zstd-level)
     * @param detectZeroPages leave zero pages out of packets, for the main channel (zero-page-detection legacy)
     */
    public record Options(MultifdCompression.Method compression, int level, boolean detectZeroPages) {
        /** QEMU 7.2's defaults: no compression, zero pages detected. */
        public static final Options DEFAULT = new Options(MultifdCompression.Method.NONE, 0, true);
    }

    /** Trace events per packet (off for a warm-up's scratch migrations); set before the first packet. */
    private volatile boolean traced = true;

    /** Whether each packet is a trace event ({@link org.livemig.trace.MultifdBatchEvent}); default on. */
    public void setTraced(boolean on) {
        traced = on;
    }

    /** Writes one zero page a channel left out of its packet; the migration thread, on the main channel. */
    @FunctionalInterface
    public interface ZeroPageWriter {
        void write(MigrationFile main, RamBlock block, long offset) throws IOException;
    }

    /** Zero pages of one packet, handed back by its channel. */
    private record ZeroBatch(RamBlock block, long[] offsets) {}

    private final Channel[] channels;
    private final Options options;
    private final LongConsumer onQueued;
    /** Bytes the channels wrote that {@link #onQueued} has not been told of yet. */
    private final AtomicLong unaccounted = new AtomicLong();
    /** Zero pages the channels left out, in the order their packets completed. Guarded by {@link #lock}. */
    private final ArrayDeque<ZeroBatch> zeroBatches = new ArrayDeque<>();
    private volatile boolean zeroBatchesWaiting;
    private final AtomicLong pages = new AtomicLong();
    private final ReentrantLock lock = new ReentrantLock();
    /** Signalled to the migration thread when a job slot frees up, and on failure or shutdown. */
    private final Condition changed = lock.newCondition();
    /** Whether the migration thread waits on {@link #changed}: channels signal only then. Guarded by {@link #lock}. */
    private boolean mainWaiting;
    private long packetNum;
    private int nextChannel;
    private volatile boolean stopping;
    /** {@link #finish}: the channels end once their queued jobs are written (a failure then still counts). */
    private volatile boolean draining;
    private volatile IOException failure;
    /** Told of a channel's failure once, from the failing thread ({@link #onFailure}); null until set. */
    private volatile Consumer<IOException> failureListener;

    /** The packet being filled by the migration thread. */
    private RamBlock batchBlock;
    private long[] batchOffsets = new long[MultifdPacket.PAGES_PER_PACKET];
    private int batchCount;

    /**
     * One packet to send: pages of one block, a SYNC, or a device's state. Filled by the
     * migration thread in a free slot, then owned by the channel thread until the slot is freed.
     */
    private static final class Job {
        boolean syncJob;
        RamBlock block;
        long[] offsets = new long[MultifdPacket.PAGES_PER_PACKET];
        int count;
        long num;
        /** A device-state job instead of pages: whose state, and what to write. */
        MultifdPacket.DeviceStatePayload deviceState;
        String deviceIdstr;
        int deviceInstance;
    }

    /** Jobs a channel holds: the one it writes and the next, so it goes on without waiting for the migration thread. */
    private static final int SLOTS = 2;

    /**
     * One channel: its connection, its thread, and a ring of {@link #SLOTS} jobs. The ring's
     * indices are guarded by {@link #lock}; a job's fields belong to whoever the ring says.
     */
    private final class Channel {
        final int id;
        final MigrationConnection connection;
        final MigrationFile file;
        Thread thread;
        final Job[] jobs = new Job[SLOTS];
        int head;
        int queued;
        /** Signalled to this channel's thread when it gets a job while it has none. */
        final Condition work = lock.newCondition();
        /** The channel thread's own: zero pages of the current packet. */
        final long[] zeros = new long[MultifdPacket.PAGES_PER_PACKET];

        Channel(int id, MigrationConnection connection) {
            this.id = id;
            this.connection = connection;
            this.file = MigrationFile.forWriting(connection.out());
            for (int i = 0; i < SLOTS; i++) {
                jobs[i] = new Job();
            }
        }

        /** The free slot a new job goes in. Lock held, queued < SLOTS. */
        Job tail() {
            return jobs[(head + queued) % SLOTS];
        }

        /** Makes the job filled in {@link #tail()} the channel's, waking its thread if it had none. Lock held. */
        void push() {
            if (queued++ == 0) {
                work.signal();
            }
        }
    }

    /**
     * Starts one sender thread per connection; each first writes its initial packet.
     *
     * @param onQueued told the bytes the channels have written, on the migration thread (at each
     *                 packet handed over and each sync): the main channel's rate limit and
     *                 transfer counters include them
     */
    public MultifdSender(List<MigrationConnection> connections, byte[] uuid, LongConsumer onQueued) {
        this(connections, uuid, Options.DEFAULT, onQueued);
    }

    /** As above, with what the channels do to pages. */
    public MultifdSender(List<MigrationConnection> connections, byte[] uuid, Options options, LongConsumer onQueued) {
        this.options = options;
        this.onQueued = onQueued;
        channels = new Channel[connections.size()];
        for (int i = 0; i < channels.length; i++) {
            channels[i] = new Channel(i, connections.get(i));
        }
        for (Channel c : channels) {
            c.thread = Thread.ofPlatform().name(THREAD_PREFIX + c.id).daemon(true).start(() -> run(c, uuid));
        }
    }

    /** Whether the channels look for zero pages (zero-page-detection legacy). */
    public boolean detectsZeroPages() {
        return options.detectZeroPages();
    }

    /** Pages handed to the channels. */
    public long pages() {
        return pages.get();
    }

    /** Adds a page to the packet being filled; a full packet, or one of another block, goes to a channel. */
    public void queuePage(RamBlock block, long offset) throws IOException {
        if (batchCount > 0 && (block != batchBlock || batchCount == batchOffsets.length)) {
            dispatch();
        }
        batchBlock = block;
        batchOffsets[batchCount++] = offset;
    }

    /** How many channels there are. */
    public int channelCount() {
        return channels.length;
    }

    /**
     * Hands a device's state to the next idle channel as one device-state packet (QEMU 10's
     * multifd_queue_device_state), waiting for one if all are busy; the channel thread writes
     * the header and {@code payload}. The migration thread, at the switchover; {@link #finish}
     * waits for every queued packet to be written.
     */
    public void queueDeviceState(String idstr, int instanceId, MultifdPacket.DeviceStatePayload payload)
            throws IOException {
        lock.lock();
        try {
            Channel c;
            while ((c = freeChannel()) == null) {
                awaitChange();
            }
            Job j = c.tail();
            j.deviceState = payload;
            j.deviceIdstr = idstr;
            j.deviceInstance = instanceId;
            j.count = 0;
            j.syncJob = false;
            j.num = packetNum++;
            c.push();
        } finally {
            lock.unlock();
        }
        account();
    }

    /**
     * Sends the partial packet, then a SYNC on every channel; returns once every packet queued
     * before the SYNCs is written (so {@link #takeZeroPages} has all their zero pages). The SYNC
     * packets may still be going out: the destination waits for them at the section's EOS, and
     * the migration thread need not wait for a second wakeup per channel (at the switchover the
     * device state goes on behind them).
     */
    public void sync() throws IOException {
        if (batchCount > 0) {
            dispatch();
        }
        lock.lock();
        try {
            for (Channel c : channels) {
                while (checkFailureAnd(c.queued == SLOTS)) {
                    awaitChange();
                }
                Job j = c.tail();
                j.syncJob = true;
                j.count = 0;
                j.deviceState = null;
                j.num = packetNum++;
                c.push();
            }
            for (Channel c : channels) {
                // Nothing is queued after the SYNC: one job left is the SYNC itself.
                while (checkFailureAnd(c.queued > 1)) {
                    awaitChange();
                }
            }
        } finally {
            lock.unlock();
        }
        account();
    }

    /** Tells {@link #onQueued} what the channels wrote since the last time. The migration thread. */
    private void account() {
        long n = unaccounted.getAndSet(0);
        if (n > 0) {
            onQueued.accept(n);
        }
    }

    /**
     * Writes, with {@code writer}, the zero pages the channels have left out of their packets so
     * far (all of them once {@link #sync} returned). Called on the migration thread between
     * pages and after a sync, before the section's EOS; the main channel is written without any
     * channel waiting for it.
     */
    public void takeZeroPages(MigrationFile main, ZeroPageWriter writer) throws IOException {
        if (!zeroBatchesWaiting) {
            return;
        }
        List<ZeroBatch> taken;
        lock.lock();
        try {
            taken = new ArrayList<>(zeroBatches);
            zeroBatches.clear();
            zeroBatchesWaiting = false;
        } finally {
            lock.unlock();
        }
        for (ZeroBatch z : taken) {
            for (long offset : z.offsets()) {
                writer.write(main, z.block(), offset);
            }
        }
    }

    /** Hands the filled packet to the next idle channel, waiting for one if all are busy. */
    private void dispatch() throws IOException {
        int n = batchCount;
        lock.lock();
        try {
            Channel c;
            while ((c = freeChannel()) == null) {
                awaitChange();
            }
            Job j = c.tail();
            long[] spare = j.offsets;
            j.offsets = batchOffsets;
            batchOffsets = spare;
            j.block = batchBlock;
            j.count = n;
            j.syncJob = false;
            j.deviceState = null;
            j.num = packetNum++;
            c.push();
        } finally {
            lock.unlock();
        }
        batchCount = 0;
        pages.addAndGet(n);
        account();
    }

    /**
     * The channel the next job goes to: an idle one first (taking turns), else one with a free
     * slot behind its current job; null when every slot is taken. Lock held.
     */
    private Channel freeChannel() throws IOException {
        checkFailure();
        Channel best = null;
        for (int i = 0; i < channels.length; i++) {
            Channel c = channels[(nextChannel + i) % channels.length];
            if (c.queued < SLOTS && (best == null || c.queued < best.queued)) {
                best = c;
            }
        }
        if (best != null) {
            nextChannel = (best.id + 1) % channels.length;
        }
        return best;
    }

    /** Throws a channel's failure or the shutdown, else returns {@code waitMore}. Lock held. */
    private boolean checkFailureAnd(boolean waitMore) throws IOException {
        checkFailure();
        return waitMore;
    }

    /** Waits for a slot to free up, in slices, so a lost signal cannot hang the caller. Lock held. */
    private void awaitChange() throws IOException {
        mainWaiting = true;
        try {
            changed.await(100, TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted waiting for a multifd channel", e);
        } finally {
            mainWaiting = false;
        }
    }

    private void checkFailure() throws IOException {
        ChannelState.check(failure, stopping);
    }

    /** {@code mig/src/send_n}: the initial packet, then one packet per job until shut down. */
    private void run(Channel c, byte[] uuid) {
        MultifdCompression.Encoder encoder = null;
        try {
            if (options.compression() != MultifdCompression.Method.NONE) {
                encoder = MultifdCompression.encoder(options.compression(), options.level(),
                        MultifdPacket.PAGES_PER_PACKET, RamBlock.PAGE_SIZE);
            }
            MultifdPacket.writeInit(c.file, uuid, c.id);
            c.file.flush();
            unaccounted.addAndGet(MultifdPacket.INIT_PACKET_BYTES);
            while (true) {
                Job job;
                lock.lock();
                try {
                    while (c.queued == 0 && !stopping && !draining) {
                        c.work.await(100, TimeUnit.MILLISECONDS);
                    }
                    if (c.queued == 0) {
                        return;
                    }
                    job = c.jobs[c.head];
                } finally {
                    lock.unlock();
                }
                // The job's fields are not touched by the migration thread until its slot is freed.
                int zeros = sendPacket(c, job, encoder);
                ZeroBatch batch = zeros > 0 ? new ZeroBatch(job.block, Arrays.copyOf(c.zeros, zeros)) : null;
                lock.lock();
                try {
                    if (batch != null) {
                        zeroBatches.add(batch);
                        zeroBatchesWaiting = true;
                    }
                    c.head = (c.head + 1) % SLOTS;
                    c.queued--;
                    if (mainWaiting) {
                        changed.signal();
                    }
                } finally {
                    lock.unlock();
                }
            }
        } catch (IOException | RuntimeException e) {
            // A RuntimeException too: a channel thread that died unreported would leave the
            // migration thread waiting for it to become idle.
            fail(new IOException("multifd channel " + c.id + " (" + c.connection.description() + "): "
                    + e.getMessage(), e));
        } catch (InterruptedException e) {
            fail(new IOException("multifd channel " + c.id + " interrupted", e));
        } finally {
            if (encoder != null) {
                encoder.close();
            }
        }
    }

    /**
     * Sends the channel's job: leaves zero pages out (into {@code c.zeros}), compresses the rest
     * if asked to, writes the packet. A job of zero pages only and no SYNC sends nothing. Returns
     * the number of zero pages left out.
     */
    private int sendPacket(Channel c, Job j, MultifdCompression.Encoder encoder) throws IOException {
        org.livemig.trace.MultifdBatchEvent event = traced ? org.livemig.trace.Trace.multifdBegin() : null;
        MultifdPacket.DeviceStatePayload ds = j.deviceState;
        if (ds != null) {
            j.deviceState = null;
            long before = c.file.position();
            MultifdPacket.writeDeviceStateHeader(c.file, j.deviceIdstr, j.deviceInstance, ds.size());
            ds.write(c.file);
            long written = c.file.position() - before;
            if (written != MultifdPacket.DEVICE_STATE_HEADER_BYTES + (long) ds.size()) {
                throw new IOException("device-state packet for '" + j.deviceIdstr + "' wrote " + written
                        + " bytes, its header says " + (MultifdPacket.DEVICE_STATE_HEADER_BYTES + (long) ds.size()));
            }
            c.file.flush();
            unaccounted.addAndGet(written);
            org.livemig.trace.Trace.end(event, c.id, true, 0, written, false);
            return 0;
        }
        int count = j.count;
        int zeros = 0;
        if (options.detectZeroPages() && count > 0) {
            int kept = 0;
            for (int i = 0; i < count; i++) {
                long off = j.offsets[i];
                if (ZeroPages.isZeroPage(j.block.memory(), off)) {
                    c.zeros[zeros++] = off;
                } else {
                    j.offsets[kept++] = off;
                }
            }
            count = kept;
        }
        if (count == 0 && !j.syncJob) {
            return zeros;
        }
        long before = c.file.position();
        int flags = j.syncJob ? MultifdPacket.FLAG_SYNC : 0;
        String block = count > 0 ? j.block.name() : null;
        if (count > 0 && encoder != null) {
            int len = encoder.encode(j.block.memory(), j.offsets, count, RamBlock.PAGE_SIZE);
            MultifdPacket.writeHeaderWithDataSize(c.file, flags | options.compression().flag(),
                    MultifdPacket.PAGES_PER_PACKET, j.num, block, j.offsets, count, len);
            c.file.putRam(encoder.output(), 0, len);
        } else {
            MultifdPacket.writeHeader(c.file, flags, MultifdPacket.PAGES_PER_PACKET, j.num, block, j.offsets,
                    count, RamBlock.PAGE_SIZE);
            for (int i = 0; i < count; i++) {
                c.file.putRam(j.block.memory(), j.offsets[i], RamBlock.PAGE_SIZE);
            }
        }
        c.file.flush();
        unaccounted.addAndGet(c.file.position() - before);
        org.livemig.trace.Trace.end(event, c.id, true, count, c.file.position() - before, j.syncJob);
        return zeros;
    }

    private void fail(IOException e) {
        boolean first = false;
        lock.lock();
        try {
            if (failure == null && !stopping) {
                failure = e;
                first = true;
                LOG.log(Level.WARNING, e.getMessage());
            }
            wakeAll();
        } finally {
            lock.unlock();
        }
        Consumer<IOException> l = failureListener;
        if (first && l != null) {
            l.accept(e);
        }
    }

    /** The first channel's failure, or null. */
    public IOException failure() {
        return failure;
    }

    /**
     * Tells {@code listener} of a channel's failure (at once if one has already failed), so that
     * a wait elsewhere, such as the source's wait for SHUT, ends with it. Any thread.
     */
    public void onFailure(Consumer<IOException> listener) {
        failureListener = listener;
        IOException f = failure;
        if (f != null) {
            listener.accept(f); // failed before the listener was there (a second call is harmless)
        }
    }

    /** Wakes the migration thread and every channel thread. Lock held. */
    private void wakeAll() {
        changed.signalAll();
        for (Channel c : channels) {
            c.work.signalAll();
        }
    }

    /** Unblocks every channel and every waiter (cancel, yank); from any thread. Idempotent. */
    public void shutdown() {
        stopping = true;
        for (Channel c : channels) {
            c.connection.shutdown();
        }
        lock.lock();
        try {
            wakeAll();
        } finally {
            lock.unlock();
        }
    }

    /**
     * Starts the normal end, after the last {@link #sync}: each channel thread ends once its queued
     * jobs are written, without the migration thread waiting for them here; {@link #finish} then
     * joins them and checks. Called on the migration thread.
     */
    public void beginFinish() throws IOException {
        checkFailure();
        account();
        draining = true;
        lock.lock();
        try {
            wakeAll();
        } finally {
            lock.unlock();
        }
    }

    /**
     * The normal end, after the last {@link #sync}: the threads end and the connections close,
     * so each channel's stream ends at a packet boundary, which the destination reads as its end.
     */
    public void finish() throws IOException {
        if (!draining) {
            beginFinish();
        }
        joinAndClose();
        account();
        // A channel that failed writing its last packets (a SYNC, device state) fails the end too.
        checkFailure();
        lock.lock();
        try {
            for (Channel c : channels) {
                if (c.queued > 0) {
                    throw new IOException("multifd channel " + c.id + " ended with " + c.queued + " packet(s) unwritten");
                }
            }
        } finally {
            lock.unlock();
        }
    }

    /** Shuts down, then joins the threads (bounded) and closes the connections. */
    @Override
    public void close() {
        shutdown();
        joinAndClose();
    }

    private void joinAndClose() {
        List<Thread> alive = new ArrayList<>();
        for (Channel c : channels) {
            try {
                c.thread.join(JOIN_MILLIS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            if (c.thread.isAlive()) {
                alive.add(c.thread);
            }
            try {
                c.connection.close();
            } catch (IOException ignored) {
                // closing anyway
            }
        }
        if (!alive.isEmpty()) {
            LOG.log(Level.WARNING, "multifd sender threads still running after " + JOIN_MILLIS + " ms: " + alive);
        }
    }
}
