package org.livemig.migration;

import java.io.IOException;
import java.lang.System.Logger.Level;
import org.livemig.machine.Machine;
import org.livemig.machine.RunState;
import org.livemig.memory.postcopy.PostcopyBackend;
import org.livemig.migration.colo.ColoSecondary;
import org.livemig.migration.colo.ColoState;
import org.livemig.migration.multifd.MultifdReceiver;
import org.livemig.migration.postcopy.IncomingHost;
import org.livemig.migration.postcopy.PostcopyIncoming;
import org.livemig.migration.postcopy.RequestThreads;
import org.livemig.stream.MigrationFile;
import org.livemig.trace.Trace;
import org.livemig.transport.ChannelSecurity;
import org.livemig.transport.FaultInjectingConnection;
import org.livemig.transport.FaultPoints;
import org.livemig.transport.FaultSpec;
import org.livemig.transport.MigrationAddress;
import org.livemig.transport.MigrationConnection;
import org.livemig.transport.MigrationListener;
import org.livemig.transport.Transports;

/**
 * One incoming migration (QEMU's MigrationIncomingState). The listener is bound on the main loop;
 * a small accept thread hands the connection to the main loop as a BH, which starts
 * {@code mig/dst/main}; that thread runs {@code loadvmState(file, false)} without the BQL.
 * Completion and clean-up run as BHs on the main loop, which join {@code mig/dst/main}. Postcopy
 * and its recovery are {@link PostcopyIncoming}'s, which sees this migration through
 * {@link IncomingHost}.
 */
public final class Incoming {
    private static final System.Logger LOG = System.getLogger(Incoming.class.getName());
    public static final String THREAD_NAME = "mig/dst/main";
    public static final String ACCEPT_THREAD_NAME = "mig/dst/accept";

    private final Machine machine;
    private final boolean exitOnError;
    private final boolean autostart;
    private final FaultSpec faults;
    private final StatusMachine status = new StatusMachine();
    private final RamStats ram = new RamStats();
    private volatile MigrationListener listener;
    /** Where the listener was bound (a tcp port 0 resolved); kept after the listener closes. */
    private volatile MigrationAddress boundAddress;
    private volatile MigrationConnection connection;
    private volatile Thread loadThread;
    private volatile String error;
    private volatile long loadMillis = -1;
    private volatile IncomingReturnPath returnPath;
    private volatile PostcopyIncoming postcopy;
    private final String postcopyBackend;
    /** postcopy-preempt on this side: a second connection is accepted for requested pages. */
    private final boolean preempt;
    private volatile MigrationConnection preemptConnection;
    /** Scheduling of mig/dst/fault and mig/dst/preempt; set before listening. */
    private volatile RequestThreads requestThreads = new RequestThreads(0);
    /** multifd-channels when the multifd capability is on here, else 0. */
    private final int multifdChannels;
    private volatile MultifdReceiver multifd;
    /** x-colo on this side: ENABLE_COLO is allowed, and the primary's compare channel is taken. */
    private final boolean colo;
    private final ColoState coloState;
    /** The connection the secondary's guest output goes to the primary on (x-colo). */
    private final java.util.concurrent.CompletableFuture<MigrationConnection> compareConnection =
            new java.util.concurrent.CompletableFuture<>();
    private volatile ColoSecondary coloSecondary;
    /** Trace events are emitted (not for a warm-up's scratch migrations). */
    private final boolean traced;
    /** multifd-compression here: what the channels' packets must be compressed with. */
    private volatile org.livemig.stream.MultifdCompression.Method multifdCompression =
            org.livemig.stream.MultifdCompression.Method.NONE;
    /** decompress-threads with the compress capability, else 0 (compressed pages are refused). */
    private volatile int decompressThreads;
    /** XBZRLE and COMPRESS_PAGE payloads of this load; made when loading starts. */
    private volatile org.livemig.migration.ram.EncodedPageLoader encodedPages;
    /** mapped-ram: how the file is read (null without the capability), and its reader once loading. */
    private volatile org.livemig.migration.ram.MappedRamOptions mappedRamOptions;
    private volatile org.livemig.migration.ram.MappedRamLoader mappedRam;

    /** mapped-ram's use of the file, or null without the capability; set before listening. */
    void setMappedRam(org.livemig.migration.ram.MappedRamOptions options) {
        this.mappedRamOptions = options;
    }
    /** switchover-ack on this side: devices approve the switchover, SWITCHOVER_ACK goes to the source. */
    private volatile boolean switchoverAck;
    /** mig/dst/load_n, one per multifd channel, for device state that arrives on the channels; null without multifd. */
    private volatile LoadThreads loadThreads;
    private volatile LoadVm load;

    Incoming(Machine machine, boolean exitOnError, boolean autostart, MigrationEvents events,
             FaultSpec faults, String postcopyBackend, boolean preempt, int multifdChannels, boolean colo,
             ColoState coloState, boolean quiet) {
        this.traced = !quiet;
        this.colo = colo;
        this.coloState = coloState;
        this.multifdChannels = multifdChannels;
        this.faults = faults;
        this.postcopyBackend = postcopyBackend;
        this.preempt = preempt;
        this.machine = machine;
        this.exitOnError = exitOnError;
        this.autostart = autostart;
        status.addListener((from, to) -> {
            if (traced) {
                Trace.status("destination", from.qemuName(), to.qemuName());
            }
            events.statusChanged(to);
        });
    }

    void setRequestThreads(RequestThreads threads) {
        this.requestThreads = threads;
    }

    /** How pages arrive encoded: multifd-compression, and decompress-threads (0 without compress). Before listening. */
    void setPageDecoding(org.livemig.stream.MultifdCompression.Method compression, int decompressThreads) {
        this.multifdCompression = compression;
        this.decompressThreads = decompressThreads;
    }

    /** The switchover-ack capability on this side; set before listening. */
    void setSwitchoverAck(boolean on) {
        this.switchoverAck = on;
    }

    /** The load-thread pool of this load, or null (tests). */
    public LoadThreads loadThreads() {
        return loadThreads;
    }

    /** Whether this load has sent SWITCHOVER_ACK to the source. */
    public boolean switchoverAckSent() {
        LoadVm l = load;
        return l != null && l.switchoverAckSent();
    }

    /** TLS (or none) on every connection this migration accepts; set before listening. */
    private volatile ChannelSecurity security = ChannelSecurity.PLAIN;

    void setChannelSecurity(ChannelSecurity s) {
        this.security = s;
    }

    /**
     * A connection's TLS handshake failed on the accept thread: the migration fails with its
     * cause (and the process exits with exit-on-error), as a failed load does.
     */
    private void tlsFailed(IOException e) {
        if (!status.get().isFinal()) {
            fail(e.getMessage());
        }
    }

    int realTimeRequestThreads() {
        return requestThreads.realTimeThreads();
    }

    public MigrationStatus status() { return status.get(); }
    public StatusMachine statusMachine() { return status; }
    public RamStats ramStats() { return ram; }
    public String error() { return error; }
    public boolean exitOnError() { return exitOnError; }
    public long loadMillis() { return loadMillis; }
    public Thread loadThread() { return loadThread; }

    /** The address the listener is bound to (a tcp port 0 resolved), or null before listening. */
    public MigrationAddress boundAddress() {
        return boundAddress;
    }

    /** True while the listener waits for the source. */
    public boolean isListening() {
        return listener != null && status.get() == MigrationStatus.NONE;
    }

    /** Called with the BQL held. Binds the listener and starts waiting for the source. */
    void listen(MigrationAddress address) throws IOException {
        machine.bql().assertHeld();
        MigrationListener l = Transports.listen(address);
        listener = l;
        boundAddress = l.boundAddress();
        Thread.ofPlatform().name(ACCEPT_THREAD_NAME).daemon(true).start(() -> {
            try {
                MigrationConnection c = FaultInjectingConnection.wrapIfAny(security.server(l.accept()), faults);
                MultifdReceiver m = multifdChannels > 0
                        ? new MultifdReceiver(machine.ram(), multifdChannels, multifdCompression, ram.multifdBytes,
                                this::multifdFailed) : null;
                if (m != null) {
                    m.setTraced(traced);
                    m.setDeviceStateSink(this::deviceStateBuffer);
                }
                multifd = m;
                machine.mainLoop().schedule(() -> process(c));
                if (m != null) {
                    acceptMultifdChannels(l, m);
                }
                if (preempt) {
                    // postcopy-preempt: the source's second connection carries requested pages.
                    MigrationConnection pc = security.server(l.accept());
                    preemptConnection = pc;
                    PostcopyIncoming pi = postcopy;
                    if (pi != null) {
                        pi.preemptConnected(pc);
                    }
                }
                if (colo) {
                    // x-colo: after any multifd channels, the channel the secondary's output goes on.
                    compareConnection.complete(security.server(l.accept()));
                }
                closeListener();
            } catch (org.livemig.transport.tls.TlsHandshakeException e) {
                tlsFailed(e);
            } catch (IOException e) {
                if (status.get() == MigrationStatus.NONE && listener != null) {
                    LOG.log(Level.DEBUG, "incoming listener closed: " + e.getMessage());
                }
            }
        });
    }

    /**
     * multifd (QEMU 7.2): the connections after the main one are the channels, each named by its
     * initial packet. On the accept thread, while {@code mig/dst/main} already loads; it waits
     * for them at the first RAM section's end. A bad channel is the receiver's failure, which
     * fails the migration ({@link #multifdFailed}).
     */
    private void acceptMultifdChannels(MigrationListener l, MultifdReceiver m) throws IOException {
        if (!security.isPlain()) {
            acceptSecuredMultifdChannels(l, m);
            return;
        }
        boolean all = false;
        while (!all) {
            all = m.addChannel(security.server(l.accept()));
        }
    }

    /**
     * multifd over TLS: each channel's handshake and initial packet run on a thread of its own
     * ({@code mig/dst/tls_n}), since a source may finish every channel's handshake before it
     * writes the first initial packet (livemig's does; QEMU's writes each as soon as its
     * channel is up). A failed handshake fails the migration; a bad initial packet is the
     * receiver's failure, as without TLS.
     */
    private void acceptSecuredMultifdChannels(MigrationListener l, MultifdReceiver m) throws IOException {
        for (int i = 0; i < multifdChannels; i++) {
            MigrationConnection c = l.accept();
            Thread.ofPlatform().name("mig/dst/tls_" + i).daemon(true).start(() -> {
                try {
                    m.addChannel(security.server(c));
                } catch (org.livemig.transport.tls.TlsHandshakeException e) {
                    tlsFailed(e);
                } catch (IOException e) {
                    LOG.log(Level.DEBUG, "multifd channel refused: " + e.getMessage());
                }
            });
        }
    }

    /**
     * A multifd channel failed (the receiver keeps the error): the main stream is shut so that
     * {@code mig/dst/main} stops at once, and its error then names the channel's.
     */
    private void multifdFailed(IOException e) {
        MigrationConnection c = connection;
        if (c != null) {
            c.shutdown();
        }
    }

    /**
     * A multifd channel thread, without the BQL: a device-state packet goes to its device
     * (QEMU's qemu_loadvm_load_state_buffer, with its error texts).
     */
    private void deviceStateBuffer(String idstr, int instanceId, byte[] data, long at) throws IOException {
        var e = machine.registry().find(idstr, instanceId).orElseThrow(() -> new org.livemig.stream.StreamFormatException(
                "Unknown idstr " + idstr + " or instance id " + Integer.toUnsignedString(instanceId)
                        + " for load state buffer", at));
        if (!e.isIterative()) {
            throw new org.livemig.stream.StreamFormatException("idstr " + idstr + " / instance "
                    + Integer.toUnsignedString(instanceId) + " has no load state buffer operation", at);
        }
        e.handlers().loadStateBuffer(data, at);
    }

    /**
     * A load thread failed: the main stream is shut so that {@code mig/dst/main} stops at once,
     * and the migration fails with the thread's message. SHUT 1 goes first, while the return path
     * still works, so that a source that has sent everything hears that this side will not run
     * the guest, and runs its own again.
     */
    private void loadThreadFailed(String message) {
        sendShutFailed();
        MigrationConnection c = connection;
        if (c != null) {
            c.shutdown();
        }
        MultifdReceiver m = multifd;
        if (m != null) {
            m.shutdown();
        }
    }

    /** Called with the BQL held, on the main loop: a source connected; starts {@code mig/dst/main}. */
    private void process(MigrationConnection c) {
        machine.bql().assertHeld();
        if (!preempt && multifdChannels == 0 && !colo) {
            closeListener();
        }
        connection = c;
        MultifdReceiver early = multifd;
        if (early != null && early.failure() != null) {
            // A channel failed before this connection was known (multifdFailed found none to
            // shut): shut it now, or mig/dst/main would wait on a main stream that may never speak.
            c.shutdown();
        }
        machine.devices().globalState().forget();
        if (!status.transition(MigrationStatus.NONE, MigrationStatus.SETUP)) {
            closeQuietly(c);
            return;
        }
        Thread t = Thread.ofPlatform().name(THREAD_NAME).daemon(true).unstarted(this::run);
        loadThread = t;
        t.start();
    }

    /** Called without the BQL; blocks on IO: {@code mig/dst/main} (migration_incoming_thread). */
    private void run() {
        machine.bql().assertNotHeld();
        JitDirectives.install(); // once per process; the warm-up, when there is one, did it already
        long start = System.nanoTime();
        MigrationConnection c = connection;
        try {
            status.transition(MigrationStatus.SETUP, MigrationStatus.ACTIVE);
            MigrationFile f = MigrationFile.forReading(c.in());
            LoadVm load = new LoadVm(machine, ram, () -> {
                returnPath = new IncomingReturnPath(MigrationFile.forWriting(c.out()));
                // Messages go to the current return path: a recovered postcopy has a new one.
                return new LoadVm.ReturnPath() {
                    @Override
                    public void sendPong(int value) throws IOException {
                        returnPath.sendPong(value);
                    }

                    @Override
                    public void sendSwitchoverAck() throws IOException {
                        returnPath.sendSwitchoverAck();
                    }
                };
            });
            this.load = load;
            LoadThreads pool = multifdChannels > 0 ? new LoadThreads(multifdChannels, this::loadThreadFailed) : null;
            if (pool != null && !SaveVm.devices(machine).isEmpty()) {
                pool.start(); // before the switchover, not inside its downtime
            }
            loadThreads = pool;
            load.useLiveDevices(switchoverAck, pool);
            MultifdReceiver m = multifd;
            if (m != null) {
                RamHandlers.of(machine).loader().useMultifd(m);
            }
            org.livemig.migration.ram.EncodedPageLoader pages = new org.livemig.migration.ram.EncodedPageLoader();
            if (decompressThreads > 0) {
                pages.acceptCompressedPages(decompressThreads);
            }
            encodedPages = pages;
            RamHandlers.of(machine).loader().useEncodedPages(pages);
            if (mappedRamOptions != null) {
                org.livemig.migration.ram.MappedRamLoader mr =
                        org.livemig.migration.ram.MappedRamLoader.open(mappedRamOptions, c.fileChannel(), ram.normalPages,
                                ram.zeroPages);
                mappedRam = mr;
                RamHandlers.of(machine).loader().useMappedRam(mr);
            }
            PostcopyIncoming pc = new PostcopyIncoming(new Host(), RamHandlers.of(machine).loader(), postcopyBackend);
            postcopy = pc;
            MigrationConnection early = preemptConnection;
            if (early != null) {
                pc.preemptConnected(early);
            }
            load.setPostcopyHandler(pc);
            load.allowColo(colo);
            LoadVm.Result r = load.loadvmState(f, false);
            loadMillis = (System.nanoTime() - start) / 1_000_000;
            if (r == LoadVm.Result.QUIT) {
                // Postcopy: mig/dst/listen loads the rest and finishes; this thread is done.
                return;
            }
            if (load.coloEnabled()) {
                // COLO: the vmdesc trailer comes before the first checkpoint's messages.
                load.skipVmdesc(f);
                runColoSecondary(load, f, c);
                machine.mainLoop().schedule(this::completedBh);
                return;
            }
            try {
                FaultInjectingConnection.reached(c, FaultPoints.LOADED);
                if (returnPath != null) {
                    returnPath.sendShut(0);
                }
                if (traced) {
                    load.timeline().mark("shut");
                    String steps = load.timeline().format();
                    if (!steps.isEmpty()) {
                        LOG.log(Level.INFO, "switchover (destination): " + steps);
                    }
                }
            } catch (IOException e) {
                // Everything is loaded: as QEMU's, the destination completes even when the source
                // cannot hear it (a livemig source then keeps its guest paused, since this side
                // may run it: see Outgoing#failed).
                LOG.log(Level.WARNING, "incoming migration loaded, but its acknowledgement (SHUT 0) could not be sent: "
                        + e.getMessage());
            }
            machine.mainLoop().schedule(this::completedBh);
        } catch (Exception | Error e) {
            String why = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
            LoadThreads pool = loadThreads;
            String loadFailure = pool == null ? null : pool.failure();
            MultifdReceiver m = multifd;
            IOException channel = m == null ? null : m.failure();
            if (loadFailure != null) {
                fail(why.equals(loadFailure) ? why : loadFailure + " (main stream: " + why + ")");
            } else {
                fail(channel != null && !why.contains(channel.getMessage())
                        ? channel.getMessage() + " (main stream: " + why + ")" : why);
            }
        }
    }

    /**
     * Called without the BQL on {@code mig/dst/main}; blocks until a failover (QEMU's
     * colo_incoming_wait): this side is a COLO secondary until then.
     */
    private void runColoSecondary(LoadVm load, MigrationFile f, MigrationConnection c) throws Exception {
        MigrationConnection cmp = null;
        try {
            cmp = compareConnection.get(10, java.util.concurrent.TimeUnit.SECONDS);
        } catch (java.util.concurrent.TimeoutException e) {
            LOG.log(Level.WARNING, "COLO: the primary opened no output channel within 10 s; outputs are not compared");
        }
        ColoSecondary s = new ColoSecondary(new ColoHost(), coloState, load, RamHandlers.of(machine).loader(), f,
                MigrationFile.forWriting(c.out()), cmp);
        coloSecondary = s;
        s.incomingWait();
    }

    /** The COLO secondary, or null while none runs. */
    public ColoSecondary colo() {
        return coloSecondary;
    }

    /** This migration as its COLO secondary sees it. */
    private final class ColoHost implements ColoSecondary.Host {
        @Override public Machine machine() { return machine; }
        @Override public StatusMachine status() { return status; }

        @Override
        public void shutdownChannels() {
            shutdown();
        }
    }

    private void fail(String message) {
        error = message;
        LOG.log(Level.WARNING, "incoming migration failed: " + error);
        sendShutFailed();
        PostcopyIncoming pc = postcopy;
        if (pc != null) {
            pc.shutdown();
        }
        shutdownLoaders();
        status.force(MigrationStatus.FAILED);
        machine.mainLoop().schedule(this::destroyAfterFailureBh);
    }

    /** The postcopy backend in use ("checked" or "userfaultfd"), or null before ADVISE. */
    public String postcopyBackendName() {
        PostcopyIncoming pc = postcopy;
        return pc == null || pc.backend() == null ? null : pc.backend().name();
    }

    /** True once the source's postcopy-preempt connection arrived. */
    public boolean hasPreemptChannel() {
        return preemptConnection != null;
    }

    /** Postcopy: how long each vCPU that asked for a page waited for it, fault to placed (ns). */
    public long[] postcopyFaultLatencies() {
        PostcopyIncoming pc = postcopy;
        return pc == null ? new long[0] : pc.faultLatencies();
    }

    /**
     * Postcopy: how many page requests for faults went out {@code [from the faulting guest threads
     * themselves, from mig/dst/fault]}; the checked backend's vCPUs send their own unless they hold the BQL.
     */
    public long[] postcopyRequestSenders() {
        PostcopyIncoming pc = postcopy;
        return pc == null ? new long[2] : pc.faultRequestSenders();
    }

    /** The postcopy backend, or null before ADVISE (tests). */
    PostcopyBackend postcopyBackend() {
        PostcopyIncoming pc = postcopy;
        return pc == null ? null : pc.backend();
    }

    /** Called with the BQL held, on the main loop: POSTCOPY_RUN's bottom half; the guest starts here while pages still arrive. */
    private void postcopyRunBh() {
        machine.bql().assertHeld();
        machine.cpuSynchronizeAllPostInit();
        // Track what the guest writes here from now on, so that a verifier can tell the pages
        // this guest changed from those that must equal the source's.
        for (org.livemig.memory.RamBlock b : machine.ram().blocks()) {
            b.dirtyBitmap().clearAll();
        }
        machine.ram().setDirtyLogging(true);
        if (autostart) {
            machine.vmStart();
        } else {
            machine.setRunState(RunState.PAUSED);
        }
        status.transition(MigrationStatus.ACTIVE, MigrationStatus.POSTCOPY_ACTIVE);
    }

    /**
     * Called without the BQL. The listen thread, at the end of the postcopy stream: waits until
     * {@code mig/dst/main} has finished the package (device state, RUN), so that completion follows
     * RUN's bottom half.
     *
     * @throws IOException when it has not finished within {@code millis}
     */
    private void awaitPackageLoaded(long millis) throws IOException, InterruptedException {
        machine.bql().assertNotHeld();
        Thread t = loadThread;
        if (t == null || t == Thread.currentThread()) {
            return;
        }
        t.join(millis);
        if (t.isAlive()) {
            throw new IOException("postcopy stream ended but " + THREAD_NAME + " has not finished the package after "
                    + millis + " ms");
        }
        if (status.get() == MigrationStatus.FAILED) {
            throw new IOException("postcopy package failed to load: " + error);
        }
    }

    /** The listen thread loaded the whole postcopy stream. */
    private void postcopyCompleted() {
        machine.mainLoop().schedule(() -> {
            // RUN's BH ran before this one (BHs run in order), so the guest is already started.
            // Clean up first: whoever sees completed may tear the machine down.
            destroy();
            if (!status.transition(MigrationStatus.POSTCOPY_ACTIVE, MigrationStatus.COMPLETED)) {
                status.transition(MigrationStatus.ACTIVE, MigrationStatus.COMPLETED);
            }
        });
    }

    private volatile boolean destroyed;

    /**
     * QMP migrate-recover: listens on a new address for the source's recovery connection. Any
     * thread (it is an out-of-band command, run without the BQL).
     */
    public void recover(MigrationAddress address, FaultSpec recoverFaults) throws MigrationException {
        PostcopyIncoming pc = postcopy;
        if (pc == null) {
            throw new MigrationException("Migrate recover can only be run when postcopy is paused.");
        }
        pc.recovery().recover(address, recoverFaults);
    }

    /**
     * QMP migrate-pause on the destination: {@link #pause}, and as since QEMU 8.2 (7.2 refuses
     * it) also while a recovery's handshake runs (postcopy-recover): a source that connected and
     * then went silent would otherwise hold this side there until a yank.
     */
    public boolean migratePause() {
        if (status.get() == MigrationStatus.POSTCOPY_RECOVER) {
            MigrationConnection c = connection;
            if (c != null) {
                c.shutdown();
            }
            return true;
        }
        return pause();
    }

    /** The channel of an active postcopy broke or is to be broken: shuts it down so that postcopy pauses. */
    public boolean pause() {
        if (status.get() != MigrationStatus.POSTCOPY_ACTIVE) {
            return false;
        }
        MigrationConnection c = connection;
        if (c != null) {
            c.shutdown();
        }
        return true;
    }

    /** The listen or fault thread failed. */
    private void postcopyFailed(String message) {
        if (!status.get().isFinal()) {
            fail(message);
        }
    }

    /**
     * Called with the BQL held, on the main loop (process_incoming_migration_bh): starts the guest
     * and ends the incoming state.
     */
    private void completedBh() {
        machine.bql().assertHeld();
        // As QEMU's: the guest runs here if the source ran it (the globalstate section says so;
        // a stream without one counts as running) and -S was not given; a source's stopped guest
        // arrives in its state ('cont' starts it). A COLO secondary that took over runs its
        // guest whatever -S said, as QEMU's does.
        RunState sent = machine.devices().globalState().received();
        if (coloSecondary != null || (autostart && (sent == null || sent.isRunning()))) {
            machine.vmStart();
        } else {
            machine.setRunState(sent == null || sent.isRunning() ? RunState.PAUSED : sent);
        }
        // Clean up first: whoever sees completed may tear the machine down.
        destroy();
        status.transition(MigrationStatus.ACTIVE, MigrationStatus.COMPLETED);
    }

    /**
     * Called with the BQL held, on the main loop, after a failure: exits with exit-on-error, else
     * cleans up so that a new incoming migration works.
     */
    private void destroyAfterFailureBh() {
        machine.bql().assertHeld();
        if (exitOnError) {
            LOG.log(Level.ERROR, "load of migration failed: " + error + "; exiting (exit-on-error)");
            machine.exit(1);
        }
        destroy();
    }

    /**
     * Called with the BQL held, on the main loop (migration_incoming_state_destroy): joins
     * {@code mig/dst/main} and the postcopy threads, closes the channels and listeners.
     */
    private void destroy() {
        machine.bql().assertHeld();
        destroyed = true;
        if (Thread.currentThread() == loadThread) {
            throw new AssertionError("incoming state destroyed from its own thread");
        }
        Thread t = loadThread;
        PostcopyIncoming pc = postcopy;
        try {
            if (t != null) {
                t.join(10_000);
            }
            if (pc != null) {
                pc.shutdown();
                pc.join(10_000);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        closeQuietly(connection);
        closeQuietly(preemptConnection);
        closeQuietly(compareConnection.getNow(null));
        MultifdReceiver m = multifd;
        if (m != null) {
            m.close();
        }
        org.livemig.migration.ram.EncodedPageLoader pages = encodedPages;
        if (pages != null) {
            pages.close();
        }
        // Their threads are joined without the BQL: a load thread may be waiting for it to run a
        // device's post-load (the seed waits for its pool WITHOUT_BQL_HELD too).
        org.livemig.migration.ram.MappedRamLoader mr = mappedRam;
        LoadThreads pool = loadThreads;
        machine.bql().withoutHeld(true, () -> {
            if (mr != null) {
                mr.close();
            }
            if (pool != null) {
                pool.close();
            }
        });
        closeListener();
        if (pc != null) {
            pc.recovery().abandon();
        }
    }

    /**
     * Called without the BQL. Waits up to {@code millis} for each of this migration's threads
     * ({@code mig/dst/main}, and in postcopy the fault, listen and preempt threads) to end.
     */
    public void join(long millis) throws InterruptedException {
        machine.bql().assertNotHeld();
        Thread t = loadThread;
        if (t != null) {
            t.join(millis);
        }
        PostcopyIncoming pc = postcopy;
        if (pc != null) {
            pc.join(millis);
        }
    }

    /**
     * This migration is being ended ({@link Migration#stop}, or its machine closing): yank, stop
     * demand paging, and let a paused postcopy stop waiting for a recovery that will not come.
     * Any thread.
     */
    void abandon() {
        destroyed = true;
        ColoSecondary cs = coloSecondary;
        if (cs != null) {
            cs.abandon();
        }
        shutdown();
        PostcopyIncoming pc = postcopy;
        if (pc != null) {
            pc.recovery().abandon();
            pc.shutdown();
        }
    }

    /** Stops listening or loading: yank on the incoming side. Any thread. */
    public void shutdown() {
        MigrationConnection c = connection;
        if (c != null) {
            c.shutdown();
        }
        MigrationConnection pc = preemptConnection;
        if (pc != null) {
            pc.shutdown();
        }
        MigrationConnection cc = compareConnection.getNow(null);
        if (cc != null) {
            cc.shutdown();
        }
        shutdownLoaders();
        closeListener();
    }

    /** Ends every wait of the loading side's helpers: multifd channels, page decoders, mapped-ram, load threads. Any thread. */
    private void shutdownLoaders() {
        MultifdReceiver m = multifd;
        if (m != null) {
            m.shutdown();
        }
        org.livemig.migration.ram.EncodedPageLoader pages = encodedPages;
        if (pages != null) {
            pages.shutdown();
        }
        org.livemig.migration.ram.MappedRamLoader mr = mappedRam;
        if (mr != null) {
            mr.shutdown();
        }
        LoadThreads pool = loadThreads;
        if (pool != null) {
            pool.shutdown();
        }
    }

    /** SHUT 1 on the return path, if there is one: this side will not run the guest. Blocks on IO briefly. */
    private void sendShutFailed() {
        IncomingReturnPath rp = returnPath;
        if (rp != null) {
            try {
                rp.sendShut(1);
            } catch (IOException ignored) {
                // the source is gone too
            }
        }
    }

    private void closeListener() {
        MigrationListener l = listener;
        listener = null;
        if (l != null) {
            try {
                l.close();
            } catch (IOException e) {
                LOG.log(Level.DEBUG, "closing listener", e);
            }
        }
    }

    private static void closeQuietly(MigrationConnection c) {
        if (c != null) {
            try {
                c.close();
            } catch (IOException e) {
                LOG.log(Level.DEBUG, "closing connection", e);
            }
        }
    }

    /** This migration as its postcopy and recovery see it. */
    private final class Host implements IncomingHost {
        @Override public Machine machine() { return machine; }
        @Override public StatusMachine status() { return status; }
        @Override public RamStats ram() { return ram; }
        @Override public RequestThreads requestThreads() { return requestThreads; }
        @Override public boolean traced() { return traced; }
        @Override public MigrationConnection secure(MigrationConnection accepted) throws IOException {
            return security.server(accepted);
        }
        @Override public IncomingReturnPath returnPath() { return returnPath; }
        @Override public boolean preempt() { return preempt; }
        @Override public boolean destroyed() { return destroyed; }

        @Override
        public void runGuest() {
            machine.mainLoop().schedule(Incoming.this::postcopyRunBh);
        }

        @Override
        public void awaitPackageLoaded(long millis) throws IOException, InterruptedException {
            Incoming.this.awaitPackageLoaded(millis);
        }

        @Override
        public void completed() {
            postcopyCompleted();
        }

        @Override
        public void failed(String message) {
            postcopyFailed(message);
        }

        @Override
        public boolean pause() {
            return Incoming.this.pause();
        }

        @Override
        public void dropChannels() {
            for (MigrationConnection c : new MigrationConnection[] {connection, preemptConnection}) {
                if (c != null) {
                    c.shutdown();
                    closeQuietly(c);
                }
            }
            preemptConnection = null;
        }

        /** Called with the BQL held. */
        @Override
        public MigrationFile adoptChannel(MigrationConnection c) {
            machine.bql().assertHeld();
            connection = c;
            returnPath = new IncomingReturnPath(MigrationFile.forWriting(c.out()));
            return MigrationFile.forReading(c.in());
        }

        @Override
        public void preemptConnected(MigrationConnection c) {
            preemptConnection = c;
            PostcopyIncoming pi = postcopy;
            if (pi != null) {
                pi.preemptConnected(c);
            }
        }

        @Override
        public void boundTo(MigrationAddress a) {
            boundAddress = a;
        }
    }
}
