package org.livemig.migration;

import java.io.IOException;
import java.lang.System.Logger.Level;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import org.livemig.machine.Machine;
import org.livemig.machine.RunState;
import org.livemig.memory.RamBlock;
import org.livemig.migration.colo.ColoPrimary;
import org.livemig.migration.colo.ColoState;
import org.livemig.migration.multifd.MultifdSender;
import org.livemig.migration.postcopy.OutgoingHost;
import org.livemig.migration.ram.MappedRamSaver;
import org.livemig.migration.postcopy.PostcopySource;
import org.livemig.migration.postcopy.RequestThreads;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.PostcopyAdviseCommand;
import org.livemig.stream.QemuStream;
import org.livemig.trace.Trace;
import org.livemig.transport.ChannelSecurity;
import org.livemig.transport.FaultInjectingConnection;
import org.livemig.transport.FaultPoints;
import org.livemig.transport.FaultSpec;
import org.livemig.transport.MigrationAddress;
import org.livemig.transport.MigrationConnection;
import org.livemig.transport.Transports;
import org.livemig.vmstate.VmDesc;

/**
 * One outgoing migration on thread {@code mig/src/main} (QEMU's migration_thread): setup,
 * iterate under {@code max-bandwidth} until what is left fits in {@code downtime-limit}, switch
 * over with the guest stopped, complete. Any failure before completion leaves the source running
 * with its state intact. After {@code migrate-start-postcopy} the switch and the rest belong to
 * {@link PostcopySource}, which sees this migration through {@link OutgoingHost}.
 *
 * <p>Fields are owned by the migration thread unless marked volatile (read by the monitor).
 */
public final class Outgoing {
    private static final System.Logger LOG = System.getLogger(Outgoing.class.getName());
    public static final String THREAD_NAME = "mig/src/main";
    private static final long UPDATE_PERIOD_NANOS = 100_000_000L;
    private static final Duration CONNECT_TIMEOUT = Duration.ofSeconds(10);
    private static final long SHUT_TIMEOUT_MILLIS = 60_000;
    /** Share of the downtime limit that the remaining RAM may take at switchover. */
    private static final double SWITCHOVER_BUDGET = 0.75;

    private final Machine machine;
    /** Replaced whole by {@link #applyParameters} (migrate-set-parameters while this runs). */
    private volatile MigrationParameters params;
    private final Set<Capability> caps;
    private final MigrationAddress address;
    private final MigrationEvents events;
    private final FaultSpec faults;
    private final StatusMachine status = new StatusMachine();
    private final RamStats ram = new RamStats();
    private final CountDownLatch continueSwitchover = new CountDownLatch(1);
    private final Thread thread;
    /** Where the account of the switch goes: INFO, FINE for a warm-up scratch migration. */
    private final Level accountLevel;
    /** Trace events are emitted (not for a warm-up's scratch migrations, which would litter a recording). */
    private final boolean traced;
    private volatile MigrationConnection connection;
    /** multifd's channels while they run; null without the capability. */
    private volatile MultifdSender multifd;
    /** The postcopy phase once it is asked for; null before. */
    private volatile PostcopySource postcopy;
    /** x-colo: the secondary's output channel (compared with ours), and the checkpoint loop once it runs. */
    private volatile MigrationConnection compareConnection;
    private volatile ColoPrimary colo;
    private ColoState coloState = new ColoState();
    /** xbzrle, compress and zero-page-detection on the main channel; null without them. */
    private volatile org.livemig.migration.ram.TargetPageSaver pageSaver;
    /** mapped-ram: how this migration uses its file (null without the capability), and its page writer. */
    private org.livemig.migration.ram.MappedRamOptions mappedRamOptions;
    private volatile MappedRamSaver mappedRam;
    /** Bytes mapped-ram wrote to the file beside the stream without multifd channels. */
    private final java.util.concurrent.atomic.AtomicLong fileBytes = new java.util.concurrent.atomic.AtomicLong();
    /** background-snapshot: how guest writes are tracked, who is told of the pause, and the snapshot once set up. */
    private String writeTracking = "auto";
    private java.util.function.Consumer<Machine> snapshotObserver;
    private volatile BackgroundSnapshot background;
    /** How long connecting took (for file:, the open and truncate of the file), and mapped-ram's account once saved. */
    private volatile long connectNanos;
    private volatile String mappedRamAccount;

    private volatile long startMillis;
    private final long startNanos = System.nanoTime();
    private volatile long setupTimeMillis = -1;
    private volatile long totalTimeMillis = -1;
    private volatile long downtimeMillis = -1;
    private volatile long expectedDowntimeMillis = -1;
    private volatile String error;
    private volatile long bandwidthBytesPerSec;
    private volatile long passes;
    private volatile int throttlePercent;
    private volatile ReturnPathReader returnPath;
    private volatile boolean postcopyRequested;
    /** switchover-ack: the migration is ready to switch over and holds for the destination's ack. */
    private volatile boolean awaitingSwitchoverAck;
    private int dirtyRateHighCount;
    /** The RAM half of the stream, made once connected. */
    private RamSaver saver;
    /** The guest was stopped by this migration, and whether it ran before (what a failure restores). */
    private boolean stoppedByUs;
    private boolean wasRunning;
    /** The whole precopy stream went out: the destination may be running the guest (see {@link #failed}). */
    private boolean destinationMayRun;

    /** Scheduling of mig/src/rp_thr; set before {@link #start}. */
    private RequestThreads requestThreads = new RequestThreads(0);
    /** TLS (or none) on every connection this migration makes; set before {@link #start}. */
    private volatile ChannelSecurity security = ChannelSecurity.PLAIN;

    void setChannelSecurity(ChannelSecurity s) {
        this.security = s;
    }

    /** mapped-ram's use of the file, or null without the capability; set before {@link #start}. */
    void setMappedRam(org.livemig.migration.ram.MappedRamOptions options) {
        this.mappedRamOptions = options;
    }

    /** background-snapshot's write tracking ("auto", "checked", "userfaultfd") and observer; set before {@link #start}. */
    void setWriteTracking(String kind, java.util.function.Consumer<Machine> observer) {
        this.writeTracking = kind;
        this.snapshotObserver = observer;
    }

    /** background-snapshot: how long the guest was stopped at its start, in ns, or -1. */
    public long snapshotPauseNanos() {
        BackgroundSnapshot b = background;
        return b == null ? -1 : b.pauseNanos();
    }

    /** background-snapshot: the pause by phase, for a log line, or null. */
    public String snapshotPauseAccount() {
        BackgroundSnapshot b = background;
        return b == null ? null : b.pauseAccount();
    }

    /** mapped-ram: where the save's time went (the open, channel waits and writes, bitmaps), once complete; else null. */
    public String mappedRamAccount() {
        return mappedRamAccount;
    }

    /** background-snapshot: the write tracking in use, or null (query-migrate, tests, the benchmark). */
    public org.livemig.memory.postcopy.WriteTracker writeTracker() {
        BackgroundSnapshot b = background;
        return b == null ? null : b.tracker();
    }

    Outgoing(Machine machine, MigrationParameters params, Set<Capability> caps, MigrationAddress address,
             MigrationEvents events, FaultSpec faults, boolean quiet) {
        this.faults = faults;
        this.accountLevel = quiet ? Level.DEBUG : Level.INFO;
        this.traced = !quiet;
        this.machine = machine;
        this.params = params;
        this.caps = caps.isEmpty() ? EnumSet.noneOf(Capability.class) : EnumSet.copyOf(caps);
        this.address = address;
        this.events = events;
        this.thread = Thread.ofPlatform().name(THREAD_NAME).daemon(true).unstarted(this::run);
        status.addListener((from, to) -> {
            if (traced) {
                Trace.status("source", from.qemuName(), to.qemuName());
            }
            events.statusChanged(to);
        });
    }

    /**
     * Called with the BQL held. A migration that failed as it was asked for, as QEMU's does when
     * it cannot parse a socket address: no thread, status failed with {@code error}, for
     * query-migrate and migrate-continue to report as QEMU's do.
     */
    static Outgoing failedAtStart(Machine machine, MigrationParameters params, MigrationEvents events, String error) {
        machine.bql().assertHeld();
        Outgoing o = new Outgoing(machine, params, EnumSet.noneOf(Capability.class), null, events, FaultSpec.NONE, true);
        o.startMillis = System.currentTimeMillis();
        o.totalTimeMillis = 0;
        o.error = error;
        o.status.force(MigrationStatus.FAILED);
        return o;
    }

    /** Called with the BQL held: starts {@code mig/src/main}. */
    void start() {
        machine.bql().assertHeld();
        startMillis = System.currentTimeMillis();
        status.transition(MigrationStatus.NONE, MigrationStatus.SETUP);
        thread.start();
    }

    public MigrationStatus status() { return status.get(); }
    public StatusMachine statusMachine() { return status; }
    public RamStats ramStats() { return ram; }
    public String error() { return error; }
    public long setupTimeMillis() { return setupTimeMillis; }
    public long downtimeMillis() { return downtimeMillis; }
    public long expectedDowntimeMillis() { return expectedDowntimeMillis; }
    public long passes() { return passes; }
    public long bandwidthBytesPerSec() { return bandwidthBytesPerSec; }
    public int throttlePercent() { return throttlePercent; }
    public Thread thread() { return thread; }
    public MigrationParameters parameters() { return params; }

    /**
     * New parameters while this migration runs (any thread). The migration thread reads them at
     * its next loop turn: the rate limit of the main channel, the downtime limit of the next
     * switchover decision, the throttle settings of the next sync.
     */
    void applyParameters(MigrationParameters p) {
        params = p;
        org.livemig.migration.ram.TargetPageSaver ps = pageSaver;
        if (ps != null) {
            ps.requestXbzrleCacheSize(p.xbzrleCacheSize); // a new cache, as QEMU's resize makes
        }
    }

    public long pongRoundTripNanos() {
        ReturnPathReader rp = returnPath;
        return rp == null ? -1 : rp.pongRoundTripNanos();
    }

    /** Total time so far, or of the whole migration once it ended. */
    public long totalTimeMillis() {
        long t = totalTimeMillis;
        return t >= 0 ? t : System.currentTimeMillis() - startMillis;
    }

    /** Cancels the migration (QMP migrate_cancel); any thread. The source keeps running. */
    public void cancel() {
        while (true) {
            MigrationStatus s = status.get();
            if (!s.isActive() || s == MigrationStatus.CANCELLING || s == MigrationStatus.COLO) {
                return;
            }
            if (status.transition(s, MigrationStatus.CANCELLING)) {
                break;
            }
        }
        shutdownChannels();
        continueSwitchover.countDown();
        LockSupport.unpark(thread);
    }

    /**
     * Yank: shuts the connection down so that blocked IO fails at once; the migration then fails
     * (not cancelled) and the source keeps running. Any thread, including qmp-io without the BQL.
     */
    public void yank() {
        MigrationConnection c = connection;
        if (c != null) {
            c.shutdown();
        }
        MultifdSender m = multifd;
        if (m != null) {
            m.shutdown();
        }
        continueSwitchover.countDown();
    }

    /** Shuts every channel down (main, preempt, multifd), so that IO on them fails at once. Any thread. */
    private void shutdownChannels() {
        MigrationConnection c = connection;
        if (c != null) {
            c.shutdown();
        }
        PostcopySource pc = postcopy;
        if (pc != null) {
            pc.shutdownPreempt();
        }
        MultifdSender m = multifd;
        if (m != null) {
            m.shutdown();
        }
        MappedRamSaver mr = mappedRam;
        if (mr != null) {
            mr.shutdown();
        }
        MigrationConnection cc = compareConnection;
        if (cc != null) {
            cc.shutdown();
        }
    }

    /** Lets a migration paused in pre-switchover go on (QMP migrate-continue). */
    public boolean continueFromPreSwitchover() {
        if (status.get() != MigrationStatus.PRE_SWITCHOVER) {
            return false;
        }
        continueSwitchover.countDown();
        return true;
    }

    /** Waits for the migration thread to end (cleanup BH, tests). */
    public boolean join(long millis) throws InterruptedException {
        thread.join(millis);
        return !thread.isAlive();
    }

    private boolean cancelled() {
        MigrationStatus s = status.get();
        return s == MigrationStatus.CANCELLING || s == MigrationStatus.CANCELLED;
    }

    /**
     * Called without the BQL; blocks on IO: {@code mig/src/main}: setup, iterate, then complete by
     * switching over or through postcopy.
     */
    private void run() {
        machine.bql().assertNotHeld();
        JitDirectives.install(); // once per process; the warm-up, when there is one, did it already
        try {
            MigrationFile f = setup();
            if (background != null) {
                completeInBackground(f);
                return;
            }
            iterate(f, saver);
            if (postcopyRequested) {
                completeThroughPostcopy(f, saver);
            } else {
                complete(f, saver);
            }
        } catch (Exception | Error e) {
            // An Error too (out of memory while encoding device state, say): the migration fails
            // and the source resumes rather than staying stopped with no status change.
            failed(e);
        } finally {
            releaseChannels();
        }
    }

    /**
     * Called without the BQL; blocks on IO: connects, opens the multifd channels and the return
     * path, writes the header and every iterative handler's START section, and goes active.
     * Returns the main channel.
     */
    private MigrationFile setup() throws IOException {
        long c0 = System.nanoTime();
        MigrationConnection conn = connect(address, faults);
        connectNanos = System.nanoTime() - c0;
        connection = conn;
        if (cancelled()) {
            throw new IOException("cancelled");
        }
        MigrationFile f = MigrationFile.forWriting(conn.out());
        applyRateLimit(f, false);
        saver = RamHandlers.of(machine).beginSave(ram);
        if (mappedRamOptions != null) {
            saver.useMappedRam(openMappedRam(conn, f)); // its channels write the file: no multifd connections
        } else if (caps.contains(Capability.MULTIFD)) {
            saver.useMultifd(connectMultifd(f));
        } else {
            startTargetPageSaver(saver);
        }
        if (caps.contains(Capability.BACKGROUND_SNAPSHOT)) {
            BackgroundSnapshot b = new BackgroundSnapshot(new SnapshotHost(),
                    org.livemig.memory.postcopy.WriteTracker.of(writeTracking, machine.ram(), msg -> LOG.log(Level.INFO, msg)), snapshotObserver);
            background = b;
            saver.useWriteTracker(b.tracker());
        }
        if (caps.contains(Capability.X_COLO)) {
            // After the multifd channels: the secondary takes its connections in this order.
            compareConnection = connect(address, FaultSpec.NONE);
        }
        machine.bql().withHeld(false, saver::startDirtyTracking);
        // As QEMU: the sync that starts dirty logging is pass 1 (MIGRATION_PASS before 'active').
        events.pass(ram.dirtySyncCount.get());
        SaveVm.writeHeader(f);
        boolean postcopyCap = caps.contains(Capability.POSTCOPY_RAM);
        if (caps.contains(Capability.RETURN_PATH) || postcopyCap) {
            startReturnPath(conn, saver);
            SaveVm.writeCommand(f, QemuStream.CMD_OPEN_RETURN_PATH, new byte[0]);
            ping(f, 1);
        }
        if (postcopyCap) {
            new PostcopyAdviseCommand(RamBlock.PAGE_SIZE, RamBlock.PAGE_SIZE).write(f);
        }
        if (caps.contains(Capability.X_COLO)) {
            // The destination becomes a COLO secondary after the initial migration.
            SaveVm.writeCommand(f, QemuStream.CMD_ENABLE_COLO, new byte[0]);
        }
        SaveVm.savePrepare(machine, new org.livemig.vmstate.SaveOptions(caps.contains(Capability.SWITCHOVER_ACK),
                multifd == null ? null : deviceStateChannels(multifd)));
        SaveVm.saveSetup(machine, f);
        f.flush();
        FaultInjectingConnection.reached(conn, FaultPoints.SETUP);
        setupTimeMillis = System.currentTimeMillis() - startMillis;
        if (!status.transition(MigrationStatus.SETUP, MigrationStatus.ACTIVE)) {
            throw new IOException("cancelled during setup");
        }
        return f;
    }

    /**
     * Called without the BQL; blocks on IO: the switchover. Stops the guest (and waits in
     * pre-switchover when asked), reads the devices under the BQL, sends the rest of RAM, the
     * devices, EOF and the vmdesc without it, and completes once the destination says it loaded.
     */
    private void complete(MigrationFile f, RamSaver saver) throws IOException, InterruptedException {
        long pendingAtSwitch = SaveVm.pendingBytes(machine);
        long downtimeStart = System.nanoTime();
        stopGuest();
        if (caps.contains(Capability.PAUSE_BEFORE_SWITCHOVER)) {
            if (!status.transition(MigrationStatus.ACTIVE, MigrationStatus.PRE_SWITCHOVER)) {
                throw new IOException("cancelled");
            }
            continueSwitchover.await(); // woken by migrate-continue or cancel
            if (!status.transition(MigrationStatus.PRE_SWITCHOVER, MigrationStatus.DEVICE)) {
                throw new IOException("cancelled");
            }
            downtimeStart = System.nanoTime();
        } else if (!status.transition(MigrationStatus.ACTIVE, MigrationStatus.DEVICE)) {
            throw new IOException("cancelled");
        }
        FaultInjectingConnection.reached(connection, FaultPoints.DEVICE);
        awaitingSwitchoverAck = false;
        if (SaveVm.completesOverMultifd(machine)) {
            // QEMU 10: the destination's devices start their load threads now, while we go on.
            SaveVm.writeCommand(f, QemuStream.CMD_SWITCHOVER_START, new byte[0]);
            f.flush();
        }
        long t1 = System.nanoTime();
        VmDesc vmdesc = new VmDesc(RamBlock.PAGE_SIZE);
        byte[] devices = machine.bql().callWithHeld(false, () -> {
            machine.cpuSynchronizeAllStates();
            return SaveVm.encodeDevices(machine, vmdesc);
        });
        // Remaining RAM and the device state go out without the lock.
        long t2 = System.nanoTime();
        f.setRateLimit(0);
        SaveVm.saveCompleteIterative(machine, f);
        events.pass(ram.dirtySyncCount.get()); // the last sync, with the guest stopped (QEMU sends it too)
        long t3 = System.nanoTime();
        long before = f.position();
        f.putBytes(devices);
        SaveVm.writeEofAndVmdesc(f, vmdesc);
        f.flush();
        ram.downtimeBytes.addAndGet(f.position() - before);
        ram.transferred.set(sent(f));
        MultifdSender m = multifd;
        ReturnPathReader rp = returnPath;
        if (m != null) {
            // Every page is queued (the last RAM section synced); the channels end while we wait
            // for SHUT, and a channel that fails its last packets ends that wait.
            m.beginFinish();
            if (rp != null) {
                m.onFailure(rp::abortShutWait);
            } else {
                m.finish();
            }
        }
        long t4 = System.nanoTime();
        // The last byte is out: from here the destination may load it all and run the guest, so
        // a failure leaves this guest paused (two running copies are worse than a paused one),
        // unless the return path broke before (the destination was gone by then).
        destinationMayRun = rp == null || rp.error() == null;
        FaultInjectingConnection.reached(connection, FaultPoints.COMPLETE);
        if (rp != null) {
            int shut;
            try {
                shut = rp.awaitShut(SHUT_TIMEOUT_MILLIS);
            } catch (IOException e) {
                if (m != null && m.failure() != null) {
                    // a channel's last packets are lost: the destination cannot complete its load
                    destinationMayRun = false;
                }
                throw e;
            }
            if (shut != 0) {
                destinationMayRun = false; // it said it failed: it does not run the guest
                throw new IOException("destination failed to load the migration (SHUT " + shut + ")");
            }
            if (m != null) {
                try {
                    m.finish(); // the threads are done or nearly: join them and close the channels
                } catch (IOException e) {
                    // SHUT 0: the destination had every packet and runs the guest; nothing to undo
                    LOG.log(Level.WARNING, "multifd channels after the destination's SHUT 0: " + e.getMessage());
                }
            }
        }
        long t5 = System.nanoTime();
        downtimeMillis = TimeUnit.NANOSECONDS.toMillis(t5 - downtimeStart);
        totalTimeMillis = System.currentTimeMillis() - startMillis;
        if (traced) {
            Trace.switchover(t1 - downtimeStart, t2 - t1, t3 - t2, t4 - t3, t5 - t4, pendingAtSwitch, bandwidthBytesPerSec);
        }
        LOG.log(accountLevel, String.format("switchover: downtime %d ms = stop %.1f + devices %.1f + RAM %.1f (%d KiB pending, estimate %d MB/s) + rest %.1f + ack %.1f ms (clock %d)",
                downtimeMillis, (t1 - downtimeStart) / 1e6, (t2 - t1) / 1e6, (t3 - t2) / 1e6,
                pendingAtSwitch >> 10, bandwidthBytesPerSec / 1_000_000, (t4 - t3) / 1e6, (t5 - t4) / 1e6, downtimeStart));
        MappedRamSaver mr = mappedRam;
        if (mr != null) {
            mappedRamAccount = String.format("open %.1f ms, setup %d ms, %s", connectNanos / 1e6, setupTimeMillis,
                    mr.account());
            LOG.log(accountLevel, "mapped-ram save: " + mappedRamAccount);
        }
        if (caps.contains(Capability.X_COLO)) {
            runColo(f);
            return;
        }
        saver.stopDirtyTracking();
        completed(MigrationStatus.DEVICE);
    }

    /**
     * Called without the BQL; blocks on IO and until a failover: the initial migration ended in
     * status colo instead of completed; the checkpoint loop runs here until COLO ends, and the
     * primary then goes on alone (its guest runs, as QEMU's does after COLO).
     */
    private void runColo(MigrationFile f) throws IOException {
        destinationMayRun = false; // COLO runs both guests by design; its end decides, below
        totalTimeMillis = System.currentTimeMillis() - startMillis;
        ColoPrimary c = new ColoPrimary(new ColoHost(), coloState, f, MigrationFile.forReading(connection.in()), saver,
                compareConnection); // the mode first, then the status (query-colo-status agrees with query-migrate)
        colo = c;
        if (!status.transition(MigrationStatus.DEVICE, MigrationStatus.COLO)) {
            c.notStarted();
            throw new IOException("cancelled at completion");
        }
        c.run();
        saver.stopDirtyTracking();
        machine.bql().withHeld(false, () -> {
            if (!machine.runState().isRunning() && machine.runState() != RunState.SHUTDOWN) {
                machine.vmStart();
            }
        });
        if (status.get() != MigrationStatus.COMPLETED) {
            if (c.abandoned()) {
                status.force(MigrationStatus.CANCELLING); // ended from outside: a cancel, not a failure
                throw new IOException("cancelled");
            }
            throw new IOException("COLO ended without a failover (status " + status.get().qemuName() + ")");
        }
    }

    /** The COLO primary, or null while none runs (the monitor's failover, query-migrate). */
    public ColoPrimary colo() {
        return colo;
    }

    void setColoState(ColoState s) {
        this.coloState = s;
    }

    /** This migration as its COLO primary sees it. */
    private final class ColoHost implements ColoPrimary.Host {
        @Override public Machine machine() { return machine; }
        @Override public StatusMachine status() { return status; }
        @Override public long checkpointDelayMillis() { return params.xCheckpointDelay; }

        @Override
        public void shutdownChannels() {
            Outgoing.this.shutdownChannels();
        }
    }

    /**
     * Called without the BQL; blocks on IO: postcopy takes over the switch and the rest of the
     * migration ({@link PostcopySource}); the guest then lives on the destination.
     */
    private void completeThroughPostcopy(MigrationFile f, RamSaver saver) throws IOException, InterruptedException {
        PostcopySource pc = new PostcopySource(new Host(), saver);
        postcopy = pc;
        stoppedByUs = true;
        wasRunning = pc.run(f);
        totalTimeMillis = System.currentTimeMillis() - startMillis;
        saver.stopDirtyTracking();
        completed(MigrationStatus.POSTCOPY_ACTIVE);
    }

    /**
     * Called without the BQL; blocks on IO: a background snapshot's RAM, devices and end
     * (bg_migration_thread after its setup); the guest keeps its run state.
     */
    private void completeInBackground(MigrationFile f) throws IOException, InterruptedException {
        BackgroundSnapshot b = background;
        b.run(f, saver);
        downtimeMillis = TimeUnit.NANOSECONDS.toMillis(b.pauseNanos());
        totalTimeMillis = System.currentTimeMillis() - startMillis;
        LOG.log(accountLevel, String.format("background snapshot: guest stopped %.1f ms at the start (%s); %d guest writes"
                        + " waited for their page, the longest %.2f ms (write tracking: %s)", b.pauseNanos() / 1e6,
                b.pauseAccount(), b.tracker().waits(), b.tracker().longestWaitNanos() / 1e6, b.tracker().name()));
        saver.stopDirtyTracking();
        boolean done = machine.bql().callWithHeld(false, () -> status.transition(MigrationStatus.ACTIVE, MigrationStatus.COMPLETED));
        if (!done) {
            throw new IOException("cancelled at completion");
        }
    }

    /** This migration as its background snapshot sees it. */
    private final class SnapshotHost implements BackgroundSnapshot.Host {
        @Override public Machine machine() { return machine; }
        @Override public StatusMachine status() { return status; }
        @Override public RamStats ram() { return ram; }

        @Override
        public void applyRateLimit(MigrationFile f) {
            Outgoing.this.applyRateLimit(f, false);
        }

        @Override
        public long sent(MigrationFile f) {
            return Outgoing.this.sent(f);
        }
    }

    /**
     * Called without the BQL: mapped-ram's page writer on the connection's file. Its bytes count
     * against {@code f}'s rate limit, as multifd's do, and as multifd-bytes when it has channels.
     */
    private MappedRamSaver openMappedRam(MigrationConnection conn, MigrationFile f)
            throws IOException {
        org.livemig.migration.ram.MappedRamOptions o = mappedRamOptions;
        java.util.concurrent.atomic.AtomicLong counter = o.channels() > 0 ? ram.multifdBytes : fileBytes;
        MappedRamSaver m = MappedRamSaver.open(o, conn.fileChannel(),
                machine.ram().blocks(), n -> {
                    counter.addAndGet(n);
                    f.accountOtherChannel(n);
                });
        mappedRam = m;
        return m;
    }

    /** Called without the BQL: stops the guest for the switchover, remembering whether it ran. */
    private void stopGuest() {
        boolean running = machine.bql().callWithHeld(false, () -> {
            boolean r = machine.runState().isRunning();
            machine.vmStop(RunState.FINISH_MIGRATE);
            return r;
        });
        wasRunning = running;
        stoppedByUs = true;
    }

    /** Called without the BQL: {@code from} to completed, the guest left in postmigrate. */
    private void completed(MigrationStatus from) throws IOException {
        machine.bql().withHeld(false, () -> {
            if (status.transition(from, MigrationStatus.COMPLETED)) {
                machine.setRunState(RunState.POSTMIGRATE);
            }
        });
        if (status.get() != MigrationStatus.COMPLETED) {
            throw new IOException("cancelled at completion");
        }
    }

    /**
     * Called without the BQL: the migration failed or was cancelled. The source runs its guest
     * again unless the destination may have started it (postcopy's package went out, or the
     * whole precopy stream did and no acknowledgement came back): then it stays paused.
     */
    private void failed(Throwable e) {
        boolean wasCancel = cancelled();
        error = wasCancel ? null : describe(security.explain(e));
        if (!wasCancel) {
            // One line for the operator; the stack trace only at debug level (FINE).
            LOG.log(Level.WARNING, "outgoing migration failed: " + error);
            LOG.log(Level.DEBUG, "outgoing migration failed", e);
        }
        totalTimeMillis = System.currentTimeMillis() - startMillis;
        if (saver != null) {
            saver.stopDirtyTracking();
        }
        BackgroundSnapshot bg = background;
        if (bg != null) {
            bg.abort(saver); // every guest write waiting for its page goes on
        }
        PostcopySource pc = postcopy;
        boolean packageSent = pc != null && pc.packageSent();
        boolean resume = stoppedByUs && wasRunning && !packageSent && !destinationMayRun;
        if (stoppedByUs && wasRunning && destinationMayRun) {
            LOG.log(Level.WARNING, "the destination may have loaded the whole migration and run the guest, so this guest stays paused:"
                    + " 'cont' here only if the destination's is not running");
        }
        boolean stopped = stoppedByUs;
        machine.bql().withHeld(false, () -> {
            machine.setThrottlePercent(0);
            if (resume) {
                machine.vmStart();
            } else if (stopped) {
                machine.setRunState(RunState.PAUSED);
            }
            status.force(wasCancel ? MigrationStatus.CANCELLED : MigrationStatus.FAILED);
        });
    }

    /** Closes every channel at the end, however the migration ended. */
    private void releaseChannels() {
        machine.setThrottlePercent(0);
        throttlePercent = 0;
        MultifdSender m = multifd;
        if (m != null) {
            m.close();
        }
        org.livemig.migration.ram.TargetPageSaver ps = pageSaver;
        if (ps != null) {
            ps.close();
        }
        MappedRamSaver mr = mappedRam;
        if (mr != null) {
            mr.close();
        }
        BackgroundSnapshot bg = background;
        if (bg != null) {
            bg.abort(saver);
        }
        PostcopySource pc = postcopy;
        if (pc != null) {
            pc.close();
        }
        closeQuietly(connection);
        closeQuietly(compareConnection);
    }

    private static String describe(Throwable e) {
        String m = e.getMessage();
        return m == null ? e.getClass().getSimpleName() : m;
    }

    private static void closeQuietly(MigrationConnection c) {
        if (c != null) {
            try {
                c.close();
            } catch (IOException e) {
                LOG.log(Level.DEBUG, "closing migration connection", e);
            }
        }
    }

    /** Called without the BQL; blocks on IO: a new connection to {@code to}, with test faults. */
    private MigrationConnection connect(MigrationAddress to, FaultSpec withFaults) throws IOException {
        machine.bql().assertNotHeld();
        MigrationConnection c;
        try {
            c = Transports.connect(to, CONNECT_TIMEOUT);
        } catch (IOException e) {
            // query-migrate's error-desc in QEMU's words: "Failed to connect to 'HOST:PORT': why".
            String where = switch (to) {
                case MigrationAddress.Tcp t -> t.hostPort();
                case MigrationAddress.Unix u -> u.path().toString();
                default -> null;
            };
            if (where == null) {
                throw e;
            }
            Throwable cause = e.getCause() != null && e.getCause().getMessage() != null ? e.getCause() : e;
            throw new IOException("Failed to connect to '" + where + "': " + cause.getMessage(), e);
        }
        return FaultInjectingConnection.wrapIfAny(security.client(c, to), withFaults);
    }

    /** The main channel's rate limit for this phase, from the current parameters. */
    private void applyRateLimit(MigrationFile f, boolean postcopyPhase) {
        long want = postcopyPhase ? params.maxPostcopyBandwidth : params.maxBandwidth;
        if (f.rateLimit() != want) {
            f.setRateLimit(want);
        }
    }

    /**
     * The rate window's budget is spent: flush, then park until the window ends (at least
     * {@code minNanos}). Buffered bytes count against the budget, so they go out first, or a
     * limit under the buffer's size per window would never send them.
     */
    private static void waitOutRateWindow(MigrationFile f, long minNanos) throws IOException {
        f.flush();
        long wait = Math.max(minNanos, f.nanosUntilRateWindowEnds());
        if (wait > 0) {
            LockSupport.parkNanos(wait);
        }
    }

    void setRequestThreads(RequestThreads threads) {
        this.requestThreads = threads;
    }

    int realTimeRequestThreads() {
        return requestThreads.realTimeThreads();
    }

    /** Reads the return path of {@code conn} on a new {@code mig/src/rp_thr}; it becomes the current one. */
    private ReturnPathReader startReturnPath(MigrationConnection conn, RamSaver saver) {
        ReturnPathReader rp = new ReturnPathReader(MigrationFile.forReading(conn.in()), saver);
        rp.setConsumer(thread);
        returnPath = rp;
        RequestThreads threads = requestThreads;
        Thread.ofPlatform().name("mig/src/rp_thr").daemon(true).start(() -> {
            threads.raise();
            rp.run();
        });
        return rp;
    }

    private void ping(MigrationFile f, int value) throws IOException {
        returnPath.pingSent(value);
        SaveVm.writeCommand(f, QemuStream.CMD_PING, ByteBuffer.allocate(4).putInt(value).array());
    }

    /**
     * Switches to postcopy (QMP migrate-start-postcopy): at the end of the current iteration the
     * source stops the guest and hands it to the destination, which then pulls missing pages.
     */
    public void startPostcopy() throws MigrationException {
        if (!caps.contains(Capability.POSTCOPY_RAM)) {
            throw new MigrationException("Enable postcopy with migrate_set_capability before the start of migration");
        }
        // As QEMU: no error once this migration has moved on (switching over, finished): a client
        // cannot know it has not, so the request is simply too late and changes nothing.
        if (status.get() == MigrationStatus.NONE) {
            throw new MigrationException("Postcopy must be started after migration has been started");
        }
        postcopyRequested = true;
        LockSupport.unpark(thread);
    }

    /**
     * Resumes a paused postcopy on a new address (QMP migrate with resume: true). Any thread; the
     * migration thread connects and recovers. Returns false when the migration is not paused.
     */
    public boolean resume(MigrationAddress to, FaultSpec withFaults) {
        PostcopySource pc = postcopy;
        return pc != null && pc.recovery().resume(to, withFaults);
    }

    /**
     * Forces a postcopy pause (QMP migrate-pause): shuts the channels down, as a network failure
     * would. Returns false when postcopy is not active.
     */
    public boolean pause() {
        PostcopySource pc = postcopy;
        return pc != null && pc.recovery().pause();
    }

    /** Whether the postcopy-preempt connection is made (tests). */
    boolean hasPreemptConnection() {
        PostcopySource pc = postcopy;
        return pc != null && pc.hasPreemptConnection();
    }

    /** This migration as its postcopy phase sees it. */
    private final class Host implements OutgoingHost {
        @Override public Machine machine() { return machine; }
        @Override public StatusMachine status() { return status; }
        @Override public RamStats ram() { return ram; }
        @Override public MigrationAddress address() { return address; }
        @Override public boolean preempt() { return caps.contains(Capability.POSTCOPY_PREEMPT); }
        @Override public Level accountLevel() { return accountLevel; }
        @Override public boolean cancelled() { return Outgoing.this.cancelled(); }

        @Override
        public MigrationConnection connect(MigrationAddress to, FaultSpec withFaults) throws IOException {
            return Outgoing.this.connect(to, withFaults);
        }

        @Override
        public void replaceMainConnection(MigrationConnection c) {
            connection = c;
        }

        @Override
        public void shutdownMainConnection() {
            MigrationConnection c = connection;
            if (c != null) {
                c.shutdown();
            }
        }

        @Override
        public void closeMainConnection() {
            closeQuietly(connection);
        }

        @Override public ReturnPathReader returnPath() { return returnPath; }

        @Override
        public ReturnPathReader startReturnPath(MigrationConnection c, RamSaver saver) {
            return Outgoing.this.startReturnPath(c, saver);
        }

        @Override
        public void ping(MigrationFile f, int value) throws IOException {
            Outgoing.this.ping(f, value);
        }

        @Override
        public void applyRateLimit(MigrationFile f, boolean postcopyPhase) {
            Outgoing.this.applyRateLimit(f, postcopyPhase);
        }

        @Override
        public void waitOutRateWindow(MigrationFile f, long minNanos) throws IOException {
            Outgoing.waitOutRateWindow(f, minNanos);
        }

        @Override
        public void switchedOver(long millis) {
            downtimeMillis = millis;
        }
    }

    /**
     * Called without the BQL; blocks on IO. multifd: connects {@code multifd-channels} more
     * connections to the same address (QEMU 7.2: the main channel first, then these, each
     * identified by its initial packet) and starts their sender threads. Their bytes count
     * against {@code f}'s rate limit.
     */
    private MultifdSender connectMultifd(MigrationFile f) throws IOException {
        machine.bql().assertNotHeld();
        List<MigrationConnection> conns = new ArrayList<>();
        try {
            for (int i = 0; i < params.multifdChannels; i++) {
                if (cancelled()) {
                    throw new IOException("cancelled");
                }
                conns.add(connect(address, FaultSpec.NONE));
            }
        } catch (IOException e) {
            for (MigrationConnection c : conns) {
                c.close();
            }
            throw new IOException("multifd channel " + conns.size() + ": " + e.getMessage(), e);
        }
        MultifdSender.Options options = new MultifdSender.Options(params.multifdCompressionMethod(),
                params.multifdCompressionLevel(), params.detectZeroPages());
        MultifdSender m = new MultifdSender(conns, new byte[16], options, n -> {
            ram.multifdBytes.addAndGet(n);
            f.accountOtherChannel(n);
        });
        m.setTraced(traced);
        multifd = m;
        if (cancelled()) {
            m.shutdown();
        }
        return m;
    }

    /**
     * xbzrle, compress, zero-page-detection none (without multifd; QEMU 7.2 sends multifd pages
     * before it would try XBZRLE, and refuses compress with multifd): the saver's pages go through
     * a {@link org.livemig.migration.ram.TargetPageSaver} first. Nothing is made when none is on.
     */
    private void startTargetPageSaver(RamSaver saver) {
        MigrationParameters p = params;
        boolean xbzrle = caps.contains(Capability.XBZRLE);
        boolean compress = caps.contains(Capability.COMPRESS);
        if (!xbzrle && !compress && p.detectZeroPages()) {
            return;
        }
        org.livemig.migration.ram.TargetPageSaver ps = new org.livemig.migration.ram.TargetPageSaver(
                machine.ram().blocks(), new org.livemig.migration.ram.TargetPageSaver.Options(
                        xbzrle ? p.xbzrleCacheSize : 0, compress ? p.compressThreads : 0, p.compressLevel,
                        p.compressWaitThread, p.detectZeroPages()),
                ram.xbzrle, ram.compression, ram.normalPages, ram.zeroPages);
        pageSaver = ps;
        saver.useTargetPageSaver(ps);
    }

    /** The multifd channels as the live devices see them at the switchover (device-state packets). */
    private static org.livemig.vmstate.DeviceStateChannels deviceStateChannels(MultifdSender m) {
        return new org.livemig.vmstate.DeviceStateChannels() {
            @Override
            public void queue(String idstr, int instanceId, org.livemig.stream.MultifdPacket.DeviceStatePayload payload)
                    throws IOException {
                m.queueDeviceState(idstr, instanceId, payload);
            }

            @Override
            public int channels() {
                return m.channelCount();
            }
        };
    }

    /** Bytes put on the wire so far: the main channel's and the multifd channels'. */
    private long sent(MigrationFile f) {
        MappedRamSaver m = mappedRam;
        long holes = m == null ? 0 : m.holeBytes(); // mapped-ram's regions are moved over, not sent
        return f.position() - holes + ram.multifdBytes.get() + fileBytes.get();
    }

    /** The precopy loop (migration_iteration_run). Returns when it is time to switch over. */
    private void iterate(MigrationFile f, RamSaver saver) throws IOException, InterruptedException {
        long periodStart = System.nanoTime();
        long periodBytes = sent(f);
        long syncStart = System.nanoTime();
        long syncBytes = sent(f);
        long threshold = 0;
        long lastPassPending = Long.MAX_VALUE;
        while (true) {
            if (status.get() != MigrationStatus.ACTIVE) {
                throw new IOException("cancelled");
            }
            if (postcopyRequested) {
                return;
            }
            if (returnPath != null && returnPath.error() != null) {
                throw new IOException("return path failed: " + returnPath.error().getMessage(), returnPath.error());
            }
            long now = System.nanoTime();
            if (now - periodStart >= UPDATE_PERIOD_NANOS) {
                threshold = measureBandwidth(sent(f) - periodBytes, now - periodStart, saver);
                periodStart = now;
                periodBytes = sent(f);
            }
            // A pass over RAM ended: sync the dirty bitmap and decide on switchover. Deciding only
            // at the end of a pass, with what the guest dirtied during it, keeps an idle guest's
            // downtime near zero instead of near the limit.
            // Live devices (iterative handlers besides RAM) take part: a pass ends when theirs has too.
            if (saver.passComplete() && SaveVm.devicePassesComplete(machine)) {
                long dirtied = machine.bql().callWithHeld(false, () -> {
                    SaveVm.syncDevices(machine);
                    return saver.syncDirtyBitmap();
                });
                afterSync(f, saver, dirtied, syncStart, syncBytes);
                syncStart = System.nanoTime();
                syncBytes = sent(f);
                long pending = SaveVm.pendingBytes(machine);
                if (pending <= threshold && switchNow(pending, lastPassPending)) {
                    if (switchoverAllowed()) {
                        return;
                    }
                    awaitSwitchoverAck();
                }
                lastPassPending = pending;
            }
            applyRateLimit(f, false);
            if (f.rateLimitExceeded()) {
                waitOutRateWindow(f, 0);
                continue;
            }
            SaveVm.saveIterate(machine, f);
            ram.transferred.set(sent(f));
            if (saver.passComplete()) {
                f.flush();
                if (threshold == 0) {
                    // a pass ended within the first period: decide on what it measured so far
                    threshold = measureBandwidth(sent(f) - periodBytes, System.nanoTime() - periodStart, saver);
                }
            }
        }
    }

    /**
     * QEMU's migration_can_switchover: without switchover-ack, or with the guest stopped (nothing
     * to wait for then), always; else once the destination's SWITCHOVER_ACK has arrived.
     */
    private boolean switchoverAllowed() {
        if (!caps.contains(Capability.SWITCHOVER_ACK) || !machine.runState().isRunning()) {
            return true;
        }
        ReturnPathReader rp = returnPath;
        return rp != null && rp.switchoverAcked();
    }

    /**
     * Ready to switch over but the destination has not acked: iterate on, parking a little each
     * time so that an idle guest does not spin (a cancel, a failed return path or the ack ends
     * the wait at once). query-migrate shows the wait.
     */
    private void awaitSwitchoverAck() throws InterruptedException {
        awaitingSwitchoverAck = true;
        ReturnPathReader rp = returnPath;
        if (rp != null) {
            rp.awaitSwitchoverAck(UPDATE_PERIOD_NANOS / 1_000_000);
        }
    }

    /**
     * switchover-ack: "acked" once the destination's SWITCHOVER_ACK arrived, "waiting" while the
     * migration is ready to switch over and holds for it, "pending" before; null without the capability.
     */
    public String switchoverAckState() {
        if (!caps.contains(Capability.SWITCHOVER_ACK)) {
            return null;
        }
        ReturnPathReader rp = returnPath;
        if (rp != null && rp.switchoverAcked()) {
            return "acked";
        }
        return awaitingSwitchoverAck ? "waiting" : "pending";
    }

    /** Passes run beyond the point where the downtime limit was already met, at most. */
    private static final int MAX_EXTRA_PASSES = 5;
    /** What is left is worth no further pass once it takes this long to send. */
    private static final long NEGLIGIBLE_MILLIS = 5;
    private int extraPasses;

    /**
     * The downtime limit is met; decide between switching over now and one more pass. QEMU
     * switches at once. livemig runs another pass while passes still halve what is left and it
     * would take more than a few ms to send: a guest that dirties slowly against the link then
     * converges further and the guest stops for less, at the cost of a pass that, by that
     * measure, takes at most half as long as the one before.
     */
    private boolean switchNow(long pending, long lastPassPending) {
        boolean shrinking = pending * 2 <= lastPassPending;
        boolean negligible = pending <= bandwidthBytesPerSec * NEGLIGIBLE_MILLIS / 1000;
        if (!shrinking || negligible || extraPasses >= MAX_EXTRA_PASSES) {
            return true;
        }
        extraPasses++;
        return false;
    }

    /** Updates the bandwidth statistics from one period and returns the switchover threshold. */
    private long measureBandwidth(long bytes, long nanos, RamSaver saver) {
        long bw = (long) (bytes / Math.max(1e-9, nanos / 1e9));
        bandwidthBytesPerSec = bw;
        ram.mbps = bw * 8 / 1e6;
        expectedDowntimeMillis = bw > 0 ? SaveVm.pendingBytes(machine) * 1000 / bw : -1;
        long sent = ram.normalPages.get() + ram.zeroPages.get();
        ram.pagesPerSecond = (long) (sent / Math.max(1e-3, (System.nanoTime() - startNanos) / 1e9));
        return switchoverThreshold(bw);
    }

    /**
     * How much RAM may be left for the switchover: what the link moves within the downtime limit,
     * less a quarter kept for what else the downtime holds (stopping the vCPUs, CPU sync, device
     * state, the final bitmap sync) and for a bandwidth estimate taken while the guest competed
     * for the CPU.
     */
    private long switchoverThreshold(long bytesPerSec) {
        return (long) (bytesPerSec * (params.downtimeLimit / 1000.0) * SWITCHOVER_BUDGET);
    }

    /** Statistics and auto-converge after a bitmap sync (one precopy pass ended). */
    private void afterSync(MigrationFile f, RamSaver saver, long dirtiedPages, long syncStart, long syncBytes) {
        passes++;
        long now = System.nanoTime();
        double secs = Math.max(1e-6, (now - syncStart) / 1e9);
        ram.dirtyPagesRate = (long) (dirtiedPages / secs);
        if (traced) {
            Trace.pass(syncStart, ram.dirtySyncCount.get(), dirtiedPages, sent(f) - syncBytes, bandwidthBytesPerSec,
                    saver.pendingBytes());
        }
        events.pass(ram.dirtySyncCount.get());
        if (caps.contains(Capability.AUTO_CONVERGE) && passes > 1) {
            long bytesDirty = dirtiedPages * RamBlock.PAGE_SIZE;
            long bytesXfer = sent(f) - syncBytes;
            if (bytesDirty > bytesXfer * params.throttleTriggerThreshold / 100) {
                if (++dirtyRateHighCount >= 2) {
                    dirtyRateHighCount = 0;
                    int pct = throttlePercent == 0 ? params.cpuThrottleInitial
                            : Math.min(throttlePercent + params.cpuThrottleIncrement, params.maxCpuThrottle);
                    throttlePercent = pct;
                    machine.setThrottlePercent(pct);
                }
            }
        }
    }
}
