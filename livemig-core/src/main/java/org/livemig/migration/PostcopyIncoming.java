package org.livemig.migration;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.logging.Level;
import java.util.logging.Logger;
import org.livemig.machine.Machine;
import org.livemig.memory.PageFault;
import org.livemig.memory.PostcopyBackend;
import org.livemig.memory.RamBlock;
import org.livemig.stream.MigrationFile;
import org.livemig.transport.MigrationConnection;
import org.livemig.stream.PostcopyAdviseCommand;
import org.livemig.stream.PostcopyRamDiscardCommand;
import org.livemig.stream.StreamFormatException;

/**
 * The destination's postcopy (QEMU's postcopy-ram.c, incoming side): ADVISE creates the demand
 * paging backend, DISCARD drops stale pages, LISTEN starts {@code mig/dst/fault} and
 * {@code mig/dst/listen} (which takes over the main stream from {@code mig/dst/main}), RUN
 * starts the guest from a BH on the main loop. The listen thread finishes the migration.
 */
final class PostcopyIncoming implements LoadVm.PostcopyHandler {
    private static final Logger LOG = Logger.getLogger(PostcopyIncoming.class.getName());
    public static final String LISTEN_THREAD = "mig/dst/listen";
    public static final String FAULT_THREAD = "mig/dst/fault";
    public static final String PREEMPT_THREAD = "mig/dst/preempt";

    /** QEMU's PostcopyState. */
    enum State { NONE, ADVISE, DISCARD, LISTENING, RUNNING, END }

    private final Incoming incoming;
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
    /** Fault-to-placed latencies of requested pages, in ns (bounded). */
    private final long[] latencies = new long[1 << 20];
    private final java.util.concurrent.atomic.AtomicInteger latencyCount = new java.util.concurrent.atomic.AtomicInteger();

    private record PageKey(RamBlock block, long page) {}

    PostcopyIncoming(Incoming incoming, Machine machine, RamLoader ram, String backendChoice) {
        this.incoming = incoming;
        this.machine = machine;
        this.ram = ram;
        this.backendChoice = backendChoice;
    }

    State state() {
        return state;
    }

    PostcopyBackend backend() {
        return backend;
    }

    Thread listenThread() {
        return listenThread;
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
            default -> PostcopyBackend.choose(machine.ram(), msg -> LOG.info(msg));
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
        IncomingReturnPath rp = incoming.returnPath();
        if (rp == null) {
            throw new StreamFormatException("POSTCOPY_LISTEN without a return path", at);
        }
        backend.startListening();
        ram.setPlacementListener(this::placed);
        ram.startPlacing();
        state = State.LISTENING;
        listening.countDown();
        Thread fault = Thread.ofPlatform().name(FAULT_THREAD).daemon(true).unstarted(() -> faultLoop(rp));
        faultThread = fault;
        fault.start();
        Thread listen = Thread.ofPlatform().name(LISTEN_THREAD).daemon(true).unstarted(() -> listenLoop(load, mainStream, rp));
        listenThread = listen;
        listen.start();
    }

    @Override
    public void run(long at) throws IOException {
        if (state != State.LISTENING) {
            throw new StreamFormatException("POSTCOPY_RUN in postcopy state " + state, at);
        }
        state = State.RUNNING;
        machine.mainLoop().schedule(incoming::postcopyRunBh);
    }

    /** A page was placed: if a vCPU asked for it, record how long that vCPU waited. */
    private void placed(RamBlock b, long page) {
        if (requested.isEmpty()) {
            return;
        }
        Long seen = requested.remove(new PageKey(b, page));
        if (seen != null) {
            int i = latencyCount.getAndIncrement();
            if (i < latencies.length) {
                latencies[i] = System.nanoTime() - seen;
            }
        }
    }

    /** Fault-to-placed latencies (ns) of the pages vCPUs asked for, in arrival order. */
    long[] faultLatencies() {
        return java.util.Arrays.copyOf(latencies, Math.min(latencyCount.get(), latencies.length));
    }

    /**
     * postcopy-preempt: the source's second connection arrived. {@code mig/dst/preempt} places
     * the pages it carries (RAM records, each batch ended by EOS) once postcopy listens.
     */
    synchronized void preemptConnected(MigrationConnection c) {
        if (preemptThread != null) {
            return;
        }
        Thread t = Thread.ofPlatform().name(PREEMPT_THREAD).daemon(true).unstarted(() -> preemptLoop(c));
        preemptThread = t;
        t.start();
    }

    private void preemptLoop(MigrationConnection c) {
        try {
            while (!listening.await(100, TimeUnit.MILLISECONDS)) {
                if (incoming.status().isFinal()) {
                    return;
                }
            }
            RamLoader loader = new RamLoader(machine.ram(), incoming.ramStats());
            loader.advise(backend);
            loader.setPlacementListener(this::placed);
            loader.startPlacing();
            MigrationFile f = MigrationFile.forReading(c.in());
            while (!backend.isClosed() && !f.atEof()) {
                loader.load(f, org.livemig.stream.QemuStream.RAM_SECTION_VERSION);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (IOException | RuntimeException e) {
            if (!backend.isClosed() && state != State.END) {
                LOG.log(Level.WARNING, "postcopy preempt channel failed: " + e.getMessage());
                incoming.postcopyFailed("preempt channel: " + e.getMessage());
            }
        }
    }

    /** {@code mig/dst/fault}: turns guest faults into page requests, each page asked for once. */
    private void faultLoop(IncomingReturnPath rp) {
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
                    if (backend.receivedMap(pf.block()).isReceived(pf.page())) {
                        continue;
                    }
                    if (requested.putIfAbsent(new PageKey(pf.block(), pf.page()), pf.seenNanos()) == null) {
                        rp.requestPages(pf.block().name(), pf.offset(), RamBlock.PAGE_SIZE);
                    }
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (IOException e) {
            if (!backend.isClosed()) {
                LOG.log(Level.WARNING, "postcopy fault thread: " + e.getMessage());
                incoming.postcopyFailed("page request failed: " + e.getMessage());
            }
        }
    }

    /** {@code mig/dst/listen}: loads the rest of the main stream while the guest runs. */
    private void listenLoop(LoadVm load, MigrationFile mainStream, IncomingReturnPath rp) {
        try {
            LoadVm.Result r = load.loadvmStateMain(mainStream, false);
            if (r != LoadVm.Result.EOF) {
                throw new StreamFormatException("postcopy stream ended without EOF", mainStream.position());
            }
            // Pages requested last may still be on the preempt channel: the source closes it
            // before it ends the main stream, so wait for this side to read it to its end.
            Thread pt = preemptThread;
            if (pt != null) {
                pt.join(30_000);
            }
            state = State.END;
            backend.close();
            rp.sendShut(0);
            incoming.postcopyCompleted();
        } catch (IOException | RuntimeException | InterruptedException e) {
            String msg = e.getMessage() == null ? e.toString() : e.getMessage();
            LOG.log(Level.WARNING, "postcopy listen thread failed: " + msg);
            try {
                rp.sendShut(1);
            } catch (IOException ignored) {
                // the source is gone
            }
            incoming.postcopyFailed(msg);
        }
    }

    /** Stops paging and the fault thread (failure or teardown). */
    void shutdown() {
        PostcopyBackend b = backend;
        if (b != null) {
            b.close();
        }
    }

    void join(long millis) throws InterruptedException {
        for (Thread t : new Thread[] {faultThread, listenThread, preemptThread}) {
            if (t != null && t != Thread.currentThread()) {
                t.join(millis);
            }
        }
    }
}
