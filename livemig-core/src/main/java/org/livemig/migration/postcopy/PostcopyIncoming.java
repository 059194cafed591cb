package org.livemig.migration.postcopy;

import java.io.IOException;
import java.lang.System.Logger.Level;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.LongAdder;
import org.livemig.machine.Machine;
import org.livemig.memory.RamBlock;
import org.livemig.memory.postcopy.PageFault;
import org.livemig.memory.postcopy.PostcopyBackend;
import org.livemig.migration.IncomingReturnPath;
import org.livemig.migration.LoadVm;
import org.livemig.migration.MigrationStatus;
import org.livemig.migration.RamLoader;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.PostcopyAdviseCommand;
import org.livemig.stream.PostcopyRamDiscardCommand;
import org.livemig.stream.RecvBitmapCommand;
import org.livemig.stream.StreamFormatException;
import org.livemig.trace.Trace;
import org.livemig.transport.MigrationConnection;

/**
 * The destination's postcopy (QEMU's postcopy-ram.c, incoming side): ADVISE creates the demand
 * paging backend, DISCARD drops stale pages, LISTEN starts {@code mig/dst/fault} and
 * {@code mig/dst/listen} (which takes over the main stream from {@code mig/dst/main}), RUN
 * starts the guest from a BH on the main loop. The listen thread finishes the migration.
 */
public final class PostcopyIncoming implements LoadVm.PostcopyHandler {
    private static final System.Logger LOG = System.getLogger(PostcopyIncoming.class.getName());
    public static final String LISTEN_THREAD = "mig/dst/listen";
    public static final String FAULT_THREAD = "mig/dst/fault";
    public static final String PREEMPT_THREAD = "mig/dst/preempt";

    /**
     * {@code mig/dst/listen} yields its CPU after this many pages placed (64 KiB). A requested
     * page passes through three threads that sleep until woken ({@code mig/dst/fault}, the
     * source's {@code mig/src/rp_thr}, {@code mig/dst/preempt}), and the background stream keeps
     * a thread busy on each side. On a kernel built without kernel preemption (PREEMPT_NONE, as
     * here) the busy thread, mostly inside socket reads and writes, is not preempted for one
     * woken on its CPU; measured with perf sched, woken request threads waited up to a 4 ms tick,
     * at any of the three hops (a raised priority or a short EEVDF slice for them did not help).
     * Yielding every 64 KiB here and after every section on the source gives them a way in.
     */
    public static final int LISTEN_GIVE_WAY_PAGES = 16;

    /** QEMU's PostcopyState. */
    enum State { NONE, ADVISE, DISCARD, LISTENING, RUNNING, END }

    private final IncomingHost incoming;
    private final IncomingRecovery recovery;
    private final Machine machine;
    private final RamLoader ram;
    private final String backendChoice;
    private volatile State state = State.NONE;
    private volatile PostcopyBackend backend;
    private volatile Thread listenThread;
    private volatile Thread faultThread;
    private volatile Thread preemptThread;
    private final java.util.concurrent.CountDownLatch listening = new java.util.concurrent.CountDownLatch(1);
    /** Pages requested (with when the fault was seen) and not yet placed; the fault thread's dedup set. */
    private final ConcurrentHashMap<PageKey, Long> requested = new ConcurrentHashMap<>();
    /** At most this many fault-to-placed latencies are kept (8 MiB). */
    private static final int MAX_LATENCIES = 1 << 20;
    /**
     * Fault-to-placed latencies of requested pages, in ns; grows as requests come (most incoming
     * migrations never enter postcopy, and zeroing a full-size array up front cost each of them
     * tens of ms here). Guarded by latencyLock: the listen and preempt threads both place pages.
     */
    private final Object latencyLock = new Object();
    private long[] latencies = new long[0];
    private int latencyCount;

    /** Page requests sent by the faulting guest thread itself, and by {@code mig/dst/fault}. */
    private final LongAdder requestsFromGuestThreads = new LongAdder();
    private final LongAdder requestsFromFaultThread = new LongAdder();

    private record PageKey(RamBlock block, long page) {}

    public PostcopyIncoming(IncomingHost incoming, RamLoader ram, String backendChoice) {
        this.incoming = incoming;
        this.machine = incoming.machine();
        this.recovery = new IncomingRecovery(incoming, this);
        this.ram = ram;
        this.backendChoice = backendChoice;
    }

    State state() {
        return state;
    }

    /** The demand-paging backend, or null before ADVISE. */
    public PostcopyBackend backend() {
        return backend;
    }

    /** migrate-recover, and the pause it ends. */
    public IncomingRecovery recovery() {
        return recovery;
    }

    /** The RAM loader of the main stream (a recovery resets its CONTINUE block). */
    RamLoader loader() {
        return ram;
    }

    @Override
    public void advise(PostcopyAdviseCommand advise, long at) throws IOException {
        if (state != State.NONE) {
            throw new StreamFormatException("POSTCOPY_ADVISE in postcopy state " + state, at);
        }
        if (advise.hasPageSizes() && (advise.targetPageSize() != RamBlock.PAGE_SIZE
                || advise.pageSizeSummary() != RamBlock.PAGE_SIZE)) {
            throw new StreamFormatException(String.format("postcopy page sizes differ: source 0x%x/0x%x, here 0x%x",
                    advise.pageSizeSummary(), advise.targetPageSize(), RamBlock.PAGE_SIZE), at);
        }
        backend = switch (backendChoice) {
            case "checked" -> PostcopyBackend.checked(machine.ram());
            case "userfaultfd" -> PostcopyBackend.userfaultfd(machine.ram());
            default -> PostcopyBackend.choose(machine.ram(), msg -> LOG.log(Level.INFO, msg));
        };
        ram.advise(backend);
        state = State.ADVISE;
    }

    @Override
    public void discard(PostcopyRamDiscardCommand discard, long at) throws IOException {
        if (state != State.ADVISE && state != State.DISCARD) {
            throw new StreamFormatException("POSTCOPY_RAM_DISCARD in postcopy state " + state, at);
        }
        RamBlock b = machine.ram().block(discard.block());
        if (b == null) {
            throw new StreamFormatException("POSTCOPY_RAM_DISCARD for unknown RAM block '" + discard.block() + "'", at);
        }
        for (PostcopyRamDiscardCommand.Range r : discard.ranges()) {
            if (!r.isWithin(b.usedLength(), RamBlock.PAGE_SIZE)) {
                throw new StreamFormatException(String.format("discard range 0x%x+0x%x outside RAM block '%s' of 0x%x",
                        r.start(), r.length(), b.name(), b.usedLength()), at);
            }
            backend.discard(b, r.start(), r.length());
        }
        state = State.DISCARD;
    }

    @Override
    public void listen(LoadVm load, MigrationFile mainStream, long at) throws IOException {
        if (state != State.ADVISE && state != State.DISCARD) {
            throw new StreamFormatException("POSTCOPY_LISTEN in postcopy state " + state, at);
        }
        if (incoming.returnPath() == null) {
            throw new StreamFormatException("POSTCOPY_LISTEN without a return path", at);
        }
        backend.handleFaultsOnGuestThreads(this::requestOnGuestThread);
        backend.startListening();
        ram.setPlacementListener(this::placed);
        ram.giveWayEvery(LISTEN_GIVE_WAY_PAGES);
        ram.startPlacing();
        state = State.LISTENING;
        listening.countDown();
        Thread fault = Thread.ofPlatform().name(FAULT_THREAD).daemon(true).unstarted(this::faultLoop);
        faultThread = fault;
        fault.start();
        Thread listen = Thread.ofPlatform().name(LISTEN_THREAD).daemon(true).unstarted(() -> listenLoop(load, mainStream));
        listenThread = listen;
        listen.start();
    }

    @Override
    public void run(long at) throws IOException {
        if (state != State.LISTENING) {
            throw new StreamFormatException("POSTCOPY_RUN in postcopy state " + state, at);
        }
        state = State.RUNNING;
        incoming.runGuest();
    }

    /** A page was placed: if a vCPU asked for it, record how long that vCPU waited. */
    private void placed(RamBlock b, long page) {
        if (requested.isEmpty()) {
            return;
        }
        Long seen = requested.remove(new PageKey(b, page));
        if (seen != null) {
            long latency = System.nanoTime() - seen;
            if (incoming.traced()) {
                Trace.pageRequest(b.name(), page << RamBlock.PAGE_BITS, latency);
            }
            synchronized (latencyLock) {
                if (latencyCount == latencies.length && latencies.length < MAX_LATENCIES) {
                    latencies = java.util.Arrays.copyOf(latencies, Math.max(1024, latencies.length * 2));
                }
                if (latencyCount < latencies.length) {
                    latencies[latencyCount++] = latency;
                }
            }
        }
    }

    /** Fault-to-placed latencies (ns) of the pages vCPUs asked for, in arrival order. */
    public long[] faultLatencies() {
        synchronized (latencyLock) {
            return java.util.Arrays.copyOf(latencies, latencyCount);
        }
    }

    /**
     * postcopy-preempt: the source's second connection arrived. {@code mig/dst/preempt} places
     * the pages it carries (RAM records, each batch ended by EOS) once postcopy listens.
     */
    public synchronized void preemptConnected(MigrationConnection c) {
        Thread old = preemptThread;
        if (old != null && old.isAlive()) {
            // A recovered postcopy's new channel: the old thread's channel is shut; let it end.
            try {
                old.join(10_000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
        Thread t = Thread.ofPlatform().name(PREEMPT_THREAD).daemon(true).unstarted(() -> preemptLoop(c));
        preemptThread = t;
        t.start();
    }

    private void preemptLoop(MigrationConnection c) {
        incoming.requestThreads().raise();
        try {
            while (!listening.await(100, TimeUnit.MILLISECONDS)) {
                if (incoming.status().get().isFinal()) {
                    return;
                }
            }
            RamLoader loader = new RamLoader(machine.ram(), incoming.ram());
            loader.advise(backend);
            loader.setPlacementListener(this::placed);
            loader.startPlacing();
            MigrationFile f = MigrationFile.forReading(c.in());
            while (!backend.isClosed() && !f.atEof()) {
                loader.load(f, org.livemig.stream.QemuStream.RAM_SECTION_VERSION);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (IOException e) {
            if (!backend.isClosed() && state != State.END) {
                if (state == State.RUNNING) {
                    // A network fault: the listen thread pauses postcopy (shut its channel too,
                    // in case only this one broke); a recovery brings a new preempt channel.
                    LOG.log(Level.WARNING, "postcopy preempt channel broke: " + e.getMessage());
                    incoming.pause();
                } else {
                    LOG.log(Level.WARNING, "postcopy preempt channel failed: " + e.getMessage());
                    incoming.failed("preempt channel: " + e.getMessage());
                }
            }
        } catch (RuntimeException e) {
            if (!backend.isClosed() && state != State.END) {
                LOG.log(Level.WARNING, "postcopy preempt channel failed: " + e);
                incoming.failed("preempt channel: " + e);
            }
        }
    }

    /**
     * {@code mig/dst/fault}: turns guest faults into page requests, each page asked for once
     * (userfaultfd: every fault; checked: those a guest thread did not ask for itself). While
     * postcopy is paused or recovering, faults are only recorded: {@link #resume} asks for every
     * page still missing once the source is back.
     */
    private void faultLoop() {
        incoming.requestThreads().raise();
        List<PageFault> batch = new ArrayList<>();
        try {
            while (!backend.isClosed()) {
                PageFault first = backend.pollFault(100, TimeUnit.MILLISECONDS);
                if (first == null) {
                    continue;
                }
                batch.clear();
                batch.add(first);
                backend.drainFaults(batch, 256);
                for (PageFault pf : batch) {
                    handleFault(pf, requestsFromFaultThread);
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (IOException e) {
            if (!backend.isClosed()) {
                LOG.log(Level.WARNING, "postcopy fault thread: " + e.getMessage());
                incoming.failed("page fault handling failed: " + e.getMessage());
            }
        }
    }

    /**
     * A fault on the guest thread that took it (the checked backend): that thread asks for the
     * page itself, sparing a wakeup of {@code mig/dst/fault} (a hop that, with every core busy,
     * can wait for a scheduler tick; see {@link #LISTEN_GIVE_WAY_PAGES}). Socket IO is never done
     * under the BQL, so a thread holding it (a device touching guest RAM) leaves the fault to
     * {@code mig/dst/fault}; so does an interrupted thread, whose interrupt would close the
     * return path's channel mid-write.
     */
    private boolean requestOnGuestThread(PageFault pf) {
        if (machine.bql().isHeldByCurrentThread() || Thread.currentThread().isInterrupted()) {
            return false;
        }
        handleFault(pf, requestsFromGuestThreads);
        return true;
    }

    /**
     * Asks for a faulted page once, counting the request in {@code sent}: a page already
     * received, or already asked for, is not asked for again.
     */
    private void handleFault(PageFault pf, LongAdder sent) {
        if (backend.receivedMap(pf.block()).isReceived(pf.page())) {
            return;
        }
        // Recorded before the status is read: a resume that starts after this sees the page in
        // its sweep; one that ended before it is seen here.
        if (requested.putIfAbsent(new PageKey(pf.block(), pf.page()), pf.seenNanos()) == null && canRequest()) {
            sent.increment();
            request(pf.block(), pf.page());
        }
    }

    /** Page requests sent for faults so far: {@code [by the faulting guest threads, by mig/dst/fault]}. */
    public long[] faultRequestSenders() {
        return new long[] {requestsFromGuestThreads.sum(), requestsFromFaultThread.sum()};
    }

    private boolean canRequest() {
        MigrationStatus s = incoming.status().get();
        return s == MigrationStatus.ACTIVE || s == MigrationStatus.POSTCOPY_ACTIVE;
    }

    /**
     * Called without the BQL (it writes to the return path): asks the source for one page, from
     * {@code mig/dst/fault} or a faulting guest thread. A broken return path pauses postcopy
     * instead of failing it.
     */
    private void request(RamBlock b, long page) {
        machine.bql().assertNotHeld();
        try {
            incoming.returnPath().requestPages(b.name(), page << RamBlock.PAGE_BITS, RamBlock.PAGE_SIZE);
        } catch (IOException e) {
            // The request stays recorded and is asked for again after the recovery.
            LOG.log(Level.DEBUG, "page request not sent: " + e.getMessage());
            incoming.pause();
        }
    }

    @Override
    public void recvBitmap(RecvBitmapCommand cmd, long at) throws IOException {
        recovery.recvBitmap(cmd, at);
    }

    @Override
    public void resume(long at) throws IOException {
        recovery.resume(at);
    }

    /**
     * After a recovery: asks again for every page a vCPU asked for (or faulted on while paused)
     * that has not arrived. Returns how many requests went out.
     */
    int requestMissingAgain(IncomingReturnPath rp) throws IOException {
        int again = 0;
        for (PageKey k : requested.keySet()) {
            if (!backend.receivedMap(k.block()).isReceived(k.page())) {
                rp.requestPages(k.block().name(), k.page() << RamBlock.PAGE_BITS, RamBlock.PAGE_SIZE);
                again++;
            }
        }
        return again;
    }

    /**
     * {@code mig/dst/listen}: loads the rest of the main stream while the guest runs. A broken
     * channel once the guest runs here pauses postcopy; a recovery hands it a new stream.
     */
    private void listenLoop(LoadVm load, MigrationFile mainStream) {
        MigrationFile f = mainStream;
        try {
            while (true) {
                LoadVm.Result r;
                try {
                    r = load.loadvmStateMain(f, false);
                } catch (IOException e) {
                    if (state != State.RUNNING || backend.isClosed()) {
                        throw e;
                    }
                    MigrationFile next = recovery.pause(e.getMessage() == null ? e.toString() : e.getMessage());
                    if (next == null) {
                        throw e;
                    }
                    f = next;
                    continue;
                }
                if (r != LoadVm.Result.EOF) {
                    throw new StreamFormatException("postcopy stream ended without EOF", f.position());
                }
                break;
            }
            // Pages requested last may still be on the preempt channel: the source closes it
            // before it ends the main stream, so wait for this side to read it to its end.
            Thread pt = preemptThread;
            if (pt != null) {
                pt.join(30_000);
                if (pt.isAlive()) {
                    // Completing now could leave requested pages unplaced: fail, and say why.
                    throw new IOException("postcopy stream ended but " + PREEMPT_THREAD
                            + " was still reading its channel after 30000 ms (the source did not close it)");
                }
            }
            // mig/dst/main may still be applying the package's device state and RUN (this thread
            // started at LISTEN, ahead of them): the migration is complete only once it is done.
            incoming.awaitPackageLoaded(30_000);
            state = State.END;
            backend.close();
            incoming.returnPath().sendShut(0);
            incoming.completed();
        } catch (IOException | RuntimeException | InterruptedException e) {
            String msg = e.getMessage() == null ? e.toString() : e.getMessage();
            LOG.log(Level.WARNING, "postcopy listen thread failed: " + msg);
            try {
                incoming.returnPath().sendShut(1);
            } catch (IOException ignored) {
                // the source is gone
            }
            incoming.failed(msg);
        }
    }

    /** Stops paging and the fault thread (failure or teardown). Any thread. */
    public void shutdown() {
        PostcopyBackend b = backend;
        if (b != null) {
            b.close();
        }
    }

    /** Waits up to {@code millis} for each of the fault, listen and preempt threads to end. */
    public void join(long millis) throws InterruptedException {
        for (Thread t : new Thread[] {faultThread, listenThread, preemptThread}) {
            if (t != null && t != Thread.currentThread()) {
                t.join(millis);
            }
        }
    }
}
