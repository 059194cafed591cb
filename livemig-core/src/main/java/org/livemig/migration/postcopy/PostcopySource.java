package org.livemig.migration.postcopy;

import java.io.IOException;
import java.lang.System.Logger.Level;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.ReentrantLock;
import org.livemig.machine.Machine;
import org.livemig.machine.RunState;
import org.livemig.memory.RamBlock;
import org.livemig.migration.MigrationStatus;
import org.livemig.migration.RamHandlers;
import org.livemig.migration.RamSaver;
import org.livemig.migration.ReturnPathReader;
import org.livemig.migration.SaveVm;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.PackagedCommand;
import org.livemig.stream.PostcopyRamDiscardCommand;
import org.livemig.stream.QemuStream;
import org.livemig.stream.RamPageRecord;
import org.livemig.transport.FaultSpec;
import org.livemig.transport.MigrationAddress;
import org.livemig.transport.MigrationConnection;
import org.livemig.vmstate.SaveStateEntry;

/**
 * The source's postcopy (QEMU's postcopy_start and the postcopy-active iterations), on
 * {@code mig/src/main} once {@code migrate-start-postcopy} asked for it: the switch (guest stopped,
 * DISCARD of what the destination must not keep, the package of device state and RUN), then pages
 * the destination asks for ahead of the rest, until END. With postcopy-preempt the requested pages
 * go on a connection of their own, sent by {@code mig/src/rp_thr} the moment it reads the request.
 * A broken channel pauses the migration until {@link OutgoingRecovery} has new ones.
 *
 * <p>Fields are owned by the migration thread unless volatile; the preempt channel is shared with
 * {@code mig/src/rp_thr} under {@link #preemptLock}.
 */
public final class PostcopySource {
    private static final System.Logger LOG = System.getLogger(PostcopySource.class.getName());
    /** Pages sent per PART section while postcopy runs, between checks of the request queue. */
    private static final int POSTCOPY_BATCH = 64;
    /** Requested pages per section of their own (without preempt); fits MigrationFile's room for urgent bytes. */
    private static final int URGENT_BATCH = 16;
    private static final long SHUT_TIMEOUT_MILLIS = 60_000;

    private final OutgoingHost host;
    private final Machine machine;
    private final RamSaver saver;
    private final OutgoingRecovery recovery;
    /** Set once the package went out: the destination may run the guest from then on. */
    private volatile boolean packageSent;
    /** Bytes sent on channels lost before the current one (query-migrate's transferred). */
    private long streamBase;

    /** Serialises writers of the preempt channel: {@code mig/src/rp_thr} and, at its end, this thread. */
    private final ReentrantLock preemptLock = new ReentrantLock();
    /** The preempt channel while requested pages may go out on it; guarded by {@link #preemptLock}. */
    private MigrationFile preemptFile;
    private volatile MigrationConnection preemptConnection;

    public PostcopySource(OutgoingHost host, RamSaver saver) {
        this.host = host;
        this.machine = host.machine();
        this.saver = saver;
        this.recovery = new OutgoingRecovery(host, this, saver);
    }

    /** Pause and resume of this postcopy (migrate-pause, migrate with resume=true). */
    public OutgoingRecovery recovery() {
        return recovery;
    }

    /** True once the package went out: from then on the source must never run the guest again. Any thread. */
    public boolean packageSent() {
        return packageSent;
    }

    /** Whether the postcopy-preempt connection is made (tests). */
    public boolean hasPreemptConnection() {
        return preemptConnection != null;
    }

    /**
     * Called without the BQL; blocks on IO (it takes the lock itself to stop the guest): the
     * switch and the rest of the migration on main channel {@code f}. Returns whether the guest
     * was running before the switch; the status is postcopy-active, to be completed by the caller.
     */
    public boolean run(MigrationFile f) throws IOException, InterruptedException {
        machine.bql().assertNotHeld();
        // postcopy-preempt: a second connection for the pages vCPUs wait for, so that they never
        // queue behind background pages in the main stream. Made while the guest still runs:
        // connecting took 2-8 ms of the switch's pause here (QEMU too connects it before the
        // switch). The destination takes it whenever it comes; nothing goes on it before the
        // first page request, which only a destination in postcopy sends.
        MigrationFile preempt = host.preempt() ? openPreemptChannel(host.address(), FaultSpec.NONE) : null;
        long stopAt = System.nanoTime();
        boolean running = machine.bql().callWithHeld(false, () -> {
            boolean r = machine.runState().isRunning();
            machine.vmStop(RunState.FINISH_MIGRATE);
            return r;
        });
        if (!host.status().transition(MigrationStatus.ACTIVE, MigrationStatus.POSTCOPY_ACTIVE)) {
            throw new IOException("cancelled");
        }
        f.setRateLimit(0);
        long stopped = System.nanoTime();
        // The last sync: from here on the to-send bitmaps are exactly what the destination lacks.
        machine.bql().callWithHeld(false, saver::syncDirtyBitmap);
        saver.enterPostcopy();
        long synced = System.nanoTime();
        sendDiscards(f);
        long discarded = System.nanoTime();
        host.ping(f, 2);
        sendPackage(f);
        long packaged = System.nanoTime();
        // The rest of postcopy; a broken channel pauses it (postcopy-paused) until the user
        // resumes it on a new one, since the guest now lives on the destination.
        MigrationFile main = f;
        boolean switching = true;
        while (true) {
            try {
                if (switching) {
                    switching = false;
                    awaitSwitch(f, stopAt, stopped, synced, discarded, packaged);
                }
                iterate(main, preempt);
                break;
            } catch (Unrecoverable e) {
                throw e;
            } catch (IOException e) {
                if (host.cancelled()) {
                    throw e;
                }
                streamBase += main.position();
                MigrationFile[] channels = recovery.pauseUntilRecovered(describe(e));
                main = channels[0];
                preempt = channels[1];
            }
        }
        return running;
    }

    /** POSTCOPY_RAM_DISCARD for every block: the pages not sent since their last change. */
    private void sendDiscards(MigrationFile f) throws IOException {
        for (RamBlock b : machine.ram().blocks()) {
            List<PostcopyRamDiscardCommand.Range> ranges = new ArrayList<>();
            for (long[] run : saver.unsentRuns(b)) {
                ranges.add(new PostcopyRamDiscardCommand.Range(run[0] << RamBlock.PAGE_BITS, run[1] << RamBlock.PAGE_BITS));
            }
            for (PostcopyRamDiscardCommand cmd : PostcopyRamDiscardCommand.batches(b.name(), ranges)) {
                cmd.write(f);
            }
        }
    }

    /** The package: LISTEN, the device state (read under the BQL), PING 3, RUN. */
    private void sendPackage(MigrationFile f) throws IOException {
        MigrationFile pkg = MigrationFile.toMemory();
        SaveVm.writeCommand(pkg, QemuStream.CMD_POSTCOPY_LISTEN, new byte[0]);
        byte[] devices = machine.bql().callWithHeld(false, () -> {
            machine.cpuSynchronizeAllStates();
            return SaveVm.encodeDevices(machine, null);
        });
        pkg.putBytes(devices);
        host.ping(pkg, 3);
        SaveVm.writeCommand(pkg, QemuStream.CMD_POSTCOPY_RUN, new byte[0]);
        PackagedCommand.write(f, pkg.toByteArray());
        packageSent = true;
    }

    /**
     * The switch-over pause: from the guest stopped here until the destination has loaded the
     * devices and runs the guest (its answer to PING 3, which sits just before RUN in the package).
     */
    private void awaitSwitch(MigrationFile f, long stopAt, long stopped, long synced, long discarded, long packaged)
            throws IOException {
        host.ping(f, 4);
        f.flush();
        long flushed = System.nanoTime();
        long pong3 = host.returnPath().awaitPong(3, SHUT_TIMEOUT_MILLIS);
        long end = pong3 > 0 ? pong3 : System.nanoTime();
        long millis = TimeUnit.NANOSECONDS.toMillis(end - stopAt);
        host.switchedOver(millis);
        LOG.log(host.accountLevel(), String.format("postcopy switch: guest paused %d ms = stop %.1f + sync %.1f + discard %.1f"
                + " + devices/package %.1f + flush %.1f + destination loads and answers %.1f ms",
                millis, (stopped - stopAt) / 1e6, (synced - stopped) / 1e6, (discarded - synced) / 1e6,
                (packaged - discarded) / 1e6, (flushed - packaged) / 1e6, (end - flushed) / 1e6));
    }

    /** A postcopy failure that a new channel cannot mend (the destination failed, or asked nonsense). */
    private static final class Unrecoverable extends IOException {
        Unrecoverable(String message, Throwable cause) {
            super(message, cause);
        }
    }

    /**
     * Postcopy-active on one set of channels: requested pages first, the rest in the background
     * under max-postcopy-bandwidth (a requested page is never held back by it), then END, EOF
     * and the destination's SHUT.
     */
    private void iterate(MigrationFile f, MigrationFile preempt) throws IOException {
        SaveStateEntry ramEntry = RamHandlers.entry(machine);
        ReturnPathReader returnPath = host.returnPath();
        while (true) {
            if (host.status().get() != MigrationStatus.POSTCOPY_ACTIVE) {
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
            host.applyRateLimit(f, true);
            boolean throttled = f.rateLimitExceeded();
            ReturnPathReader.PageRequest first = preempt == null ? returnPath.pollRequest() : null;
            if (first != null) {
                sendRequested(f, ramEntry, first, returnPath);
                continue;
            }
            if (throttled) {
                // Nothing asked for and the background budget spent: wait for a request (at
                // most until the next window; every 100 us at least, to see new requests).
                host.waitOutRateWindow(f, 100_000);
                continue;
            }
            if (preempt == null) {
                // Each background section names its block first, so that a requested page's
                // section can go out ahead of every whole section still in our buffer.
                f.markUnitStart();
                saver.nameNextBlock();
            }
            SaveVm.writeShortHeader(f, QemuStream.SECTION_PART, ramEntry);
            ReturnPathReader.PageRequest requested = null;
            for (int i = 0; requested == null && i < POSTCOPY_BATCH; i++) {
                if (saver.sendBackgroundPages(f, 1) == 0) {
                    break;
                }
                requested = preempt == null ? returnPath.pollRequest() : null;
            }
            RamPageRecord.writeEos(f);
            SaveVm.writeFooter(f, ramEntry);
            if (requested != null) {
                sendRequested(f, ramEntry, requested, returnPath);
            }
            // Give way to mig/src/rp_thr, which sends what vCPUs wait for (see
            // PostcopyIncoming.LISTEN_GIVE_WAY_PAGES): one yield per section of at most 256 KiB.
            Thread.yield();
            host.ram().transferred.set(streamBase + f.position());
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
        host.ram().transferred.set(streamBase + f.position());
        int shutStatus = returnPath.awaitShut(SHUT_TIMEOUT_MILLIS);
        if (shutStatus != 0) {
            throw new Unrecoverable("destination failed to finish postcopy (SHUT " + shutStatus + ")", null);
        }
    }

    /**
     * Without postcopy-preempt: the requested pages ({@code first} and what else is queued), in
     * a section of their own that goes out ahead of the background sections still in our write
     * buffer, at once: a vCPU waits for them. A page sent earlier that may still sit in that
     * buffer (or in the socket's) is sent again; the destination keeps the first copy it gets.
     */
    private void sendRequested(MigrationFile f, SaveStateEntry ramEntry, ReturnPathReader.PageRequest first,
            ReturnPathReader returnPath) throws IOException {
        f.beginUrgent();
        saver.nameNextBlock();
        SaveVm.writeShortHeader(f, QemuStream.SECTION_PART, ramEntry);
        ReturnPathReader.PageRequest r = first;
        int n = 0;
        do {
            host.ram().postcopyRequests.incrementAndGet();
            if (!saver.sendRequestedPage(f, r.block(), r.page())) {
                saver.resendPage(f, r.block(), r.page());
            }
        } while (++n < URGENT_BATCH && (r = returnPath.pollRequest()) != null);
        RamPageRecord.writeEos(f);
        SaveVm.writeFooter(f, ramEntry);
        f.endUrgent();
        saver.nameNextBlock();
        f.flush();
    }

    /**
     * Called without the BQL; blocks on IO: connects the preempt channel to {@code address} and
     * hands it to {@code mig/src/rp_thr}, which from then on sends requested pages on it at once.
     */
    MigrationFile openPreemptChannel(MigrationAddress address, FaultSpec faults) throws IOException {
        machine.bql().assertNotHeld();
        MigrationConnection c = host.connect(address, faults);
        preemptConnection = c;
        MigrationFile p = MigrationFile.forWriting(c.out());
        preemptLock.lock();
        try {
            preemptFile = p;
        } finally {
            preemptLock.unlock();
        }
        host.returnPath().sendDirectly(this::sendOnPreempt);
        return p;
    }

    /**
     * postcopy-preempt (QEMU 7.2's "preempt-full"): sends one requested page on the preempt
     * channel from whichever thread has the request, usually {@code mig/src/rp_thr} the moment
     * it reads it, so that it never waits for the migration thread, busy or blocked on the main
     * stream. Returns false when no preempt channel is open (the request is then queued).
     */
    private boolean sendOnPreempt(RamBlock b, long page) throws IOException {
        preemptLock.lock();
        try {
            MigrationFile p = preemptFile;
            if (p == null) {
                return false;
            }
            host.ram().postcopyRequests.incrementAndGet();
            if (!saver.sendRequestedPage(p, b, page, false)) {
                // Sent on the main channel already, and not yet there: do not wait for its backlog.
                saver.resendPage(p, b, page);
            }
            RamPageRecord.writeEos(p);
            p.flush();
            return true;
        } finally {
            preemptLock.unlock();
        }
    }

    /** Shuts the preempt channel down so that a writer blocked on it lets go. Any thread. */
    public void shutdownPreempt() {
        MigrationConnection c = preemptConnection;
        if (c != null) {
            c.shutdown();
        }
    }

    /** Drops the preempt channel (broken, before a recovery; or at the migration's end). */
    void closePreempt() {
        shutdownPreempt(); // first: a writer blocked on the preempt channel lets go of the lock
        preemptLock.lock();
        try {
            preemptFile = null;
        } finally {
            preemptLock.unlock();
        }
        MigrationConnection c = preemptConnection;
        preemptConnection = null;
        if (c != null) {
            try {
                c.close();
            } catch (IOException e) {
                LOG.log(Level.DEBUG, "closing a broken preempt channel", e);
            }
        }
    }

    /** Releases the preempt channel at the end of the migration, however it ended. */
    public void close() {
        closePreempt();
    }

    static String describe(Throwable e) {
        String m = e.getMessage();
        return m == null ? e.getClass().getSimpleName() : m;
    }
}
