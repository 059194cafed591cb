package org.livemig.migration;

import java.io.IOException;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import org.livemig.machine.Machine;
import org.livemig.memory.ThreadScheduling;
import org.livemig.migration.colo.ColoSide;
import org.livemig.migration.colo.ColoState;
import org.livemig.migration.postcopy.RequestThreads;
import org.livemig.security.ObjectException;
import org.livemig.security.ObjectRegistry;
import org.livemig.transport.ChannelSecurity;
import org.livemig.transport.FaultSpec;
import org.livemig.transport.MigrationAddress;
import org.livemig.transport.MigrationConnection;
import org.livemig.transport.tls.TlsChannelSecurity;
import org.livemig.transport.tls.TlsEndpoint;
import org.livemig.transport.tls.TlsHandshakeException;
import tools.jackson.databind.node.JsonNodeFactory;
import tools.jackson.databind.node.ObjectNode;

/**
 * The migration state of one machine (QEMU's MigrationState and MigrationIncomingState holder):
 * capabilities, parameters, the current or last outgoing and incoming migration.
 *
 * <p>Capabilities, parameters and the current migrations are changed with the BQL held (QMP
 * commands run on the main loop); a migration takes a copy of them when it starts.
 */
public final class Migration {
    /** QEMU's error text while a migration runs. */
    private static final String IN_PROGRESS = "There's a migration process in progress";
    private final Machine machine;
    private final EnumSet<Capability> capabilities = EnumSet.noneOf(Capability.class);
    private final MigrationParameters parameters = new MigrationParameters();
    private final List<MigrationEvents> listeners = new CopyOnWriteArrayList<>();
    private final MigrationEvents fanOut = new MigrationEvents() {
        @Override
        public void statusChanged(MigrationStatus status) {
            listeners.forEach(l -> l.statusChanged(status));
        }

        @Override
        public void pass(long pass) {
            listeners.forEach(l -> l.pass(pass));
        }
    };
    /** COLO's mode and failover state on this machine (query-colo-status, COLO_EXIT). */
    private final ColoState coloState = new ColoState();
    private volatile Outgoing outgoing;
    private volatile Incoming incoming;
    private volatile boolean autostart = true;
    private volatile FaultSpec outgoingFaults = FaultSpec.NONE;
    private volatile FaultSpec incomingFaults = FaultSpec.NONE;
    private volatile String postcopyBackend = "auto";
    /** How a background snapshot tracks guest writes: "auto" (userfaultfd where allowed), "checked" or "userfaultfd". */
    private volatile String writeTracking = "auto";
    /** Told, with the BQL held and the guest stopped, the moment a background snapshot's state is taken (tests, the CLI). */
    private volatile java.util.function.Consumer<Machine> backgroundSnapshotObserver;
    /** SCHED_FIFO priority of the postcopy request threads, 0 for normal scheduling. */
    private volatile int postcopyRequestPriority;

    /** This process's credential and authz objects (object-add, --object), which tls-creds and tls-authz name. */
    private final ObjectRegistry objects = new ObjectRegistry();

    /** A quiet migration logs its switch-over account at FINE, not INFO (a warm-up's scratch migrations). */
    private final boolean quiet;

    public Migration(Machine machine) {
        this(machine, false);
    }

    Migration(Machine machine, boolean quiet) {
        this.quiet = quiet;
        this.machine = machine;
        RamHandlers.of(machine);
        machine.addCloseNotifier(this::machineClosing);
    }

    /**
     * The machine is closing: no migration may go on touching its RAM (QEMU's migration_shutdown).
     * Off the main loop this is {@link #stop}; on it, with the BQL held, the threads are told to
     * end but not waited for, as they may need the lock to get there.
     */
    private void machineClosing() {
        if (machine.bql().isHeldByCurrentThread()) {
            end();
            return;
        }
        try {
            stop(10_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    public Machine machine() {
        return machine;
    }

    /** The objects tls-creds and tls-authz are looked up in. */
    public ObjectRegistry objects() {
        return objects;
    }

    public void addListener(MigrationEvents l) {
        listeners.add(l);
    }

    /** Whether the destination starts the guest after an incoming migration (QEMU without -S). */
    public void setAutostart(boolean on) {
        autostart = on;
    }

    /**
     * Test hook: faults injected into the connections of later migrations (stall, cut, flip,
     * throttle), as seen from this side.
     */
    public void setFaultInjection(FaultSpec outgoing, FaultSpec incoming) {
        this.outgoingFaults = outgoing;
        this.incomingFaults = incoming;
    }

    /** Demand-paging backend for incoming postcopy: "auto" (userfaultfd where allowed), "checked" or "userfaultfd". */
    public void setPostcopyBackend(String kind) {
        if (!kind.equals("auto") && !kind.equals("checked") && !kind.equals("userfaultfd")) {
            throw new IllegalArgumentException("postcopy backend must be auto, checked or userfaultfd, not '" + kind + "'");
        }
        this.postcopyBackend = kind;
    }

    /**
     * How later background snapshots track guest writes: "auto" (userfaultfd write-protect where
     * the kernel allows it, else checked), "checked" or "userfaultfd" (failing the snapshot where
     * the kernel does not allow it).
     */
    public void setWriteTracking(String kind) {
        if (!kind.equals("auto") && !kind.equals("checked") && !kind.equals("userfaultfd")) {
            throw new IllegalArgumentException("write tracking must be auto, checked or userfaultfd, not '" + kind + "'");
        }
        this.writeTracking = kind;
    }

    /**
     * Called with the BQL held, with the guest stopped, at the moment later background snapshots
     * take the guest's state (its devices are read then; its RAM is saved as it is then).
     */
    public void setBackgroundSnapshotObserver(java.util.function.Consumer<Machine> observer) {
        this.backgroundSnapshotObserver = observer;
    }

    /**
     * Real-time (SCHED_FIFO) priority, 1 to 99, for the threads a vCPU waiting on a postcopy page
     * depends on ({@code mig/src/rp_thr} on a source, {@code mig/dst/fault} and
     * {@code mig/dst/preempt} on a destination), from the next migration on; 0 (the default)
     * leaves them in normal scheduling. Needs CAP_SYS_NICE or RLIMIT_RTPRIO; where the kernel
     * refuses, a warning is logged and the threads run as usual. See {@link RequestThreads}.
     */
    public void setPostcopyRequestPriority(int priority) {
        if (priority < 0 || priority > ThreadScheduling.MAX_PRIORITY) {
            throw new IllegalArgumentException("postcopy request priority must be 0 (off) to "
                    + ThreadScheduling.MAX_PRIORITY + ", not " + priority);
        }
        this.postcopyRequestPriority = priority;
    }

    public Outgoing outgoing() {
        return outgoing;
    }

    public Incoming incoming() {
        return incoming;
    }

    /** True while an outgoing or incoming migration is in progress. */
    public boolean isActive() {
        Outgoing o = outgoing;
        Incoming i = incoming;
        return (o != null && o.status().isActive()) || (i != null && i.status().isActive());
    }

    public Set<Capability> capabilities() {
        return EnumSet.copyOf(capabilities.isEmpty() ? EnumSet.noneOf(Capability.class) : capabilities);
    }

    /** A copy of the parameters. */
    public MigrationParameters parameters() {
        return parameters.copy();
    }

    /** Called with the BQL held. Sets a capability; refused while a migration runs. */
    public void setCapability(Capability c, boolean on) throws MigrationException {
        setCapabilities(java.util.Map.of(c, on));
    }

    /**
     * Called with the BQL held. Sets capabilities together (QMP migrate-set-capabilities): the
     * resulting set is checked as QEMU checks it before any of them changes; refused while a
     * migration runs.
     */
    public void setCapabilities(java.util.Map<Capability, Boolean> changes) throws MigrationException {
        machine.bql().assertHeld();
        refuseWhileActive("capabilities");
        EnumSet<Capability> next = capabilities.isEmpty() ? EnumSet.noneOf(Capability.class) : EnumSet.copyOf(capabilities);
        changes.forEach((c, on) -> {
            if (on) {
                next.add(c);
            } else {
                next.remove(c);
            }
        });
        checkBackgroundSnapshot(next);
        if (next.contains(Capability.MULTIFD) && next.contains(Capability.COMPRESS)) {
            throw new MigrationException("Multifd is not compatible with compress"); // QEMU 7.2's words
        }
        if (next.contains(Capability.SWITCHOVER_ACK) && !next.contains(Capability.RETURN_PATH)) {
            throw new MigrationException("Capability 'switchover-ack' requires capability 'return-path'"); // QEMU 8.1's
        }
        checkMappedRam(next);
        capabilities.clear();
        capabilities.addAll(next);
    }

    /**
     * Called with the BQL held. Changes parameters through {@code edit} on a copy, validated before
     * it takes effect. As QEMU's migrate-set-parameters, this works while an outgoing migration
     * runs: a new max-bandwidth, max-postcopy-bandwidth or downtime-limit applies from its next
     * loop turn (that is how an operator helps a migration converge). While an incoming migration
     * runs they are frozen.
     */
    public void setParameters(java.util.function.Consumer<MigrationParameters> edit) throws MigrationException {
        machine.bql().assertHeld();
        Incoming in = incoming;
        if (in != null && in.status().isActive()) {
            throw frozen("parameters");
        }
        MigrationParameters p = parameters.copy();
        edit.accept(p);
        try {
            p.validate();
        } catch (IllegalArgumentException e) {
            throw new MigrationException(e.getMessage());
        }
        parameters.assignFrom(p);
        Outgoing o = outgoing;
        if (o != null && o.status().isActive()) {
            o.applyParameters(parameters.copy());
        }
    }

    /**
     * background-snapshot as QEMU 7.2 checks it, in its order and words. Its "not supported by
     * host kernel" never applies: without userfaultfd write-protect the checked accessors track writes.
     */
    private static void checkBackgroundSnapshot(Set<Capability> next) throws MigrationException {
        if (!next.contains(Capability.BACKGROUND_SNAPSHOT)) {
            return;
        }
        for (Capability c : List.of(Capability.POSTCOPY_RAM, Capability.RETURN_PATH, Capability.MULTIFD,
                Capability.PAUSE_BEFORE_SWITCHOVER, Capability.AUTO_CONVERGE, Capability.COMPRESS, Capability.XBZRLE,
                Capability.X_COLO)) {
            if (next.contains(c)) {
                throw new MigrationException("Background-snapshot is not compatible with " + c.qemuName());
            }
        }
    }

    /** mapped-ram as QEMU 9.0 checks it, in its order and words. */
    private static void checkMappedRam(Set<Capability> next) throws MigrationException {
        if (!next.contains(Capability.MAPPED_RAM)) {
            return;
        }
        if (next.contains(Capability.XBZRLE)) {
            throw new MigrationException("Mapped-ram migration is incompatible with xbzrle");
        }
        if (next.contains(Capability.COMPRESS)) {
            throw new MigrationException("Mapped-ram migration is incompatible with compression");
        }
        if (next.contains(Capability.POSTCOPY_RAM)) {
            throw new MigrationException("Mapped-ram migration is incompatible with postcopy");
        }
    }

    /**
     * At migrate and migrate-incoming: mapped-ram needs a file (QEMU 9.0's words), and its
     * multifd channels take pages uncompressed.
     */
    private void checkMappedRamAddress(MigrationAddress addr) throws MigrationException {
        if (!capabilities.contains(Capability.MAPPED_RAM)) {
            return;
        }
        if (!(addr instanceof MigrationAddress.File)) {
            throw new MigrationException("Migration requires seekable transport (e.g. file)");
        }
        if (capabilities.contains(Capability.MULTIFD) && !"none".equals(parameters.multifdCompression)) {
            throw new MigrationException("Mapped-ram only available for non-compressed non-TLS multifd migration");
        }
    }

    /** What a mapped-ram migration starting now does: its channels (0 without multifd) and direct IO. */
    private org.livemig.migration.ram.MappedRamOptions mappedRamOptions(MigrationAddress addr) {
        if (!capabilities.contains(Capability.MAPPED_RAM)) {
            return null;
        }
        boolean multifd = capabilities.contains(Capability.MULTIFD);
        MigrationAddress.File f = (MigrationAddress.File) addr;
        return new org.livemig.migration.ram.MappedRamOptions(f.path(), f.offset(), multifd ? parameters.multifdChannels : 0,
                multifd && parameters.directIo, parameters.detectZeroPages());
    }

    private void refuseWhileActive(String what) throws MigrationException {
        if (isActive()) {
            throw frozen(what);
        }
    }

    private static MigrationException frozen(String what) {
        return new MigrationException(IN_PROGRESS + "; " + what + " cannot be changed now");
    }

    /**
     * multifd runs over sockets only, and not with postcopy, as in QEMU 7.2; and over a file: with
     * mapped-ram, as in QEMU 9.0.
     */
    private void checkMultifd(MigrationAddress addr) throws MigrationException {
        if (!capabilities.contains(Capability.MULTIFD)) {
            return;
        }
        if (capabilities.contains(Capability.POSTCOPY_RAM)) {
            throw new MigrationException("Postcopy is not yet compatible with multifd");
        }
        if (addr instanceof MigrationAddress.File && capabilities.contains(Capability.MAPPED_RAM)) {
            return;
        }
        if (!(addr instanceof MigrationAddress.Tcp) && !(addr instanceof MigrationAddress.Unix)) {
            throw new MigrationException("multifd needs a tcp: or unix: address, not " + addr);
        }
    }

    /**
     * x-colo as QEMU 7.2 runs it: over a socket, without the return-path capability (the
     * secondary's replies come back on the migration connection itself; with both, a QEMU 7.2
     * primary reads them as return-path messages and fails), and not with postcopy (COLO starts
     * from a precopy's completion).
     */
    private void checkColo(MigrationAddress addr) throws MigrationException {
        if (!capabilities.contains(Capability.X_COLO)) {
            return;
        }
        if (capabilities.contains(Capability.POSTCOPY_RAM)) {
            throw new MigrationException("COLO is not compatible with postcopy");
        }
        if (capabilities.contains(Capability.RETURN_PATH)) {
            throw new MigrationException("COLO runs without the return-path capability: the secondary's replies"
                    + " travel on the migration connection itself (QEMU 7.2's primary fails with both)");
        }
        if (!(addr instanceof MigrationAddress.Tcp) && !(addr instanceof MigrationAddress.Unix)) {
            throw new MigrationException("COLO needs a tcp: or unix: address, not " + addr);
        }
    }

    /**
     * The accelerators ({@code --device}) migrate in precopy only, as QEMU's VFIO devices did
     * before postcopy support: their final state must be loaded before the destination runs, and
     * a COLO checkpoint would need a cache of their memory.
     */
    private void checkAccelerators() throws MigrationException {
        if (machine.devices().accelerators().isEmpty()) {
            return;
        }
        String name = machine.devices().accelerators().getFirst().name();
        if (capabilities.contains(Capability.POSTCOPY_RAM)) {
            throw new MigrationException("device " + name + " (an accelerator) migrates in precopy only:"
                    + " postcopy-ram cannot be used with it");
        }
        if (capabilities.contains(Capability.X_COLO)) {
            throw new MigrationException("device " + name + " (an accelerator) cannot take part in COLO");
        }
    }

    /** COLO's mode, last mode and failover state (query-colo-status). */
    public ColoState coloState() {
        return coloState;
    }

    /** The COLO side that runs on this machine, or null. */
    public ColoSide colo() {
        Outgoing o = outgoing;
        if (o != null && o.colo() != null && o.status() == MigrationStatus.COLO) {
            return o.colo();
        }
        Incoming i = incoming;
        if (i != null && i.colo() != null && i.status() == MigrationStatus.COLO) {
            return i.colo();
        }
        return null;
    }

    /**
     * Called with the BQL held: QMP x-colo-lost-heartbeat. The side this machine plays goes on
     * alone: the failover is requested here and done by a bottom half, as QEMU's, so the command
     * returns at once.
     */
    public void coloLostHeartbeat() throws MigrationException {
        machine.bql().assertHeld();
        if (coloState.mode() == ColoState.Mode.NONE) {
            throw new MigrationException("The feature 'colo' is not enabled");
        }
        if (!coloState.requestFailover()) {
            return; // already requested
        }
        machine.mainLoop().schedule(() -> {
            ColoSide side = colo();
            if (side != null) {
                side.failover();
            }
        });
    }

    /** Called with the BQL held. Starts an outgoing migration (QMP migrate). */
    public Outgoing migrate(String uri) throws MigrationException {
        machine.bql().assertHeld();
        if (isActive()) {
            throw new MigrationException(IN_PROGRESS);
        }
        // QEMU's checks, in its order and words: a machine waiting for its state, or whose guest
        // has already migrated away ('cont' makes it a source again), is not one.
        if (machine.runState() == org.livemig.machine.RunState.INMIGRATE) {
            throw new MigrationException("Guest is waiting for an incoming migration");
        }
        if (machine.runState() == org.livemig.machine.RunState.POSTMIGRATE) {
            throw new MigrationException("Can't migrate the vm that was paused due to previous migration");
        }
        MigrationAddress addr;
        try {
            addr = parse(uri, false);
        } catch (MigrationException e) {
            if (uri.startsWith("tcp:") || uri.startsWith("unix:")) {
                // QEMU fails the migration itself on a socket address it cannot parse.
                outgoing = Outgoing.failedAtStart(machine, parameters.copy(), fanOut, e.getMessage());
            }
            throw e;
        }
        checkMappedRamAddress(addr);
        checkMultifd(addr);
        checkColo(addr);
        checkTls(addr);
        checkAccelerators();
        Outgoing o = new Outgoing(machine, parameters.copy(), capabilities, addr, fanOut, outgoingFaults, quiet);
        o.setColoState(coloState);
        o.setMappedRam(mappedRamOptions(addr));
        o.setWriteTracking(writeTracking, backgroundSnapshotObserver);
        o.setRequestThreads(new RequestThreads(postcopyRequestPriority));
        o.setChannelSecurity(channelSecurity(TlsEndpoint.CLIENT, () -> o.status().isActive()));
        outgoing = o;
        o.start();
        return o;
    }

    /**
     * Called with the BQL held: QMP x-livemig-become-destination (livemig's own). A machine whose
     * guest has migrated away (postmigrate), or one still waiting for a migration, waits for an
     * incoming migration again, as if started with {@code -incoming defer} (and {@code -S} when
     * {@code autostart} is false; null keeps it): two long-lived processes can then migrate a
     * guest back and forth (the soak). QEMU has no such command; its processes are started anew.
     */
    public void becomeDestination(Boolean autostart) throws MigrationException {
        machine.bql().assertHeld();
        if (isActive()) {
            throw new MigrationException(IN_PROGRESS);
        }
        Incoming current = incoming;
        if (current != null && current.isListening()) {
            throw new MigrationException("The incoming migration has already been started");
        }
        org.livemig.machine.RunState s = machine.runState();
        if (s != org.livemig.machine.RunState.POSTMIGRATE && s != org.livemig.machine.RunState.INMIGRATE) {
            throw new MigrationException("only a machine whose guest migrated away (postmigrate) or that waits for one"
                    + " (inmigrate) can become a destination, not one in " + s.qemuName());
        }
        outgoing = null; // query-migrate then reports the incoming migration
        if (autostart != null) {
            this.autostart = autostart;
        }
        machine.setRunState(org.livemig.machine.RunState.INMIGRATE);
    }

    /** Called with the BQL held. Starts listening for an incoming migration (QMP migrate-incoming). */
    public Incoming migrateIncoming(String uri, boolean exitOnError) throws MigrationException {
        machine.bql().assertHeld();
        if (isActive()) {
            throw new MigrationException(IN_PROGRESS);
        }
        Incoming current = incoming;
        if (current != null && current.isListening()) {
            throw new MigrationException("The incoming migration has already been started");
        }
        MigrationAddress addr = parse(uri, true);
        checkMappedRamAddress(addr);
        checkMultifd(addr);
        checkTls(addr);
        // With mapped-ram the file's channels are the loader's readers, not connections to accept.
        boolean multifdConnections = capabilities.contains(Capability.MULTIFD) && !capabilities.contains(Capability.MAPPED_RAM);
        Incoming i = new Incoming(machine, exitOnError, autostart, fanOut, incomingFaults, postcopyBackend,
                capabilities.contains(Capability.POSTCOPY_PREEMPT),
                multifdConnections ? parameters.multifdChannels : 0,
                capabilities.contains(Capability.X_COLO), coloState, quiet);
        i.setRequestThreads(new RequestThreads(postcopyRequestPriority));
        i.setSwitchoverAck(capabilities.contains(Capability.SWITCHOVER_ACK));
        i.setPageDecoding(parameters.multifdCompressionMethod(),
                capabilities.contains(Capability.COMPRESS) ? parameters.decompressThreads : 0);
        i.setChannelSecurity(channelSecurity(TlsEndpoint.SERVER, () -> i.isListening() || i.status().isActive()));
        i.setMappedRam(mappedRamOptions(addr));
        try {
            i.listen(addr);
        } catch (IOException e) {
            throw new MigrationException("Failed to listen on " + uri + ": " + e.getMessage());
        }
        incoming = i;
        return i;
    }

    /**
     * Called with the BQL held. Resumes a paused postcopy on a new address (QMP migrate with
     * resume: true).
     */
    public Outgoing resume(String uri) throws MigrationException {
        machine.bql().assertHeld();
        Outgoing o = outgoing;
        MigrationAddress addr = parse(uri);
        if (o == null || !o.resume(addr, outgoingFaults)) {
            throw new MigrationException("Cannot resume if there is no paused migration");
        }
        return o;
    }

    /**
     * QMP migrate-pause (out-of-band: any thread, BQL or not): breaks the channel of an active
     * postcopy, on whichever side this is, so that both sides pause.
     */
    public void pause() throws MigrationException {
        Outgoing o = outgoing;
        if (o != null && o.pause()) {
            return;
        }
        Incoming i = incoming;
        if (i != null && i.migratePause()) {
            return;
        }
        throw new MigrationException("migrate-pause is currently only supported during postcopy-active state");
    }

    /** QMP migrate-recover (out-of-band): listens on {@code uri} for the source's recovery connection. */
    public void recover(String uri) throws MigrationException {
        Incoming i = incoming;
        MigrationAddress addr = parse(uri);
        if (i == null) {
            throw new MigrationException("Migrate recover can only be run when postcopy is paused.");
        }
        i.recover(addr, incomingFaults);
    }

    /** QMP migrate-start-postcopy. */
    public void startPostcopy() throws MigrationException {
        if (!capabilities.contains(Capability.POSTCOPY_RAM)) { // QEMU checks this first
            throw new MigrationException("Enable postcopy with migrate_set_capability before the start of migration");
        }
        Outgoing o = outgoing;
        if (o == null) {
            throw new MigrationException("Postcopy must be started after migration has been started");
        }
        o.startPostcopy();
    }

    /**
     * QMP migrate_cancel: cancels the outgoing migration; a no-op when none runs. Refused once
     * postcopy has started, as newer QEMU refuses it (7.2 did it, leaving the destination paused
     * for good and the source unable to run the guest): a cancel must let the source go on, and
     * the guest now lives on the destination.
     */
    public void cancelCommand() throws MigrationException {
        Outgoing o = outgoing;
        if (o != null && o.status().isPostcopy()) {
            throw new MigrationException("Postcopy migration in progress, cannot cancel.");
        }
        cancel();
    }

    /** Cancels the outgoing migration, whatever its phase; a no-op when none runs. */
    public void cancel() {
        Outgoing o = outgoing;
        if (o != null) {
            o.cancel();
        }
    }

    /**
     * Called without the BQL. Ends whatever migration this machine takes part in and waits up to
     * {@code millis} for each of its threads: the outgoing one is cancelled, the incoming one
     * yanked (a paused postcopy stops waiting for its recovery). Closing the machine does this
     * first (a closed machine's RAM is gone under any thread still migrating it). The threads may
     * need the lock to finish.
     */
    public void stop(long millis) throws InterruptedException {
        machine.bql().assertNotHeld();
        end();
        Outgoing o = outgoing;
        if (o != null) {
            o.join(millis);
        }
        Incoming i = incoming;
        if (i != null) {
            i.join(millis);
        }
    }

    /** Tells both migrations to end: the outgoing one cancelled, the incoming one abandoned. Any thread. */
    private void end() {
        ColoSide c = colo();
        if (c != null) {
            c.abandon();
        }
        cancel();
        Incoming i = incoming;
        if (i != null) {
            i.abandon();
        }
    }

    /**
     * TLS runs over sockets. QEMU 7.2 runs it over exec: too, whose command carries both
     * directions there; livemig's exec: carries one, and a file: (which QEMU 7.2 lacks) would
     * hold the stream in clear, so both are refused with TLS set.
     */
    private void checkTls(MigrationAddress addr) throws MigrationException {
        if (parameters.tlsCreds.isEmpty()) {
            return;
        }
        if (addr instanceof MigrationAddress.File) {
            throw new MigrationException("TLS (tls-creds) cannot be used with a file: migration: set tls-creds to \"\" or use tcp: or unix:");
        }
        if (addr instanceof MigrationAddress.Exec) {
            throw new MigrationException("TLS (tls-creds) over exec: needs a command that carries both directions, and livemig's"
                    + " exec: carries one: set tls-creds to \"\" or use tcp: or unix:");
        }
    }

    /**
     * The TLS of a migration starting now, from tls-creds, tls-hostname and tls-authz. As in
     * QEMU, credentials that cannot be used do not refuse the command: the migration fails at
     * its first connection, with QEMU's error ("No TLS credentials with id ...").
     */
    private ChannelSecurity channelSecurity(TlsEndpoint endpoint, java.util.function.BooleanSupplier inUse) {
        MigrationParameters p = parameters;
        try {
            return objects.tls(p.tlsCreds, p.tlsHostname, p.tlsAuthz, endpoint, TlsChannelSecurity.DEFAULT_HANDSHAKE_TIMEOUT, inUse);
        } catch (ObjectException e) {
            String why = e.getMessage();
            return new ChannelSecurity() {
                @Override
                public MigrationConnection client(MigrationConnection plain, MigrationAddress to) throws IOException {
                    plain.close();
                    throw new TlsHandshakeException(TlsHandshakeException.Reason.CONFIGURATION, why, null);
                }

                @Override
                public MigrationConnection server(MigrationConnection accepted) throws IOException {
                    accepted.close();
                    throw new TlsHandshakeException(TlsHandshakeException.Reason.CONFIGURATION, why, null);
                }

                @Override
                public boolean isPlain() {
                    return false;
                }
            };
        }
    }

    private static MigrationAddress parse(String uri) throws MigrationException {
        return parse(uri, false);
    }

    /**
     * A migration URI from a QMP command; where QEMU 7.2 refuses the same URI its words are used
     * (an unknown or missing transport, a tcp: address without a port, a unix: address without a
     * path), livemig's own otherwise. {@code incoming}: QEMU words the unknown transport of
     * migrate-incoming differently from migrate's.
     */
    private static MigrationAddress parse(String uri, boolean incoming) throws MigrationException {
        try {
            return MigrationAddress.parse(uri);
        } catch (IllegalArgumentException e) {
            int colon = uri.indexOf(':');
            String scheme = colon < 0 ? "" : uri.substring(0, colon);
            String rest = colon < 0 ? "" : uri.substring(colon + 1);
            String qemu = switch (scheme) {
                case "tcp" -> rest.isEmpty() || rest.indexOf(':') < 0 ? "error parsing address '" + rest + "'" : null;
                case "unix" -> rest.isEmpty() ? "invalid Unix socket address" : null;
                case "file", "exec", "fd", "rdma", "vsock" -> null;
                default -> incoming ? "unknown migration protocol: " + uri
                        : "Parameter 'uri' expects a valid migration protocol";
            };
            throw new MigrationException(qemu != null ? qemu : e.getMessage());
        }
    }

    /** QMP query-migrate, shaped as QEMU 7.2 returns it. */
    public ObjectNode queryMigrate() {
        JsonNodeFactory nf = JsonNodeFactory.instance;
        ObjectNode r = nf.objectNode();
        Outgoing o = outgoing;
        Incoming i = incoming;
        if (o != null) {
            MigrationStatus s = o.status();
            r.put("status", s.qemuName());
            if (s == MigrationStatus.SETUP) {
                return r;
            }
            r.put("total-time", o.totalTimeMillis());
            if (o.setupTimeMillis() >= 0) {
                r.put("setup-time", o.setupTimeMillis());
            }
            if (s == MigrationStatus.COMPLETED) {
                r.put("downtime", o.downtimeMillis());
            } else if (s.isActive() && o.expectedDowntimeMillis() >= 0) {
                r.put("expected-downtime", o.expectedDowntimeMillis());
            }
            r.set("ram", ramInfo(o.ramStats(), o.parameters()));
            if (capabilities.contains(Capability.XBZRLE)) {
                r.set("xbzrle-cache", xbzrleInfo(o.ramStats().xbzrle, parameters.xbzrleCacheSize));
            }
            if (capabilities.contains(Capability.COMPRESS)) {
                r.set("compression", compressionInfo(o.ramStats().compression));
            }
            if (o.throttlePercent() > 0) {
                r.put("cpu-throttle-percentage", o.throttlePercent());
            }
            if (s == MigrationStatus.FAILED && o.error() != null) {
                r.put("error-desc", o.error());
            }
            var tracker = o.writeTracker();
            if (tracker != null) {
                // livemig's own (x- as QEMU marks experimental members): how guest writes fared
                ObjectNode b = r.putObject("x-background-snapshot");
                b.put("write-tracking", tracker.name());
                b.put("waits", tracker.waits());
                b.put("longest-wait-ms", tracker.longestWaitNanos() / 1e6);
                b.put("total-wait-ms", tracker.totalWaitNanos() / 1e6);
            }
            String ack = o.switchoverAckState();
            if (ack != null) {
                // livemig's own (x- as QEMU marks experimental members): QEMU shows no such state
                r.put("x-switchover-ack", ack);
            }
            var devices = iterativeDevices();
            if (devices != null) {
                r.set("x-iterative-devices", devices);
            }
            var colo = o.colo();
            if (colo != null) {
                // livemig's own (x- as QEMU marks experimental members): the primary's checkpoints
                var st = colo.stats();
                ObjectNode c = r.putObject("x-colo");
                c.put("checkpoints", st.checkpoints());
                c.put("last-checkpoint-size", st.lastBytes());
                c.put("last-checkpoint-pause-ms", st.lastPauseNanos() < 0 ? -1 : st.lastPauseNanos() / 1e6);
                c.put("pause-p50-ms", st.checkpoints() == 0 ? -1 : st.pauseQuantileNanos(0.5) / 1e6);
                c.put("pause-p99-ms", st.checkpoints() == 0 ? -1 : st.pauseQuantileNanos(0.99) / 1e6);
                c.put("transferred", st.totalBytes());
            }
        } else if (i != null) {
            MigrationStatus s = i.status();
            r.put("status", s.qemuName());
            if (i.postcopyBackendName() != null) {
                // livemig's own key (x- as QEMU marks experimental ones): the demand-paging backend in use
                r.put("x-postcopy-backend", i.postcopyBackendName());
            }
            if (s == MigrationStatus.FAILED && i.error() != null) {
                r.put("error-desc", i.error());
            }
            if (capabilities.contains(Capability.SWITCHOVER_ACK)) {
                r.put("x-switchover-ack", i.switchoverAckSent() ? "sent" : "pending");
            }
        }
        return r;
    }

    /** Each accelerator's share of the migration (pending and sent bytes), or null without any. */
    private tools.jackson.databind.node.ArrayNode iterativeDevices() {
        var list = machine.devices().accelerators();
        if (list.isEmpty()) {
            return null;
        }
        tools.jackson.databind.node.ArrayNode a = JsonNodeFactory.instance.arrayNode();
        for (var acc : list) {
            AcceleratorHandlers h = AcceleratorHandlers.of(machine, acc.name());
            ObjectNode d = a.addObject();
            d.put("name", acc.name());
            d.put("idstr", acc.idstr());
            d.put("size", acc.spec().size());
            d.put("pending", h == null ? 0 : h.pendingBytes());
            d.put("transferred", h == null ? 0 : h.transferredBytes());
            d.put("final-state-over-multifd", h != null && h.finalStateOverMultifd());
        }
        return a;
    }

    /** QEMU's XBZRLECacheStats. */
    private static ObjectNode xbzrleInfo(org.livemig.migration.ram.XbzrleStats x, long cacheSize) {
        ObjectNode o = JsonNodeFactory.instance.objectNode();
        o.put("cache-size", cacheSize);
        o.put("bytes", x.bytes.get());
        o.put("pages", x.pages.get());
        o.put("cache-miss", x.cacheMiss.get());
        o.put("cache-miss-rate", x.cacheMissRate);
        o.put("encoding-rate", x.encodingRate);
        o.put("overflow", x.overflow.get());
        return o;
    }

    /** QEMU's CompressionStats. */
    private static ObjectNode compressionInfo(org.livemig.migration.ram.CompressionStats c) {
        ObjectNode o = JsonNodeFactory.instance.objectNode();
        o.put("pages", c.pages.get());
        o.put("busy", c.busy.get());
        o.put("busy-rate", c.busyRate);
        o.put("compressed-size", c.compressedSize.get());
        o.put("compression-rate", c.compressionRate);
        return o;
    }

    private static ObjectNode ramInfo(RamStats st, MigrationParameters p) {
        ObjectNode ram = JsonNodeFactory.instance.objectNode();
        long normal = st.normalPages.get();
        ram.put("transferred", st.transferred.get());
        ram.put("remaining", st.remainingBytes);
        ram.put("total", st.totalBytes);
        ram.put("duplicate", st.zeroPages.get());
        ram.put("skipped", 0);
        ram.put("normal", normal);
        ram.put("normal-bytes", normal * org.livemig.memory.RamBlock.PAGE_SIZE);
        ram.put("dirty-pages-rate", st.dirtyPagesRate);
        ram.put("mbps", st.mbps);
        ram.put("dirty-sync-count", st.dirtySyncCount.get());
        ram.put("postcopy-requests", st.postcopyRequests.get());
        ram.put("page-size", org.livemig.memory.RamBlock.PAGE_SIZE);
        ram.put("multifd-bytes", st.multifdBytes.get());
        ram.put("pages-per-second", st.pagesPerSecond);
        ram.put("precopy-bytes", st.precopyBytes.get());
        ram.put("downtime-bytes", st.downtimeBytes.get());
        ram.put("postcopy-bytes", st.postcopyBytes.get());
        ram.put("dirty-sync-missed-zero-copy", 0);
        return ram;
    }
}
