package org.livemig.memory;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.util.Optional;

/**
 * Guest RAM allocation through the FFM API: an anonymous private mapping (as QEMU's RAM
 * blocks are), pre-faulted when asked (QEMU's {@code prealloc=on}), unmapped when the owning
 * arena closes. Falls back to an arena allocation where mmap is unavailable.
 *
 * <p>Pre-faulted RAM is advised for transparent huge pages first, as QEMU advises its RAM
 * blocks: where the kernel grants them (THP in "madvise" or "always" mode) the pre-fault takes
 * one fault per 2 MiB instead of 512. Copies into and out of it ran at the same speed either way. A postcopy destination splits
 * what it must: the userfaultfd backend advises its blocks back to small pages at advise, before
 * any discard, drops the missing ones 4 KiB at a time, and gives the advice back when it closes.
 */
public final class NativeMemory {
    private static final int PROT_READ = 0x1;
    private static final int PROT_WRITE = 0x2;
    private static final int MAP_PRIVATE = 0x02;
    private static final int MAP_ANONYMOUS = 0x20;
    private static final int MAP_NORESERVE = 0x4000;
    private static final int MAP_POPULATE = 0x8000;
    private static final long MAP_FAILED = -1L;

    private static final MethodHandle MMAP;
    private static final MethodHandle MUNMAP;

    static {
        MethodHandle mmap = null;
        MethodHandle munmap = null;
        if (System.getProperty("os.name", "").toLowerCase().contains("linux")) {
            try {
                Linker linker = Linker.nativeLinker();
                SymbolLookup libc = linker.defaultLookup();
                Optional<MemorySegment> m = libc.find("mmap");
                Optional<MemorySegment> u = libc.find("munmap");
                if (m.isPresent() && u.isPresent()) {
                    mmap = linker.downcallHandle(m.get(), FunctionDescriptor.of(ValueLayout.ADDRESS,
                            ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT,
                            ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG));
                    munmap = linker.downcallHandle(u.get(), FunctionDescriptor.of(ValueLayout.JAVA_INT,
                            ValueLayout.ADDRESS, ValueLayout.JAVA_LONG));
                }
            } catch (RuntimeException | LinkageError e) {
                mmap = null;
                munmap = null;
            }
        }
        MMAP = mmap;
        MUNMAP = munmap;
    }

    private NativeMemory() {}

    /** True when guest RAM comes from mmap (needed by the userfaultfd postcopy backend). */
    public static boolean mmapAvailable() {
        return MMAP != null;
    }

    /**
     * Maps {@code size} bytes of zeroed anonymous memory whose lifetime is {@code arena}'s.
     * With {@code prefault} every page is populated now, so no first-touch cost falls into a
     * migration later.
     */
    public static MemorySegment mapAnonymous(long size, boolean prefault, Arena arena) {
        if (size <= 0) {
            throw new IllegalArgumentException("size must be positive: " + size);
        }
        if (MMAP == null) {
            MemorySegment seg = arena.allocate(size, 4096); // zero-filled: touches every page
            return seg;
        }
        // With huge pages advised, the pre-fault below maps them: MAP_POPULATE would map small
        // pages before the advice could be given.
        boolean hugePages = advisesHugePages(prefault);
        int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | (prefault && !hugePages ? MAP_POPULATE : 0);
        MemorySegment addr;
        try {
            addr = (MemorySegment) MMAP.invokeExact(MemorySegment.NULL, size, PROT_READ | PROT_WRITE, flags, -1, 0L);
        } catch (Throwable t) {
            throw new IllegalStateException("mmap failed", t);
        }
        if (addr.address() == MAP_FAILED || addr.address() == 0) {
            throw new OutOfMemoryError("mmap of " + size + " bytes of guest RAM failed");
        }
        final long base = addr.address();
        if (hugePages) {
            // Best effort: EINVAL where the kernel has no THP; the pre-fault maps small pages then.
            Libc.madvise(base, size, Libc.MADV_HUGEPAGE);
        }
        MemorySegment seg = addr.reinterpret(size, arena, s -> unmap(base, size));
        if (prefault) {
            populateWrite(seg);
        }
        return seg;
    }

    /** Whether {@link #mapAnonymous} advises a mapping for transparent huge pages (see the class comment). */
    static boolean advisesHugePages(boolean prefault) {
        return prefault && MMAP != null && Libc.unavailableReason() == null;
    }

    /** The store fallback works in chunks of this size, on as many threads as there are CPUs. */
    private static final long TOUCH_CHUNK = 64L << 20;

    /**
     * Populates every page for writing, as QEMU 7.2's prealloc does: one MADV_POPULATE_WRITE
     * over the whole mapping on the calling thread (Linux 5.14). The kernel maps huge pages where
     * advised and zeroes them with no fault per page; measured here for 1 GiB with huge pages:
     * 0.10-0.23 s and about 0.1 CPU-s, against 0.16-3.8 s for a store per 4 KiB page.
     *
     * <p>Nothing more is done. Earlier this class also stored to every page and had the kernel
     * read every page through a pipe, because a first store or kernel read after MAP_POPULATE
     * had faulted again on an earlier nested VM; re-measured on this one (kernel 6.18), both
     * cost about as much the first time as the second (per GiB: a store pass 20-50 ms first,
     * 15-35 ms again; a pipe read 0.39-0.52 s first, 0.32-0.49 s again), and a first precopy
     * into such RAM ran as fast as before, so the pre-fault paid 0.3-0.5 s for nothing. Where the advice is refused
     * (an older kernel) a zero byte is stored to every page instead.
     */
    private static void populateWrite(MemorySegment seg) {
        if (Libc.unavailableReason() == null) {
            if (Libc.madvise(seg.address(), seg.byteSize(), Libc.MADV_POPULATE_WRITE) == 0) {
                return;
            }
            int errno = Libc.errno();
            if (errno != Libc.EINVAL) {
                throw new OutOfMemoryError("pre-faulting " + seg.byteSize() + " bytes of guest RAM failed: "
                        + Libc.strerror(errno));
            }
        }
        storeEveryPage(seg);
    }

    /** Stores a zero byte to every 4 KiB page (the memory is zero already), in parallel chunks. */
    static void storeEveryPage(MemorySegment seg) {
        long chunks = (seg.byteSize() + TOUCH_CHUNK - 1) / TOUCH_CHUNK;
        java.util.stream.LongStream range = java.util.stream.LongStream.range(0, chunks);
        (chunks > 1 ? range.parallel() : range).forEach(c -> {
            long start = c * TOUCH_CHUNK;
            long end = Math.min(seg.byteSize(), start + TOUCH_CHUNK);
            for (long off = start; off < end; off += 4096) {
                seg.set(ValueLayout.JAVA_BYTE, off, (byte) 0);
            }
        });
    }

    private static void unmap(long address, long size) {
        try {
            int rc = (int) MUNMAP.invokeExact(MemorySegment.ofAddress(address), size);
            assert rc == 0 : "munmap failed";
        } catch (Throwable t) {
            throw new IllegalStateException("munmap failed", t);
        }
    }
}
