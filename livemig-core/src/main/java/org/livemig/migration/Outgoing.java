package org.livemig.migration;

import java.io.IOException;
import java.time.Duration;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.logging.Level;
import java.util.logging.Logger;
import org.livemig.machine.Machine;
import org.livemig.machine.RunState;
import org.livemig.memory.RamBlock;
import org.livemig.migration.multifd.MultifdSender;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.PackagedCommand;
import org.livemig.stream.PostcopyAdviseCommand;
import org.livemig.stream.PostcopyRamDiscardCommand;
import org.livemig.stream.QemuStream;
import org.livemig.stream.RecvBitmapCommand;
import org.livemig.trace.Trace;
import org.livemig.transport.ChannelSecurity;
import org.livemig.transport.FaultInjectingConnection;
import org.livemig.transport.FaultSpec;
import org.livemig.transport.MigrationAddress;
import org.livemig.transport.MigrationConnection;
import org.livemig.transport.Transports;
import org.livemig.vmstate.VmDesc;

/**
 * One outgoing migration on thread {@code mig/src/main} (QEMU's migration_thread): setup,
 * iterate under {@code max-bandwidth} until what is left fits in {@code downtime-limit}, switch
 * over with the guest stopped, complete. Any failure before completion leaves the source running
 * with its state intact.
 *
 * <p>Fields are owned by the migration thread unless marked volatile (read by the monitor).
 */
public final class Outgoing {
    private static final Logger LOG = Logger.getLogger(Outgoing.class.getName());
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
    private volatile MigrationConnection connection;
    private volatile MigrationConnection preemptConnection;
    /** multifd's channels while they run; null without the capability. */
    private volatile MultifdSender multifd;

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
    private ReturnPathReader returnPath;
    private volatile boolean postcopyRequested;
    /** Set once the postcopy package went out: the destination may run the guest from then on. */
    private volatile boolean packageSent;
    private int dirtyRateHighCount;

    /** Scheduling of mig/src/rp_thr; set before {@link #start}. */
    private RequestThreads requestThreads = new RequestThreads(0);
    /** TLS (or none) on every connection this migration makes; set before {@link #start}. */
    private volatile ChannelSecurity security = ChannelSecurity.PLAIN;

    void setChannelSecurity(ChannelSecurity s) {
        this.security = s;
    }

    Outgoing(Machine machine, MigrationParameters params, Set<Capability> caps, MigrationAddress address,
             MigrationEvents events, FaultSpec faults, boolean scratch) {
        this.faults = faults;
        this.accountLevel = scratch ? Level.FINE : Level.INFO;
        this.machine = machine;
        this.params = params;
        this.caps = caps.isEmpty() ? EnumSet.noneOf(Capability.class) : EnumSet.copyOf(caps);
        this.address = address;
        this.events = events;
        this.thread = Thread.ofPlatform().name(THREAD_NAME).daemon(true).unstarted(this::run);
        status.addListener((from, to) -> events.statusChanged(to));
    }

    /** Starts {@code mig/src/main}. Called with the BQL held. */
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
    }
    public long pongRoundTripNanos() { return returnPath == null ? -1 : returnPath.pongRoundTripNanos(); }

    /** Total time so far, or of the whole migration once it ended. */
    public long totalTimeMillis() {
        long t = totalTimeMillis;
        return t >= 0 ? t : System.currentTimeMillis() - startMillis;
    }

    /** Cancels the migration (QMP migrate_cancel); any thread. The source keeps running. */
    public void cancel() {
        while (true) {
            MigrationStatus s = status.get();
            if (!s.isActive() || s == MigrationStatus.CANCELLING) {
                return;
            }
            if (status.transition(s, MigrationStatus.CANCELLING)) {
                break;
            }
        }
        for (MigrationConnection c : new MigrationConnection[] {connection, preemptConnection}) {
            if (c != null) {
                c.shutdown();
            }
        }
        MultifdSender m = multifd;
        if (m != null) {
            m.shutdown();
        }
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

    private boolean cancelled() {
        MigrationStatus s = status.get();
        return s == MigrationStatus.CANCELLING || s == MigrationStatus.CANCELLED;
    }

    private void run() {
        machine.bql().assertNotHeld();
        boolean stoppedByUs = false;
        boolean wasRunning = false;
        RamSaver saver = null;
        long downtimeStart = 0;
        try {
            MigrationConnection conn = FaultInjectingConnection.wrapIfAny(
                    security.client(Transports.connect(address, CONNECT_TIMEOUT), address), faults);
            connection = conn;
            if (cancelled()) {
                throw new IOException("cancelled");
            }
            MigrationFile f = MigrationFile.forWriting(conn.out());
            applyRateLimit(f, false);
            saver = RamHandlers.of(machine).beginSave(ram);
            if (caps.contains(Capability.MULTIFD)) {
                saver.useMultifd(connectMultifd(f));
            }
            machine.bql().withHeld(false, saver::startDirtyTracking);

            SaveVm.writeHeader(f);
            boolean postcopyCap = caps.contains(Capability.POSTCOPY_RAM);
            if (caps.contains(Capability.RETURN_PATH) || postcopyCap) {
                openReturnPath(f, conn, saver);
            }
            if (postcopyCap) {
                new PostcopyAdviseCommand(RamBlock.PAGE_SIZE, RamBlock.PAGE_SIZE).write(f);
            }
            SaveVm.saveSetup(machine, f);
            f.flush();
            setupTimeMillis = System.currentTimeMillis() - startMillis;
            if (!status.transition(MigrationStatus.SETUP, MigrationStatus.ACTIVE)) {
                throw new IOException("cancelled during setup");
            }

            iterate(f, saver);
            if (postcopyRequested) {
                stoppedByUs = true;
                wasRunning = runPostcopy(f, saver);
                return;
            }

            // Switchover: stop the guest, gather device state under the BQL.
            long pendingAtSwitch = saver.pendingBytes();
            downtimeStart = System.nanoTime();
            final boolean[] running = new boolean[1];
            machine.bql().withHeld(false, () -> {
                running[0] = machine.runState().isRunning();
                machine.vmStop(RunState.FINISH_MIGRATE);
            });
            wasRunning = running[0];
            stoppedByUs = true;
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
            long t3 = System.nanoTime();
            long before = f.position();
            f.putBytes(devices);
            SaveVm.writeEofAndVmdesc(f, vmdesc);
            f.flush();
            ram.downtimeBytes.addAndGet(f.position() - before);
            ram.transferred.set(sent(f));
            MultifdSender m = multifd;
            if (m != null) {
                // Every page is written (the last RAM section synced); the channels end here.
                m.finish();
            }
            long t4 = System.nanoTime();
            if (returnPath != null) {
                int shut = returnPath.awaitShut(SHUT_TIMEOUT_MILLIS);
                if (shut != 0) {
                    throw new IOException("destination failed to load the migration (SHUT " + shut + ")");
                }
            }
            long t5 = System.nanoTime();
            downtimeMillis = TimeUnit.NANOSECONDS.toMillis(t5 - downtimeStart);
            totalTimeMillis = System.currentTimeMillis() - startMillis;
            Trace.switchover(t1 - downtimeStart, t2 - t1, t3 - t2, t4 - t3, t5 - t4, pendingAtSwitch, bandwidthBytesPerSec);
            LOG.log(accountLevel, String.format("switchover: downtime %d ms = stop %.1f + devices %.1f + RAM %.1f (%d KiB pending, estimate %d MB/s) + rest %.1f + ack %.1f ms",
                    downtimeMillis, (t1 - downtimeStart) / 1e6, (t2 - t1) / 1e6, (t3 - t2) / 1e6,
                    pendingAtSwitch >> 10, bandwidthBytesPerSec / 1_000_000, (t4 - t3) / 1e6, (t5 - t4) / 1e6));
            saver.stopDirtyTracking();
            machine.bql().withHeld(false, () -> {
                if (status.transition(MigrationStatus.DEVICE, MigrationStatus.COMPLETED)) {
                    machine.setRunState(RunState.POSTMIGRATE);
                }
            });
            if (status.get() != MigrationStatus.COMPLETED) {
                throw new IOException("cancelled at completion");
            }
        } catch (Exception | Error e) {
            // An Error too (out of memory while encoding device state, say): the migration fails
            // and the source resumes rather than staying stopped with no status change.
            boolean wasCancel = cancelled();
            error = wasCancel ? null : describe(security.explain(e));
            if (!wasCancel) {
                LOG.log(Level.WARNING, "outgoing migration failed: " + error, e);
            }
            totalTimeMillis = System.currentTimeMillis() - startMillis;
            if (saver != null) {
                saver.stopDirtyTracking();
            }
            // Once the destination may have started the guest (postcopy), the source must never
            // run it again: it stays paused and the migration fails (no recovery yet).
            final boolean resume = stoppedByUs && wasRunning && !packageSent;
            final boolean stopped = stoppedByUs;
            machine.bql().withHeld(false, () -> {
                machine.setThrottlePercent(0);
                if (resume) {
                    machine.vmStart();
                } else if (stopped) {
                    machine.setRunState(RunState.PAUSED);
                }
                status.force(wasCancel ? MigrationStatus.CANCELLED : MigrationStatus.FAILED);
            });
        } finally {
            machine.setThrottlePercent(0);
            throttlePercent = 0;
            MultifdSender m = multifd;
            if (m != null) {
                m.close();
            }
            for (MigrationConnection c : new MigrationConnection[] {connection, preemptConnection}) {
                if (c != null) {
                    try {
                        c.close();
                    } catch (IOException e) {
                        LOG.log(Level.FINE, "closing migration connection", e);
                    }
                }
            }
        }
    }

    void setRequestThreads(RequestThreads threads) {
        this.requestThreads = threads;
    }

    int realTimeRequestThreads() {
        return requestThreads.realTimeThreads();
    }

    /** Starts mig/src/rp_thr on the current return path (a new one after a recovery). */
    private void startReturnPathThread() {
        ReturnPathReader rp = returnPath;
        RequestThreads threads = requestThreads;
        Thread.ofPlatform().name("mig/src/rp_thr").daemon(true).start(() -> {
            threads.raise();
            rp.run();
        });
    }

    private static String describe(Throwable e) {
        String m = e.getMessage();
        return m == null ? e.getClass().getSimpleName() : m;
    }

    private void openReturnPath(MigrationFile f, MigrationConnection conn, RamSaver saver) throws IOException {
        returnPath = new ReturnPathReader(MigrationFile.forReading(conn.in()), saver);
        returnPath.setConsumer(thread);
        startReturnPathThread();
        SaveVm.writeCommand(f, QemuStream.CMD_OPEN_RETURN_PATH, new byte[0]);
        ping(f, 1);
    }

    private void ping(MigrationFile f, int value) throws IOException {
        returnPath.pingSent(value);
        SaveVm.writeCommand(f, QemuStream.CMD_PING, java.nio.ByteBuffer.allocate(4).putInt(value).array());
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

    /** Pages sent per PART section while postcopy runs, between checks of the request queue. */
    private static final int POSTCOPY_BATCH = 64;

    /**
     * Called without the BQL (it connects and writes; it takes the lock itself to stop the
     * guest): the postcopy switch and the rest of the migration (QEMU's postcopy_start and the
     * postcopy-active iterations). Returns whether the guest was running before the switch.
     */
    private boolean runPostcopy(MigrationFile f, RamSaver saver) throws IOException, InterruptedException {
        // postcopy-preempt: a second connection for the pages vCPUs wait for, so that they
        // never queue behind background pages in the main stream. Made while the guest still
        // runs: connecting took 2-8 ms of the switch's pause here (QEMU too connects it before
        // the switch). The destination takes it whenever it comes; nothing goes on it before
        // the first page request, which only a destination in postcopy sends.
        machine.bql().assertNotHeld();
        MigrationFile preempt = null;
        if (caps.contains(Capability.POSTCOPY_PREEMPT)) {
            preemptConnection = security.client(Transports.connect(address, CONNECT_TIMEOUT), address);
            preempt = MigrationFile.forWriting(preemptConnection.out());
            currentSaver = saver;
            openPreemptChannel(preempt);
        }
        long stopAt = System.nanoTime();
        final boolean[] running = new boolean[1];
        machine.bql().withHeld(false, () -> {
            running[0] = machine.runState().isRunning();
            machine.vmStop(RunState.FINISH_MIGRATE);
        });
        if (!status.transition(MigrationStatus.ACTIVE, MigrationStatus.POSTCOPY_ACTIVE)) {
            throw new IOException("cancelled");
        }
        f.setRateLimit(0);
        long stopped = System.nanoTime();
        // The last sync: from here on the to-send bitmaps are exactly what the destination lacks.
        machine.bql().callWithHeld(false, saver::syncDirtyBitmap);
        saver.enterPostcopy();
        long synced = System.nanoTime();
        for (RamBlock b : machine.ram().blocks()) {
            java.util.List<PostcopyRamDiscardCommand.Range> ranges = new java.util.ArrayList<>();
            for (long[] run : saver.unsentRuns(b)) {
                ranges.add(new PostcopyRamDiscardCommand.Range(run[0] << RamBlock.PAGE_BITS, run[1] << RamBlock.PAGE_BITS));
            }
            for (PostcopyRamDiscardCommand cmd : PostcopyRamDiscardCommand.batches(b.name(), ranges)) {
                cmd.write(f);
            }
        }
        long discarded = System.nanoTime();
        ping(f, 2);
        // The package: LISTEN, the device state, PING 3, RUN.
        MigrationFile pkg = MigrationFile.toMemory();
        SaveVm.writeCommand(pkg, QemuStream.CMD_POSTCOPY_LISTEN, new byte[0]);
        byte[] devices = machine.bql().callWithHeld(false, () -> {
            machine.cpuSynchronizeAllStates();
            return SaveVm.encodeDevices(machine, null);
        });
        pkg.putBytes(devices);
        ping(pkg, 3);
        SaveVm.writeCommand(pkg, QemuStream.CMD_POSTCOPY_RUN, new byte[0]);
        PackagedCommand.write(f, pkg.toByteArray());
        packageSent = true;
        long packaged = System.nanoTime();
        // The rest of postcopy; a broken channel pauses it (postcopy-paused) until the user
        // resumes it on a new one, since the guest now lives on the destination.
        MigrationFile main = f;
        boolean switching = true;
        while (true) {
            try {
                if (switching) {
                    switching = false;
                    ping(f, 4);
                    f.flush();
                    long flushed = System.nanoTime();
                    // The switch-over pause: until the destination has loaded the devices and
                    // runs the guest (its answer to PING 3, which sits just before RUN in the package).
                    long pong3 = returnPath.awaitPong(3, SHUT_TIMEOUT_MILLIS);
                    long end = pong3 > 0 ? pong3 : System.nanoTime();
                    downtimeMillis = TimeUnit.NANOSECONDS.toMillis(end - stopAt);
                    LOG.log(accountLevel, String.format("postcopy switch: guest paused %d ms = stop %.1f + sync %.1f + discard %.1f"
                            + " + devices/package %.1f + flush %.1f + destination loads and answers %.1f ms",
                            downtimeMillis, (stopped - stopAt) / 1e6, (synced - stopped) / 1e6, (discarded - synced) / 1e6,
                            (packaged - discarded) / 1e6, (flushed - packaged) / 1e6, (end - flushed) / 1e6));
                }
                postcopyIterate(main, preempt, saver);
                break;
            } catch (Unrecoverable e) {
                throw e;
            } catch (IOException e) {
                if (cancelled()) {
                    throw e;
                }
                streamBase += main.position();
                MigrationFile[] channels = pauseUntilRecovered(saver, describe(e));
                main = channels[0];
                preempt = channels[1];
            }
        }
        totalTimeMillis = System.currentTimeMillis() - startMillis;
        saver.stopDirtyTracking();
        machine.bql().withHeld(false, () -> {
            if (status.transition(MigrationStatus.POSTCOPY_ACTIVE, MigrationStatus.COMPLETED)) {
                machine.setRunState(RunState.POSTMIGRATE);
            }
        });
        if (status.get() != MigrationStatus.COMPLETED) {
            throw new IOException("cancelled at completion");
        }
        return running[0];
    }

    /** A postcopy failure that a new channel cannot mend (the destination failed, or asked nonsense). */
    private static final class Unrecoverable extends IOException {
        Unrecoverable(String message, Throwable cause) {
            super(message, cause);
        }
    }

    /** Bytes sent on channels that were lost before the current one (query-migrate's transferred). */
    private long streamBase;

    /**
     * Postcopy-active on one set of channels: requested pages first, the rest in the background
     * under max-postcopy-bandwidth (a requested page is never held back by it), then END, EOF
     * and the destination's SHUT.
     */
    private void postcopyIterate(MigrationFile f, MigrationFile preempt, RamSaver saver) throws IOException {
        org.livemig.vmstate.SaveStateEntry ramEntry = RamHandlers.entry(machine);
        while (true) {
            if (status.get() != MigrationStatus.POSTCOPY_ACTIVE) {
                throw new IOException("cancelled");
            }
            IOException rpError = returnPath.error();
            if (rpError != null && returnPath.refusedRequest()) {
                // A request the source refuses (unknown block, outside a block): not a network fault.
                throw new Unrecoverable("return path failed: " + rpError.getMessage(), rpError);
            }
            if (rpError != null) {
                throw new IOException("return path failed: " + rpError.getMessage(), rpError);
            }
            if (saver.pendingBytes() == 0) {
                break;
            }
            if (preempt != null) {
                // Requests the return-path thread queued before it could send them itself.
                ReturnPathReader.PageRequest r;
                while ((r = returnPath.pollRequest()) != null) {
                    sendOnPreempt(r.block(), r.page());
                }
                // Requested pages sent earlier may sit in the main stream's buffer: flush it.
                f.flush();
                if (saver.pendingBytes() == 0) {
                    break;
                }
            }
            applyRateLimit(f, true);
            boolean throttled = f.rateLimitExceeded();
            ReturnPathReader.PageRequest first = preempt == null ? returnPath.pollRequest() : null;
            if (first == null && throttled) {
                // Nothing asked for and the background budget spent: wait for a request (at
                // most until the next window; every 100 us at least, to see new requests).
                waitOutRateWindow(f, 100_000);
                continue;
            }
            SaveVm.writeShortHeader(f, QemuStream.SECTION_PART, ramEntry);
            boolean urgent = false;
            for (int i = 0; i < POSTCOPY_BATCH; i++) {
                ReturnPathReader.PageRequest r = first != null ? first : preempt == null ? returnPath.pollRequest() : null;
                first = null;
                if (r != null) {
                    ram.postcopyRequests.incrementAndGet();
                    // Sent now, or sent earlier and perhaps still in our buffer: either way a
                    // vCPU waits for it, so this section is flushed at once.
                    saver.sendRequestedPage(f, r.block(), r.page());
                    urgent = true;
                    continue;
                }
                if (urgent || throttled || saver.sendBackgroundPages(f, 1) == 0) {
                    break;
                }
            }
            f.putBe64(QemuStream.RAM_FLAG_EOS);
            SaveVm.writeFooter(f, ramEntry);
            if (urgent) {
                f.flush(); // a vCPU waits for this page
            }
            // Give way to mig/src/rp_thr, which sends what vCPUs wait for (see
            // PostcopyIncoming.LISTEN_GIVE_WAY_PAGES): one yield per section of at most 256 KiB.
            Thread.yield();
            ram.transferred.set(streamBase + f.position());
        }
        if (preempt != null) {
            // The destination reads the preempt channel to its end before it finishes.
            preemptLock.lock();
            try {
                preemptFile = null;
                preempt.flush();
                preemptConnection.close();
            } finally {
                preemptLock.unlock();
            }
        }
        SaveVm.saveCompleteIterative(machine, f);
        f.putByte(QemuStream.SECTION_EOF);
        f.flush();
        ram.transferred.set(streamBase + f.position());
        int shutStatus = returnPath.awaitShut(SHUT_TIMEOUT_MILLIS);
        if (shutStatus != 0) {
            throw new Unrecoverable("destination failed to finish postcopy (SHUT " + shutStatus + ")", null);
        }
    }

    /** Serialises writers of the preempt channel: {@code mig/src/rp_thr} and, at its end, this thread. */
    private final java.util.concurrent.locks.ReentrantLock preemptLock = new java.util.concurrent.locks.ReentrantLock();
    /** The preempt channel while requested pages may go out on it; guarded by {@link #preemptLock}. */
    private MigrationFile preemptFile;

    /**
     * postcopy-preempt (QEMU 7.2's "preempt-full"): sends one requested page on the preempt
     * channel from whichever thread has the request, usually {@code mig/src/rp_thr} the moment
     * it reads it, so that it never waits for this thread, busy or blocked on the main stream.
     * Returns false when no preempt channel is open (the request is then queued).
     */
    private boolean sendOnPreempt(RamBlock b, long page) throws IOException {
        preemptLock.lock();
        try {
            MigrationFile p = preemptFile;
            if (p == null) {
                return false;
            }
            ram.postcopyRequests.incrementAndGet();
            if (!currentSaver.sendRequestedPage(p, b, page, false)) {
                // Sent on the main channel already, and not yet there: do not wait for its backlog.
                currentSaver.resendPage(p, b, page);
            }
            p.putBe64(QemuStream.RAM_FLAG_EOS);
            p.flush();
            return true;
        } finally {
            preemptLock.unlock();
        }
    }

    private void openPreemptChannel(MigrationFile p) {
        preemptLock.lock();
        try {
            preemptFile = p;
        } finally {
            preemptLock.unlock();
        }
        returnPath.sendDirectly(this::sendOnPreempt);
    }

    /** Whether the postcopy-preempt connection is made (tests). */
    boolean hasPreemptConnection() {
        return preemptConnection != null;
    }

    /** The RAM saver of this migration, for the return-path thread's direct sends. */
    private volatile RamSaver currentSaver;

    /** Where and with which test faults a paused postcopy resumes; set by {@link #resume}. */
    private volatile MigrationAddress resumeAddress;
    private volatile FaultSpec resumeFaults = FaultSpec.NONE;

    /**
     * Resumes a paused postcopy on a new address (QMP migrate with resume: true). Any thread; the
     * migration thread connects and recovers. Returns false when the migration is not paused.
     */
    public boolean resume(MigrationAddress address, FaultSpec faults) {
        resumeAddress = address;
        resumeFaults = faults;
        if (!status.transition(MigrationStatus.POSTCOPY_PAUSED, MigrationStatus.POSTCOPY_RECOVER)) {
            return false;
        }
        LockSupport.unpark(thread);
        return true;
    }

    /**
     * Forces a postcopy pause (QMP migrate-pause): shuts the channels down, as a network failure
     * would. Returns false when postcopy is not active.
     */
    public boolean pause() {
        if (status.get() != MigrationStatus.POSTCOPY_ACTIVE) {
            return false;
        }
        shutdownChannels();
        return true;
    }

    private void shutdownChannels() {
        for (MigrationConnection c : new MigrationConnection[] {connection, preemptConnection}) {
            if (c != null) {
                c.shutdown();
            }
        }
    }

    private void closeChannels() {
        shutdownChannels(); // first: a writer blocked on the preempt channel lets go of the lock
        preemptLock.lock();
        try {
            preemptFile = null;
        } finally {
            preemptLock.unlock();
        }
        for (MigrationConnection c : new MigrationConnection[] {connection, preemptConnection}) {
            if (c != null) {
                try {
                    c.close();
                } catch (IOException e) {
                    LOG.log(Level.FINE, "closing a broken migration channel", e);
                }
            }
        }
        preemptConnection = null;
    }

    /**
     * postcopy-paused: drops the broken channels and waits (without a timeout: the guest lives on
     * the destination, and only the user knows when the network is back) for {@link #resume} or
     * a cancel; then recovers on the new address. A recovery that fails pauses again. Returns the
     * new main and preempt (or null) channels, with status postcopy-active.
     */
    private MigrationFile[] pauseUntilRecovered(RamSaver saver, String why) throws IOException {
        while (true) {
            MigrationStatus s = status.get();
            if ((s != MigrationStatus.POSTCOPY_ACTIVE && s != MigrationStatus.POSTCOPY_RECOVER)
                    || !status.transition(s, MigrationStatus.POSTCOPY_PAUSED)) {
                throw new IOException("cancelled");
            }
            LOG.warning("postcopy paused (" + why + "); waiting for migrate with resume=true");
            closeChannels();
            while (status.get() == MigrationStatus.POSTCOPY_PAUSED) {
                LockSupport.parkNanos(200_000_000L); // resume() and cancel() unpark at once
            }
            if (status.get() != MigrationStatus.POSTCOPY_RECOVER) {
                throw new IOException("cancelled while postcopy was paused");
            }
            try {
                return recover(saver);
            } catch (IOException e) {
                if (cancelled()) {
                    throw e;
                }
                why = "recovery failed: " + describe(e);
            }
        }
    }

    /**
     * The source's half of a postcopy recovery (QEMU's postcopy_do_resume): a new channel and
     * return path, RECV_BITMAP for every block (what the destination holds decides what goes
     * again), POSTCOPY_RESUME, RESUME_ACK.
     */
    private MigrationFile[] recover(RamSaver saver) throws IOException {
        MigrationAddress addr = resumeAddress;
        MigrationConnection conn = FaultInjectingConnection.wrapIfAny(security.client(Transports.connect(addr, CONNECT_TIMEOUT), addr), resumeFaults);
        connection = conn;
        if (status.get() != MigrationStatus.POSTCOPY_RECOVER) {
            throw new IOException("cancelled during recovery");
        }
        MigrationFile f = MigrationFile.forWriting(conn.out());
        returnPath = new ReturnPathReader(MigrationFile.forReading(conn.in()), saver);
        returnPath.setConsumer(thread);
        startReturnPathThread();
        saver.prepareResume();
        List<RamBlock> blocks = machine.ram().blocks();
        for (RamBlock b : blocks) {
            new RecvBitmapCommand(b.name()).write(f);
        }
        f.flush();
        try {
            for (RamBlock b : blocks) {
                saver.reloadFromReceived(b, returnPath.awaitRecvBitmap(b.name(), SHUT_TIMEOUT_MILLIS));
            }
            SaveVm.writeCommand(f, QemuStream.CMD_POSTCOPY_RESUME, new byte[0]);
            f.flush();
            returnPath.awaitResumeAck(SHUT_TIMEOUT_MILLIS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted during postcopy recovery", e);
        }
        MigrationFile preempt = null;
        if (caps.contains(Capability.POSTCOPY_PREEMPT)) {
            preemptConnection = security.client(Transports.connect(addr, CONNECT_TIMEOUT), addr);
            preempt = MigrationFile.forWriting(preemptConnection.out());
            openPreemptChannel(preempt);
        }
        if (!status.transition(MigrationStatus.POSTCOPY_RECOVER, MigrationStatus.POSTCOPY_ACTIVE)) {
            throw new IOException("cancelled during recovery");
        }
        LOG.info(String.format("postcopy recovered on %s: %d KiB still to send", addr, saver.pendingBytes() >> 10));
        return new MigrationFile[] {f, preempt};
    }

    /**
     * multifd: connects {@code multifd-channels} more connections to the same address (QEMU 7.2:
     * the main channel first, then these, each identified by its initial packet) and starts
     * their sender threads. Their bytes count against {@code f}'s rate limit.
     */
    private MultifdSender connectMultifd(MigrationFile f) throws IOException {
        machine.bql().assertNotHeld();
        java.util.List<MigrationConnection> conns = new java.util.ArrayList<>();
        try {
            for (int i = 0; i < params.multifdChannels; i++) {
                if (cancelled()) {
                    throw new IOException("cancelled");
                }
                conns.add(security.client(Transports.connect(address, CONNECT_TIMEOUT), address));
            }
        } catch (IOException e) {
            for (MigrationConnection c : conns) {
                c.close();
            }
            throw new IOException("multifd channel " + conns.size() + ": " + e.getMessage(), e);
        }
        MultifdSender m = new MultifdSender(conns, new byte[16], n -> {
            ram.multifdBytes.addAndGet(n);
            f.accountOtherChannel(n);
        });
        multifd = m;
        if (cancelled()) {
            m.shutdown();
        }
        return m;
    }

    /** Bytes put on the wire so far: the main channel's and the multifd channels'. */
    private long sent(MigrationFile f) {
        return f.position() + ram.multifdBytes.get();
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
            if (saver.passComplete()) {
                long dirtied = machine.bql().callWithHeld(false, saver::syncDirtyBitmap);
                afterSync(f, saver, dirtied, syncStart, syncBytes);
                syncStart = System.nanoTime();
                syncBytes = sent(f);
                long pending = saver.pendingBytes();
                if (pending <= threshold && switchNow(pending, lastPassPending)) {
                    return;
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
        expectedDowntimeMillis = bw > 0 ? saver.pendingBytes() * 1000 / bw : -1;
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
