package org.livemig.migration;

import java.io.IOException;
import java.util.logging.Level;
import java.util.logging.Logger;
import org.livemig.machine.Machine;
import org.livemig.machine.RunState;
import org.livemig.memory.PostcopyBackend;
import org.livemig.migration.multifd.MultifdReceiver;
import org.livemig.stream.MigrationFile;
import org.livemig.transport.ChannelSecurity;
import org.livemig.transport.FaultInjectingConnection;
import org.livemig.transport.FaultSpec;
import org.livemig.transport.MigrationAddress;
import org.livemig.transport.MigrationConnection;
import org.livemig.transport.MigrationListener;
import org.livemig.transport.Transports;

/**
 * One incoming migration (QEMU's MigrationIncomingState). The listener is bound on the main loop;
 * a small accept thread hands the connection to the main loop as a BH, which starts
 * {@code mig/dst/main}; that thread runs {@code loadvmState(file, false)} without the BQL.
 * Completion and clean-up run as BHs on the main loop, which join {@code mig/dst/main}.
 */
public final class Incoming {
    private static final Logger LOG = Logger.getLogger(Incoming.class.getName());
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

    Incoming(Machine machine, boolean exitOnError, boolean autostart, MigrationEvents events,
             FaultSpec faults, String postcopyBackend, boolean preempt, int multifdChannels) {
        this.multifdChannels = multifdChannels;
        this.faults = faults;
        this.postcopyBackend = postcopyBackend;
        this.preempt = preempt;
        this.machine = machine;
        this.exitOnError = exitOnError;
        this.autostart = autostart;
        status.addListener((from, to) -> events.statusChanged(to));
    }

    void setRequestThreads(RequestThreads threads) {
        this.requestThreads = threads;
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

    /** How postcopy's request threads are scheduled (each calls {@link RequestThreads#raise} as it starts). */
    RequestThreads requestThreads() {
        return requestThreads;
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

    /** Binds the listener and starts waiting for the source. Called with the BQL held. */
    void listen(MigrationAddress address) throws IOException {
        machine.bql().assertHeld();
        MigrationListener l = Transports.listen(address);
        listener = l;
        boundAddress = l.boundAddress();
        Thread.ofPlatform().name(ACCEPT_THREAD_NAME).daemon(true).start(() -> {
            try {
                MigrationConnection c = FaultInjectingConnection.wrapIfAny(security.server(l.accept()), faults);
                MultifdReceiver m = multifdChannels > 0
                        ? new MultifdReceiver(machine.ram(), multifdChannels, ram.multifdBytes, this::multifdFailed) : null;
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
                    closeListener();
                }
            } catch (org.livemig.transport.tls.TlsHandshakeException e) {
                tlsFailed(e);
            } catch (IOException e) {
                if (status.get() == MigrationStatus.NONE && listener != null) {
                    LOG.log(Level.FINE, "incoming listener closed: " + e.getMessage());
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
        closeListener();
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
                    LOG.log(Level.FINE, "multifd channel refused: " + e.getMessage());
                }
            });
        }
        closeListener();
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

    /** A source connected: start {@code mig/dst/main}. Called with the BQL held, on the main loop. */
    private void process(MigrationConnection c) {
        machine.bql().assertHeld();
        if (!preempt && multifdChannels == 0) {
            closeListener();
        }
        connection = c;
        if (!status.transition(MigrationStatus.NONE, MigrationStatus.SETUP)) {
            closeQuietly(c);
            return;
        }
        Thread t = Thread.ofPlatform().name(THREAD_NAME).daemon(true).unstarted(this::run);
        loadThread = t;
        t.start();
    }

    /** {@code mig/dst/main} (migration_incoming_thread). */
    private void run() {
        machine.bql().assertNotHeld();
        long start = System.nanoTime();
        MigrationConnection c = connection;
        try {
            status.transition(MigrationStatus.SETUP, MigrationStatus.ACTIVE);
            MigrationFile f = MigrationFile.forReading(c.in());
            LoadVm load = new LoadVm(machine, ram, () -> {
                returnPath = new IncomingReturnPath(MigrationFile.forWriting(c.out()));
                // PONGs go to the current return path: a recovered postcopy has a new one.
                return value -> returnPath.sendPong(value);
            });
            MultifdReceiver m = multifd;
            if (m != null) {
                RamHandlers.of(machine).loader().useMultifd(m);
            }
            PostcopyIncoming pc = new PostcopyIncoming(this, machine, RamHandlers.of(machine).loader(), postcopyBackend);
            postcopy = pc;
            MigrationConnection early = preemptConnection;
            if (early != null) {
                pc.preemptConnected(early);
            }
            load.setPostcopyHandler(pc);
            LoadVm.Result r = load.loadvmState(f, false);
            loadMillis = (System.nanoTime() - start) / 1_000_000;
            if (r == LoadVm.Result.QUIT) {
                // Postcopy: mig/dst/listen loads the rest and finishes; this thread is done.
                return;
            }
            if (returnPath != null) {
                returnPath.sendShut(0);
            }
            machine.mainLoop().schedule(this::completedBh);
        } catch (Exception | Error e) {
            String why = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
            MultifdReceiver m = multifd;
            IOException channel = m == null ? null : m.failure();
            fail(channel != null && !why.contains(channel.getMessage())
                    ? channel.getMessage() + " (main stream: " + why + ")" : why);
        }
    }

    private void fail(String message) {
        error = message;
        LOG.log(Level.WARNING, "incoming migration failed: " + error);
        IncomingReturnPath rp = returnPath;
        if (rp != null) {
            try {
                rp.sendShut(1);
            } catch (IOException ignored) {
                // the source is gone too
            }
        }
        PostcopyIncoming pc = postcopy;
        if (pc != null) {
            pc.shutdown();
        }
        MultifdReceiver m = multifd;
        if (m != null) {
            m.shutdown();
        }
        status.force(MigrationStatus.FAILED);
        machine.mainLoop().schedule(this::destroyAfterFailureBh);
    }

    IncomingReturnPath returnPath() {
        return returnPath;
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

    /** POSTCOPY_RUN's bottom half: the guest starts here while pages still arrive. Main loop, BQL held. */
    void postcopyRunBh() {
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
     * The listen thread, at the end of the postcopy stream: waits until {@code mig/dst/main} has
     * finished the package (device state, RUN), so that completion follows RUN's bottom half.
     *
     * @throws IOException when it has not finished within {@code millis}
     */
    void awaitPackageLoaded(long millis) throws IOException, InterruptedException {
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
    void postcopyCompleted() {
        machine.mainLoop().schedule(() -> {
            // RUN's BH ran before this one (BHs run in order), so the guest is already started.
            // Clean up first: whoever sees completed may tear the machine down.
            destroy();
            if (!status.transition(MigrationStatus.POSTCOPY_ACTIVE, MigrationStatus.COMPLETED)) {
                status.transition(MigrationStatus.ACTIVE, MigrationStatus.COMPLETED);
            }
        });
    }

    // ---- postcopy recovery ----

    /** Guards the pause: the listen thread waits on it for a recovery connection. */
    private final Object pauseLock = new Object();
    private volatile MigrationListener recoverListener;
    private volatile boolean destroyed;

    /**
     * The listen thread lost its channel while the guest runs here: postcopy-paused. Drops the
     * broken channels and waits, without a timeout (the guest must not lose its state; faulting
     * vCPUs wait too), for {@link #recover}'s connection. Returns the new main stream, with
     * status postcopy-recover, or null when the migration cannot pause (then it fails).
     */
    MigrationFile postcopyPause(String why) throws InterruptedException {
        synchronized (pauseLock) {
            MigrationStatus s = status.get();
            boolean pausable = s == MigrationStatus.POSTCOPY_ACTIVE || s == MigrationStatus.POSTCOPY_RECOVER
                    // RUN was read but its BH has not run yet: the guest starts regardless
                    || s == MigrationStatus.ACTIVE;
            if (!pausable) {
                return null;
            }
            // Drop the broken channels (and a recovery listener still waiting for a preempt
            // channel) before the status says paused: from then on migrate-recover may install new ones.
            for (MigrationConnection c : new MigrationConnection[] {connection, preemptConnection}) {
                if (c != null) {
                    c.shutdown();
                    closeQuietly(c);
                }
            }
            preemptConnection = null;
            closeRecoverListener();
            if (!status.transition(s, MigrationStatus.POSTCOPY_PAUSED)) {
                return null;
            }
        }
        LOG.warning("postcopy paused (" + why + "); waiting for migrate-recover");
        synchronized (pauseLock) {
            while (status.get() == MigrationStatus.POSTCOPY_PAUSED && !destroyed) {
                pauseLock.wait(1000);
            }
            if (status.get() != MigrationStatus.POSTCOPY_RECOVER) {
                return null;
            }
            return MigrationFile.forReading(connection.in());
        }
    }

    /**
     * QMP migrate-recover: listens on a new address for the source's recovery connection. Any
     * thread (it is an out-of-band command, run without the BQL).
     */
    public void recover(MigrationAddress address, FaultSpec recoverFaults) throws MigrationException {
        MigrationListener l;
        synchronized (pauseLock) {
            if (status.get() != MigrationStatus.POSTCOPY_PAUSED) {
                throw new MigrationException("Migrate recover can only be run when postcopy is paused.");
            }
            if (recoverListener != null) {
                throw new MigrationException("Migrate recovery is triggered already");
            }
            try {
                l = Transports.listen(address);
            } catch (IOException e) {
                throw new MigrationException("Failed to listen on " + address + ": " + e.getMessage());
            }
            recoverListener = l;
            boundAddress = l.boundAddress();
        }
        Thread.ofPlatform().name(ACCEPT_THREAD_NAME).daemon(true).start(() -> {
            try {
                MigrationConnection c = FaultInjectingConnection.wrapIfAny(security.server(l.accept()), recoverFaults);
                machine.mainLoop().schedule(() -> recoverConnected(c));
                if (preempt) {
                    MigrationConnection pc = security.server(l.accept());
                    preemptConnection = pc;
                    PostcopyIncoming pi = postcopy;
                    if (pi != null) {
                        pi.preemptConnected(pc);
                    }
                }
            } catch (IOException | java.util.concurrent.RejectedExecutionException e) {
                LOG.log(Level.FINE, "recovery listener closed: " + e.getMessage());
            } finally {
                if (recoverListener == l) {
                    closeRecoverListener();
                }
            }
        });
    }

    /** The source reconnected for recovery: the listen thread goes on with the new channel. Main loop. */
    private void recoverConnected(MigrationConnection c) {
        machine.bql().assertHeld();
        synchronized (pauseLock) {
            if (status.get() != MigrationStatus.POSTCOPY_PAUSED) {
                closeQuietly(c);
                return;
            }
            connection = c;
            returnPath = new IncomingReturnPath(MigrationFile.forWriting(c.out()));
            status.transition(MigrationStatus.POSTCOPY_PAUSED, MigrationStatus.POSTCOPY_RECOVER);
            pauseLock.notifyAll();
        }
    }

    /** POSTCOPY_RESUME was read: postcopy-recover to postcopy-active. */
    boolean postcopyResumed() {
        return status.transition(MigrationStatus.POSTCOPY_RECOVER, MigrationStatus.POSTCOPY_ACTIVE);
    }

    /** QMP migrate-pause on the destination: shuts the channel down so that postcopy pauses. */
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

    private void closeRecoverListener() {
        MigrationListener l = recoverListener;
        recoverListener = null;
        if (l != null) {
            try {
                l.close();
            } catch (IOException e) {
                LOG.log(Level.FINE, "closing recovery listener", e);
            }
        }
    }

    /** The listen or fault thread failed. */
    void postcopyFailed(String message) {
        if (!status.get().isFinal()) {
            fail(message);
        }
    }

    /** process_incoming_migration_bh: start the guest and end the incoming state. Main loop, BQL held. */
    private void completedBh() {
        machine.bql().assertHeld();
        if (autostart) {
            machine.vmStart();
        } else {
            machine.setRunState(RunState.PAUSED);
        }
        // Clean up first: whoever sees completed may tear the machine down.
        destroy();
        status.transition(MigrationStatus.ACTIVE, MigrationStatus.COMPLETED);
    }

    /** Failure: exit from the main loop with exit-on-error, else clean up so a new incoming migration works. */
    private void destroyAfterFailureBh() {
        machine.bql().assertHeld();
        if (exitOnError) {
            LOG.severe("load of migration failed: " + error + "; exiting (exit-on-error)");
            machine.exit(1);
        }
        destroy();
    }

    /** migration_incoming_state_destroy: joins {@code mig/dst/main}; only on the main loop. */
    private void destroy() {
        machine.bql().assertHeld();
        destroyed = true;
        if (Thread.currentThread() == loadThread) {
            throw new AssertionError("incoming state destroyed from its own thread");
        }
        Thread t = loadThread;
        try {
            if (t != null) {
                t.join(10_000);
            }
            PostcopyIncoming pc = postcopy;
            if (pc != null) {
                pc.shutdown();
                pc.join(10_000);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        closeQuietly(connection);
        closeQuietly(preemptConnection);
        MultifdReceiver m = multifd;
        if (m != null) {
            m.close();
        }
        closeListener();
        closeRecoverListener();
    }

    /**
     * Waits up to {@code millis} for each of this migration's threads ({@code mig/dst/main}, and
     * in postcopy the fault, listen and preempt threads) to end. Not with the BQL held.
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
        synchronized (pauseLock) {
            pauseLock.notifyAll();
        }
        shutdown();
        PostcopyIncoming pc = postcopy;
        if (pc != null) {
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
        MultifdReceiver m = multifd;
        if (m != null) {
            m.shutdown();
        }
        closeListener();
    }

    private void closeListener() {
        MigrationListener l = listener;
        listener = null;
        if (l != null) {
            try {
                l.close();
            } catch (IOException e) {
                LOG.log(Level.FINE, "closing listener", e);
            }
        }
    }

    private static void closeQuietly(MigrationConnection c) {
        if (c != null) {
            try {
                c.close();
            } catch (IOException e) {
                LOG.log(Level.FINE, "closing connection", e);
            }
        }
    }
}
