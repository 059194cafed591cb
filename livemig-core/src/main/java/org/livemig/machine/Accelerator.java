package org.livemig.machine;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Locale;
import java.util.Objects;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;
import org.livemig.vmstate.LoadHook;
import org.livemig.vmstate.VMStateDescription;
import org.livemig.vmstate.VmStateException;

/**
 * An accelerator with a large on-board memory that the guest's work writes while it runs: the
 * device with large, changing state that migrates iteratively, as QEMU's VFIO devices (GPUs,
 * smart NICs) do. Its memory is sent in chunks during precopy and its remainder at the
 * switchover ({@code migration.AcceleratorHandlers}); a small register state ({@link #VMSD})
 * goes with the remainder.
 *
 * <p>The device's engine ({@value #ENGINE_THREAD_PREFIX}NAME, a thread standing for the device's
 * DMA as the guest drives it) writes whole {@link #CHUNK_SIZE}-byte chunks at random places at
 * {@code dirty-rate} MiB/s while the guest runs, and marks each chunk dirty after writing it. It
 * stops at every {@code vmStop}, before the machine's state changes, and starts again with the guest.
 *
 * <p>Ownership: the memory and the register state are written by the engine while the guest runs
 * and by the incoming migration while it is stopped; readers that must see a still state stop the
 * guest first. The dirty bitmap is shared (atomic). Neither needs the BQL, as guest RAM does not.
 */
public final class Accelerator implements AutoCloseable {
    /** Tracking and transfer unit. */
    public static final int CHUNK_SIZE = 64 * 1024;
    public static final String ENGINE_THREAD_PREFIX = "accel/";
    /** Suffix of its section's idstr, as VFIO's sections end in "/vfio". */
    public static final String IDSTR_SUFFIX = "/accel";
    private static final long MAX_SIZE = 1L << 40;
    private static final int PATTERN_BYTES = 1 << 20;
    private static final long STOP_TIMEOUT_NANOS = TimeUnit.SECONDS.toNanos(30);

    /**
     * {@code --device NAME,size=SIZE,dirty-rate=MIB_PER_SEC}: a name (letters, digits, '-', '_',
     * '.'), the memory size (a multiple of 64 KiB: 256M, 1G) and how fast the guest's work writes it.
     */
    public record Spec(String name, long size, double dirtyRateMiBps) {
        public Spec {
            Objects.requireNonNull(name, "name");
            if (!name.matches("[A-Za-z0-9_.-]{1,64}")) {
                throw new IllegalArgumentException("device name '" + name
                        + "' must be 1..64 letters, digits, '-', '_' or '.'");
            }
            if (size <= 0 || size % CHUNK_SIZE != 0 || size > MAX_SIZE) {
                throw new IllegalArgumentException("device " + name + ": size " + size
                        + " must be a multiple of 64K, from 64K to 1T");
            }
            if (!(dirtyRateMiBps >= 0) || dirtyRateMiBps > 100_000) {
                throw new IllegalArgumentException("device " + name + ": dirty-rate " + dirtyRateMiBps
                        + " must be 0..100000 MiB/s");
            }
        }

        /** Parses {@code NAME,size=SIZE[,dirty-rate=MIB_PER_SEC]} (dirty-rate 0 by default). */
        public static Spec parse(String text) {
            String[] parts = text.trim().split(",");
            String name = parts[0];
            Long size = null;
            double rate = 0;
            for (int i = 1; i < parts.length; i++) {
                String p = parts[i];
                int eq = p.indexOf('=');
                String key = eq < 0 ? p : p.substring(0, eq);
                String value = eq < 0 ? "" : p.substring(eq + 1);
                switch (key) {
                    case "size" -> size = parseSize(value, text);
                    case "dirty-rate" -> {
                        try {
                            rate = Double.parseDouble(value);
                        } catch (NumberFormatException e) {
                            throw new IllegalArgumentException("--device " + text + ": bad dirty-rate '" + value + "'");
                        }
                    }
                    default -> throw new IllegalArgumentException("--device " + text + ": unknown property '" + key
                            + "' (expected size=SIZE and dirty-rate=MIB_PER_SEC)");
                }
            }
            if (size == null) {
                throw new IllegalArgumentException("--device " + text + ": size=SIZE is missing");
            }
            return new Spec(name, size, rate);
        }

        private static long parseSize(String s, String text) {
            String t = s.trim().toUpperCase(Locale.ROOT);
            long mult = 1;
            if (!t.isEmpty()) {
                switch (t.charAt(t.length() - 1)) {
                    case 'K' -> mult = 1L << 10;
                    case 'M' -> mult = 1L << 20;
                    case 'G' -> mult = 1L << 30;
                    case 'T' -> mult = 1L << 40;
                    default -> { }
                }
            }
            if (mult != 1) {
                t = t.substring(0, t.length() - 1);
            }
            try {
                return Math.multiplyExact(Long.parseLong(t), mult);
            } catch (NumberFormatException | ArithmeticException e) {
                throw new IllegalArgumentException("--device " + text + ": bad size '" + s + "' (expected e.g. 256M)");
            }
        }

        /** The spec as {@link #parse} reads it. */
        @Override
        public String toString() {
            String sz = size % (1L << 30) == 0 ? (size >> 30) + "G" : size % (1L << 20) == 0 ? (size >> 20) + "M"
                    : (size >> 10) + "K";
            String r = dirtyRateMiBps == Math.rint(dirtyRateMiBps) ? Long.toString((long) dirtyRateMiBps)
                    : Double.toString(dirtyRateMiBps);
            return name + ",size=" + sz + ",dirty-rate=" + r;
        }
    }

    /**
     * The register state that goes with the last chunks: how much memory the device has (both
     * sides must agree), its chunk size, and how many chunks its engine has written (a counter a
     * guest driver would read back). Its fields are the device's own (no BQL); its post-load
     * stands for what a real device does on load (mapping its memory region), which needs the lock.
     */
    public static final VMStateDescription<Accelerator> VMSD = VMStateDescription.<Accelerator>builder("accel")
            .version(1)
            .uint64("size", a -> a.spec.size(), (a, v) -> a.loadedSize = v)
            .uint32("chunk_size", a -> CHUNK_SIZE, (a, v) -> a.loadedChunkSize = v)
            .uint64("writes", a -> a.writes, (a, v) -> a.writes = v)
            .postLoad((a, version) -> {
                if (a.loadedSize != a.spec.size() || a.loadedChunkSize != CHUNK_SIZE) {
                    throw new VmStateException(String.format("accel '%s': the source's device has 0x%x bytes in"
                            + " chunks of 0x%x, this one 0x%x in chunks of 0x%x", a.spec.name(), a.loadedSize,
                            a.loadedChunkSize, a.spec.size(), CHUNK_SIZE));
                }
                a.postLoads++;
            })
            .bqlOnlyFor(LoadHook.POST_LOAD)
            .build();

    private final Spec spec;
    private final Machine machine;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment memory;
    /** One bit per chunk, set by the engine after it wrote the chunk. */
    private final AtomicLongArray dirty;
    private final MemorySegment pattern;
    private final long seed;
    /** Chunks the engine has written (register state). Written by the engine, or by a load with the engine stopped. */
    private volatile long writes;
    private long loadedSize;
    private long loadedChunkSize;
    /** Post-loads run (tests). */
    private volatile int postLoads;

    private final ReentrantLock engineLock = new ReentrantLock();
    private final Condition engineChanged = engineLock.newCondition();
    // Guarded by engineLock.
    private boolean run;
    private boolean parked = true;
    private boolean quit;
    private Thread engine;

    Accelerator(Machine machine, Spec spec, long seed) {
        this.machine = machine;
        this.spec = spec;
        this.seed = seed;
        // Mapped as guest RAM is (not counted against the JVM's direct memory limit).
        this.memory = org.livemig.memory.NativeMemory.mapAnonymous(spec.size(), false, arena);
        this.dirty = new AtomicLongArray((int) ((chunks() + 63) / 64));
        this.pattern = org.livemig.memory.NativeMemory.mapAnonymous(PATTERN_BYTES, false, arena);
        SplittableRandom r = new SplittableRandom(seed * 0x9E3779B97F4A7C15L + spec.name().hashCode());
        long n = spec.size() / 8;
        for (long i = 0; i < n; i++) {
            memory.setAtIndex(ValueLayout.JAVA_LONG, i, r.nextLong());
        }
        for (long i = 0; i < PATTERN_BYTES / 8; i++) {
            pattern.setAtIndex(ValueLayout.JAVA_LONG, i, r.nextLong());
        }
    }

    public Spec spec() { return spec; }
    public String name() { return spec.name(); }

    /** The idstr of its section: {@code NAME/accel}. */
    public String idstr() {
        return spec.name() + IDSTR_SUFFIX;
    }

    /** The device's memory. Written without the BQL, as guest RAM is. */
    public MemorySegment memory() {
        return memory;
    }

    public long chunks() {
        return spec.size() / CHUNK_SIZE;
    }

    /** Chunks the engine has written so far. */
    public long writes() {
        return writes;
    }

    /** Post-loads that ran here (tests). */
    public int postLoads() {
        return postLoads;
    }

    /**
     * Takes the chunks written since the last call into {@code into} (OR), clearing them here;
     * returns how many were newly set there. Any thread; a chunk written while this runs is
     * either taken now or left for the next call.
     */
    public long harvestDirty(java.util.BitSet into) {
        long added = 0;
        for (int w = 0; w < dirty.length(); w++) {
            long bits = dirty.getAndSet(w, 0);
            while (bits != 0) {
                int b = Long.numberOfTrailingZeros(bits);
                bits &= bits - 1;
                int chunk = w * 64 + b;
                if (!into.get(chunk)) {
                    into.set(chunk);
                    added++;
                }
            }
        }
        return added;
    }

    /** Forgets what was written so far (a migration starts; it sends everything once anyway). */
    public void clearDirty() {
        for (int w = 0; w < dirty.length(); w++) {
            dirty.set(w, 0);
        }
    }

    /** Called with the BQL held, by {@code vmStop}: stops the engine and waits until it has finished its current write. */
    void pauseEngine() {
        machine.bql().assertHeld();
        engineLock.lock();
        try {
            run = false;
            engineChanged.signalAll();
            long deadline = System.nanoTime() + STOP_TIMEOUT_NANOS;
            while (engine != null && engine.isAlive() && !parked) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    throw new IllegalStateException("accelerator " + spec.name() + ": engine did not stop within 30 s");
                }
                engineChanged.awaitNanos(left);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted stopping accelerator " + spec.name(), e);
        } finally {
            engineLock.unlock();
        }
    }

    /** Called with the BQL held, by {@code vmStart}: the engine writes again (started on first use). */
    void resumeEngine() {
        machine.bql().assertHeld();
        if (spec.dirtyRateMiBps() <= 0) {
            return;
        }
        engineLock.lock();
        try {
            if (quit) {
                return;
            }
            run = true;
            if (engine == null) {
                engine = Thread.ofPlatform().name(ENGINE_THREAD_PREFIX + spec.name()).daemon(true).start(this::runEngine);
            }
            engineChanged.signalAll();
        } finally {
            engineLock.unlock();
        }
    }

    /** The engine: whole chunks at the dirty rate while the guest runs. */
    private void runEngine() {
        SplittableRandom r = new SplittableRandom(seed ^ 0x5DEECE66DL ^ writes);
        double chunksPerSec = spec.dirtyRateMiBps() * (1 << 20) / CHUNK_SIZE;
        long chunkCount = chunks();
        long start = 0;
        long done = 0;
        while (true) {
            engineLock.lock();
            try {
                if (!run || quit) {
                    parked = true;
                    engineChanged.signalAll();
                    while (!run && !quit) {
                        engineChanged.awaitUninterruptibly();
                    }
                    if (quit) {
                        return;
                    }
                    parked = false;
                    start = 0; // no catching up on the time spent stopped
                }
            } finally {
                engineLock.unlock();
            }
            long now = System.nanoTime();
            if (start == 0) {
                start = now;
                done = 0;
            }
            double allowed = (now - start) / 1e9 * chunksPerSec;
            if (done >= allowed) {
                LockSupport.parkNanos(Math.min(1_000_000, (long) ((done - allowed + 1) / chunksPerSec * 1e9)));
                continue;
            }
            writeChunk(r.nextLong(chunkCount));
            done++;
        }
    }

    private void writeChunk(long chunk) {
        long w = writes + 1;
        long off = chunk * CHUNK_SIZE;
        long from = (w * 4096) % (PATTERN_BYTES - CHUNK_SIZE);
        MemorySegment.copy(pattern, from, memory, off, CHUNK_SIZE);
        memory.set(ValueLayout.JAVA_LONG_UNALIGNED, off, w);
        memory.set(ValueLayout.JAVA_LONG_UNALIGNED, off + 8, chunk);
        writes = w;
        // After the write: a sender that cleared the bit before reading sees these bytes or sends them again.
        dirty.getAndAccumulate((int) (chunk >>> 6), 1L << (chunk & 63), (a, b) -> a | b);
    }

    /** Stops the engine for good and frees the memory. */
    @Override
    public void close() {
        Thread t;
        engineLock.lock();
        try {
            quit = true;
            run = false;
            engineChanged.signalAll();
            t = engine;
        } finally {
            engineLock.unlock();
        }
        if (t != null) {
            try {
                t.join(5_000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        if (t == null || !t.isAlive()) {
            arena.close();
        }
    }
}
