package org.livemig.migration;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.BitSet;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BooleanSupplier;
import org.livemig.machine.Accelerator;
import org.livemig.machine.Machine;
import org.livemig.stream.AcceleratorState;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.StreamFormatException;
import org.livemig.vmstate.LoadContext;
import org.livemig.vmstate.SaveOptions;
import org.livemig.vmstate.SaveVmHandlers;
import org.livemig.vmstate.VmStateCodec;
import org.livemig.vmstate.VmStateException;
import org.livemig.vmstate.VmValue;

/**
 * The iterative section of one {@link Accelerator} ({@code NAME/accel}), as QEMU's VFIO devices
 * take part in a migration: its memory goes in chunks while the guest runs (every pass sends
 * the chunks written since the last), its pending bytes count in the switchover decision, and at
 * the switchover the chunks still dirty and its register state go either in its END section or,
 * with multifd, in device-state packets over the multifd channels, which the destination's load
 * threads assemble and load. With switchover-ack, the destination approves the switchover once
 * the first pass (the device's initial data) is loaded. Layout: {@link AcceleratorState}.
 *
 * <p>Source state is owned by {@code mig/src/main} (pending bytes and counters are read by the
 * monitor); destination state is used by {@code mig/dst/main}, the multifd channel threads that
 * hand packets in, and the steps that apply them on the load threads or on {@code mig/dst/main}
 * while it waits for those (the queue and counters are thread-safe).
 * Device memory is written without the BQL, as guest RAM; the register state's post-load takes it.
 */
public final class AcceleratorHandlers implements SaveVmHandlers {
    public static final int VERSION = 1;
    /** Chunks per device-state packet: 1 MiB of memory. */
    static final int CHUNKS_PER_PACKET = 16;
    /** Device-state packets queued on the destination before the channels wait for the load threads. */
    static final int QUEUED_PACKETS = 24;
    /** Longest one iteration sends before returning to the migration loop, as RAM's. */
    private static final long MAX_ITERATE_NANOS = 50_000_000L;

    private final Accelerator device;

    // ---- source: owned by mig/src/main
    private SaveOptions options = SaveOptions.PLAIN;
    private BitSet toSend;
    private BitSet initial;
    private int cursor;
    private long initialLeft;
    private boolean initDataSent;
    private final byte[] scratch = new byte[Accelerator.CHUNK_SIZE];
    private volatile long pendingChunks;
    private final AtomicLong transferred = new AtomicLong();
    private volatile boolean multifdFinal;
    /** Packets of the final state queued by saveCompleteMultifd; -1 before. */
    private int queuedPackets = -1;

    // ---- destination
    private volatile LoadContext load;
    /** Test hook: the destination holds its approval, as a device still loading its initial data would. */
    private volatile boolean holdApproval;
    private volatile boolean approvalDue;
    /** Test hook: while set, the final state's steps wait for it to open before applying a packet. */
    private volatile CountDownLatch finalStateGate;

    private AcceleratorHandlers(Accelerator device) {
        this.device = device;
    }

    /** Registers every accelerator of {@code machine}, after "ram", in configuration order (both sides alike). */
    static void registerAll(Machine machine) {
        for (Accelerator a : machine.devices().accelerators()) {
            if (machine.registry().find(a.idstr(), 0).isEmpty()) {
                machine.registry().registerHandlers(a.idstr(), 0, VERSION, new AcceleratorHandlers(a));
            }
        }
    }

    /** The handlers of {@code machine}'s accelerator {@code name}, or null. */
    public static AcceleratorHandlers of(Machine machine, String name) {
        return machine.registry().find(name + Accelerator.IDSTR_SUFFIX, 0)
                .map(e -> e.handlers() instanceof AcceleratorHandlers h ? h : null).orElse(null);
    }

    public Accelerator device() {
        return device;
    }

    /** Bytes of this device's state sent so far by the current or last outgoing migration. */
    public long transferredBytes() {
        return transferred.get();
    }

    /** Whether the last outgoing switchover sent the final state over multifd. */
    public boolean finalStateOverMultifd() {
        return multifdFinal;
    }

    // ------------------------------------------------------------------ source

    @Override
    public void savePrepare(SaveOptions o) {
        this.options = o;
        int n = (int) device.chunks();
        toSend = new BitSet(n);
        toSend.set(0, n);
        initial = (BitSet) toSend.clone();
        initialLeft = n;
        initDataSent = false;
        cursor = 0;
        multifdFinal = false;
        queuedPackets = -1;
        transferred.set(0);
        device.clearDirty(); // everything goes once anyway; later writes mark their chunks again
        pendingChunks = n;
    }

    @Override
    public void saveSetup(MigrationFile f) throws IOException {
        if (toSend == null) {
            savePrepare(SaveOptions.PLAIN);
        }
        long before = f.position();
        AcceleratorState.writeSetup(f, device.spec().size(), Accelerator.CHUNK_SIZE);
        f.putBe64(AcceleratorState.END_OF_STATE);
        transferred.addAndGet(f.position() - before);
    }

    @Override
    public boolean saveIterate(MigrationFile f) throws IOException {
        long start = System.nanoTime();
        long before = f.position();
        int sent = 0;
        while (!f.rateLimitExceeded()) {
            int c = nextToSend();
            if (c < 0) {
                break;
            }
            sendChunk(f, c, false);
            if (++sent % 16 == 0 && System.nanoTime() - start > MAX_ITERATE_NANOS) {
                break;
            }
        }
        if (initialLeft == 0 && !initDataSent && options.switchoverAck()) {
            // VFIO's INIT_DATA_SENT: the destination approves once it has loaded up to here.
            f.putBe64(AcceleratorState.INIT_DATA_SENT);
            initDataSent = true;
        }
        f.putBe64(AcceleratorState.END_OF_STATE);
        pendingChunks = toSend.cardinality();
        transferred.addAndGet(f.position() - before);
        return toSend.isEmpty();
    }

    /** The next chunk of this pass, from the cursor on; -1 when the pass is done. */
    private int nextToSend() {
        int c = toSend.nextSetBit(cursor);
        if (c < 0 && cursor > 0) {
            c = toSend.nextSetBit(0);
        }
        return c;
    }

    private void sendChunk(MigrationFile f, int c, boolean stable) throws IOException {
        toSend.clear(c);
        cursor = c + 1;
        if (initial.get(c)) {
            initial.clear(c);
            initialLeft--;
        }
        AcceleratorState.writeData(f, device.memory(), (long) c * Accelerator.CHUNK_SIZE, Accelerator.CHUNK_SIZE,
                stable, scratch);
    }

    @Override
    public boolean passComplete() {
        return toSend == null || toSend.isEmpty();
    }

    /** Called with the BQL held, at the end of a pass: the chunks written since are pending now. */
    @Override
    public long syncDirty() {
        long added = device.harvestDirty(toSend);
        cursor = 0;
        pendingChunks = toSend.cardinality();
        return added * Accelerator.CHUNK_SIZE;
    }

    @Override
    public long pendingBytes() {
        return pendingChunks * (Accelerator.CHUNK_SIZE + AcceleratorState.DATA_RECORD_HEADER_BYTES);
    }

    @Override
    public boolean completesOverMultifd() {
        return options.multifd() != null;
    }

    /** With the guest stopped, without the BQL, before RAM's END: the final state onto the channels. */
    @Override
    public void saveCompleteMultifd() throws IOException {
        if (options.multifd() != null && queuedPackets < 0) {
            device.harvestDirty(toSend);
            queuedPackets = queueFinalState(encodeConfig());
        }
    }

    /** With the guest stopped, without the BQL: the chunks still dirty and the register state. */
    @Override
    public void saveComplete(MigrationFile f) throws IOException {
        long before = f.position();
        if (options.multifd() != null) {
            saveCompleteMultifd(); // queued already unless called alone
            int packets = queuedPackets;
            f.putBe64(AcceleratorState.MULTIFD);
            f.putBe32(packets);
            multifdFinal = true;
        } else {
            device.harvestDirty(toSend);
            byte[] config = encodeConfig();
            for (int c = toSend.nextSetBit(0); c >= 0; c = toSend.nextSetBit(c + 1)) {
                sendChunk(f, c, true);
            }
            f.putBe64(AcceleratorState.CONFIG);
            f.putBytes(config);
        }
        f.putBe64(AcceleratorState.END_OF_STATE);
        pendingChunks = 0;
        transferred.addAndGet(f.position() - before);
    }

    /** The register state's VMSD body; read with the engine stopped. */
    private byte[] encodeConfig() throws IOException {
        MigrationFile buf = MigrationFile.toMemory();
        VmStateCodec.save(buf, Accelerator.VMSD, device, null);
        return buf.toByteArray();
    }

    /**
     * The final state as device-state packets on the multifd channels (the channel threads
     * checksum and write the chunks straight from device memory): the dirty chunks, then the
     * register state. Returns how many packets.
     */
    private int queueFinalState(byte[] config) throws IOException {
        long[] offsets = new long[CHUNKS_PER_PACKET];
        int idx = 0;
        int n = 0;
        long bytes = 0;
        for (int c = toSend.nextSetBit(0); c >= 0; c = toSend.nextSetBit(c + 1)) {
            toSend.clear(c);
            offsets[n++] = (long) c * Accelerator.CHUNK_SIZE;
            if (n == CHUNKS_PER_PACKET) {
                bytes += queue(AcceleratorState.dataPacket(idx++, device.memory(), offsets, n, Accelerator.CHUNK_SIZE));
                n = 0;
            }
        }
        if (n > 0) {
            bytes += queue(AcceleratorState.dataPacket(idx++, device.memory(), offsets, n, Accelerator.CHUNK_SIZE));
        }
        bytes += queue(AcceleratorState.configPacket(idx, config));
        transferred.addAndGet(bytes);
        return idx + 1;
    }

    private long queue(org.livemig.stream.MultifdPacket.DeviceStatePayload p) throws IOException {
        options.multifd().queue(device.idstr(), 0, p);
        return org.livemig.stream.MultifdPacket.DEVICE_STATE_HEADER_BYTES + p.size();
    }

    @Override
    public void saveCleanup() {
        toSend = null;
        initial = null;
    }

    // ------------------------------------------------------------------ destination

    /**
     * What the steps that apply the final state share: packets in (each one step), how many data
     * packets are applied, and the config's turn (after the last of them).
     */
    private final class FinalState {
        final ConcurrentLinkedQueue<Packet> queue = new ConcurrentLinkedQueue<>();
        final Semaphore room = new Semaphore(QUEUED_PACKETS);
        final BitSet seen = new BitSet();
        final AtomicInteger applied = new AtomicInteger();
        final AtomicBoolean configClaimed = new AtomicBoolean();
        /** The config packet's idx (the number of data packets), -1 until it arrives. Guarded by seen. */
        int configIdx = -1;
        volatile Packet config;
        volatile boolean done;
        volatile String failed;
        volatile boolean started;
        /** Keeps mig/dst/main's wait for the load threads open until the config is applied. */
        volatile Runnable hold;
    }

    private record Packet(int idx, boolean config, ByteBuffer data, long at) {}

    private volatile FinalState finalState;

    @Override
    public void loadSetup(LoadContext context) {
        this.load = context;
        this.approvalDue = false;
        this.finalState = new FinalState();
    }

    @Override
    public boolean switchoverAckNeeded() {
        LoadContext c = load;
        return c != null && c.switchoverAck();
    }

    /**
     * Test hook: with {@code hold}, this destination device does not approve the switchover when
     * its initial data is loaded, as a device still busy with it would not; releasing approves
     * then if it was due.
     */
    public void holdSwitchoverApproval(boolean hold) throws IOException {
        holdApproval = hold;
        if (!hold && approvalDue) {
            approvalDue = false;
            load.approveSwitchover();
        }
    }

    /**
     * Test hook: while {@code gate} is closed, this destination device applies no packet of its
     * final state (each step waits for it, without the BQL, as a slow device would); null lifts it.
     */
    public void gateFinalStateLoad(CountDownLatch gate) {
        finalStateGate = gate;
    }

    /** Called without the BQL on {@code mig/dst/main} (or with it, for a snapshot): one START/PART/END body. */
    @Override
    public void loadState(MigrationFile f, int versionId) throws IOException {
        LoadContext ctx = load;
        long size = device.spec().size();
        int chunk = Accelerator.CHUNK_SIZE;
        while (true) {
            long at = f.position();
            long marker = AcceleratorState.readMarker(f);
            if (marker == AcceleratorState.END_OF_STATE) {
                return;
            } else if (marker == AcceleratorState.SETUP) {
                AcceleratorState.Setup s = AcceleratorState.readSetup(f);
                if (s.size() != size || s.chunkSize() != chunk) {
                    throw new StreamFormatException(String.format("accel '%s': the source's device has 0x%x bytes in"
                            + " chunks of 0x%x, this one 0x%x in chunks of 0x%x", device.name(), s.size(),
                            Integer.toUnsignedLong(s.chunkSize()), size, chunk), at);
                }
            } else if (marker == AcceleratorState.DATA) {
                AcceleratorState.Chunk c = AcceleratorState.readChunk(f, at, size, chunk);
                f.readInto(device.memory(), c.offset(), c.length());
                AcceleratorState.checkCrc(c, device.memory(), device.name());
            } else if (marker == AcceleratorState.INIT_DATA_SENT) {
                if (ctx == null || !ctx.switchoverAck()) {
                    // VFIO's words for the same refusal
                    throw new StreamFormatException(device.idstr() + ": Received INIT_DATA_SENT but switchover ack"
                            + " is not used", at);
                }
                if (holdApproval) {
                    approvalDue = true;
                } else {
                    ctx.approveSwitchover();
                }
            } else if (marker == AcceleratorState.CONFIG) {
                applyConfig(VmStateCodec.decode(f, Accelerator.VMSD, Accelerator.VMSD.versionId()), at, ctx);
            } else if (marker == AcceleratorState.MULTIFD) {
                int packets = f.getBe32();
                FinalState fs = finalState;
                if (fs == null || !fs.started) {
                    throw new StreamFormatException("accel '" + device.name() + "': its final state comes in " + packets
                            + " multifd packets, but no SWITCHOVER_START came before it (or this side has no"
                            + " multifd)", at);
                }
            } else {
                throw new StreamFormatException("accel '" + device.name() + "': record "
                        + AcceleratorState.markerName(marker) + " does not belong in a section body", at);
            }
        }
    }

    private void applyConfig(VmValue.Struct staged, long at, LoadContext ctx) throws IOException {
        try {
            VmStateCodec.apply(Accelerator.VMSD, device, staged,
                    ctx == null ? org.livemig.vmstate.HookLock.HELD : ctx.hookLock());
        } catch (VmStateException e) {
            throw new StreamFormatException("device refused its state: " + e.getMessage(), at);
        }
    }

    /**
     * SWITCHOVER_START: the load stays open until this device's final state is applied, and each
     * packet (one that came early too) becomes a step for the load threads, or for
     * {@code mig/dst/main} once it waits for them: no thread sits waiting for packets, and the
     * last packet is applied by whichever thread is free rather than handed on.
     */
    @Override
    public void switchoverStart() {
        LoadContext ctx = load;
        FinalState fs = finalState;
        if (ctx == null || fs == null || ctx.loadThreads() == 0 || fs.started) {
            return;
        }
        fs.hold = ctx.holdLoad("accel '" + device.name() + "' final state");
        fs.started = true;
        for (int i = fs.queue.size(); i > 0; i--) {
            startStep(ctx, fs);
        }
    }

    private void startStep(LoadContext ctx, FinalState fs) {
        ctx.startLoadStep("accel '" + device.name() + "' final state", quit -> applyNext(fs, quit));
    }

    /**
     * A multifd channel thread, without the BQL: one device-state packet. Checked here for what
     * can be checked alone (header, idx seen once), then queued for the load threads; waits while
     * {@value #QUEUED_PACKETS} packets wait already.
     */
    @Override
    public void loadStateBuffer(byte[] data, long at) throws IOException {
        FinalState fs = finalState;
        if (fs == null) {
            throw new StreamFormatException("accel '" + device.name() + "': a device-state packet before the load began", at);
        }
        ByteBuffer b = ByteBuffer.wrap(data);
        AcceleratorState.PacketHeader h = AcceleratorState.readPacketHeader(b, at);
        synchronized (fs.seen) {
            if (fs.seen.get(h.idx())) {
                throw new StreamFormatException("accel '" + device.name() + "': device-state packet " + h.idx()
                        + " came twice", at);
            }
            if (h.config()) {
                if (fs.configIdx >= 0) {
                    throw new StreamFormatException("accel '" + device.name() + "': a second config packet (" + h.idx()
                            + ", the first was " + fs.configIdx + ")", at);
                }
                if (fs.seen.length() > h.idx()) {
                    throw new StreamFormatException("accel '" + device.name() + "': config packet " + h.idx()
                            + " but data packet " + (fs.seen.length() - 1) + " came", at);
                }
                fs.configIdx = h.idx();
            } else if (fs.configIdx >= 0 && h.idx() >= fs.configIdx) {
                throw new StreamFormatException("accel '" + device.name() + "': data packet " + h.idx()
                        + " after the config packet " + fs.configIdx, at);
            }
            fs.seen.set(h.idx());
        }
        if (!h.config()) {
            try {
                while (!fs.room.tryAcquire(100, TimeUnit.MILLISECONDS)) {
                    if (fs.failed != null || fs.done) {
                        throw new IOException("accel '" + device.name() + "': its load ended: "
                                + (fs.failed != null ? fs.failed : "done"));
                    }
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IOException("interrupted queueing a device-state packet", e);
            }
        }
        fs.queue.add(new Packet(h.idx(), h.config(), b.slice(), at + AcceleratorState.PACKET_HEADER_BYTES));
        mark("queued " + h.idx());
        LoadContext ctx = load;
        if (fs.started && ctx != null) {
            startStep(ctx, fs); // one that came before SWITCHOVER_START has its step from there
        }
    }

    /**
     * A step, on a load thread or on {@code mig/dst/main} waiting for them, without the BQL: one
     * queued packet applied (a step may find none: another took it), then the register state
     * when every data packet is in; applying it ends the device's hold on the load.
     */
    private void applyNext(FinalState fs, BooleanSupplier quit) throws Exception {
        try {
            if (quit.getAsBoolean() || fs.failed != null || fs.done) {
                return; // the migration is ending or another step failed: that failure is the reason
            }
            CountDownLatch gate = finalStateGate;
            while (gate != null && !gate.await(100, TimeUnit.MILLISECONDS) && !quit.getAsBoolean()) {
                gate = finalStateGate;
            }
            Packet p = fs.queue.poll();
            if (p == null) {
                return;
            }
            if (p.config()) {
                fs.config = p;
            } else {
                applyData(p);
                mark("applied " + p.idx());
                fs.applied.incrementAndGet();
                fs.room.release();
            }
            Packet cfg = fs.config;
            if (cfg != null && fs.applied.get() == cfg.idx() && fs.configClaimed.compareAndSet(false, true)) {
                MigrationFile body = MigrationFile.ofBytes(toArray(cfg.data()));
                applyConfig(VmStateCodec.decode(body, Accelerator.VMSD, Accelerator.VMSD.versionId()), cfg.at(), load);
                fs.done = true;
                mark("config");
                release(fs);
            }
        } catch (Exception | Error e) {
            fs.failed = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
            release(fs);
            throw e;
        }
    }

    private void mark(String step) {
        LoadContext c = load;
        if (c != null) {
            c.mark(step);
        }
    }

    private static void release(FinalState fs) {
        Runnable h = fs.hold;
        if (h != null) {
            h.run();
        }
    }

    private static byte[] toArray(ByteBuffer b) {
        byte[] a = new byte[b.remaining()];
        b.duplicate().get(a);
        return a;
    }

    /** Without the BQL: each chunk of a data packet checked against its checksum, then copied into device memory. */
    private void applyData(Packet p) throws StreamFormatException {
        ByteBuffer d = p.data();
        long size = device.spec().size();
        while (d.hasRemaining()) {
            AcceleratorState.Chunk c = AcceleratorState.readPacketChunk(d, p.at(), size, Accelerator.CHUNK_SIZE);
            int got = AcceleratorState.crc(d, c.length());
            if (got != c.crc()) {
                throw new StreamFormatException(String.format("accelerator '%s': chunk at 0x%x (0x%x bytes) in"
                        + " device-state packet %d is damaged: CRC-32C 0x%08x, the source sent 0x%08x", device.name(),
                        c.offset(), c.length(), p.idx(), got, c.crc()), c.at());
            }
            java.lang.foreign.MemorySegment.copy(d.array(), d.arrayOffset() + d.position(), device.memory(),
                    java.lang.foreign.ValueLayout.JAVA_BYTE, c.offset(), c.length());
            d.position(d.position() + c.length());
        }
    }
}
