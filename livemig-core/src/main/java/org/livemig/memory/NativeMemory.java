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
 * blocks are), pre-faulted with MAP_POPULATE when asked (QEMU's {@code prealloc=on}), unmapped
 * when the owning arena closes. Falls back to an arena allocation where mmap is unavailable.
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
        int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | (prefault ? MAP_POPULATE : 0);
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
        return addr.reinterpret(size, arena, s -> unmap(base, size));
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
