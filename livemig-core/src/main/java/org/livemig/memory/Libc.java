package org.livemig.memory;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;

/**
 * The few C library calls the userfaultfd backend and {@link ThreadScheduling} need, as FFM
 * downcalls (no JNI). Each call that can fail captures {@code errno} into a per-thread buffer,
 * read with {@link #errno()} right after the call. Linux only; {@link #unavailableReason()} says why not where it is not.
 *
 * <p>A downcall moves its thread from "in Java" to "in native" for the duration of the call.
 * That is what {@link #touch} relies on: a thread blocked by the kernel inside a native call
 * does not hold up a JVM safepoint, whereas one blocked on a page fault while running Java code
 * does (see {@link org.livemig.memory.postcopy.UserfaultfdPostcopy}).
 */
public final class Libc {
    public static final int EPERM = 1;
    public static final int ENOENT = 2;
    public static final int EINTR = 4;
    public static final int EBADF = 9;
    public static final int EAGAIN = 11;
    public static final int ENOMEM = 12;
    public static final int EACCES = 13;
    public static final int EFAULT = 14;
    public static final int EEXIST = 17;
    public static final int EINVAL = 22;
    public static final int ENOTTY = 25;
    public static final int ENOSPC = 28;
    public static final int ENOSYS = 38;

    public static final int O_RDWR = 0x2;
    public static final int O_NONBLOCK = 0x800;
    public static final int O_CLOEXEC = 0x80000;

    public static final int MADV_DONTNEED = 4;
    /** Maps every page of a range for reading (Linux 5.14); never-written anonymous pages map the zero page. */
    public static final int MADV_POPULATE_READ = 22;
    /** Maps every page of a range for writing, allocating and zeroing it (Linux 5.14); EINVAL before. */
    public static final int MADV_POPULATE_WRITE = 23;
    public static final int MADV_HUGEPAGE = 14;
    public static final int MADV_NOHUGEPAGE = 15;

    public static final short POLLIN = 0x1;
    public static final short POLLERR = 0x8;
    public static final short POLLHUP = 0x10;
    public static final short POLLNVAL = 0x20;
    /** struct pollfd { int fd; short events; short revents; }. */
    public static final StructLayout POLLFD = MemoryLayout.structLayout(
            ValueLayout.JAVA_INT.withName("fd"), ValueLayout.JAVA_SHORT.withName("events"),
            ValueLayout.JAVA_SHORT.withName("revents"));

    public static final int SC_PAGESIZE = 30;

    public static final int SCHED_FIFO = 1;

    private static final StructLayout CAPTURE;
    private static final VarHandle ERRNO;
    private static final MethodHandle SYSCALL;
    private static final MethodHandle IOCTL_PTR;
    private static final MethodHandle IOCTL_LONG;
    private static final MethodHandle OPEN;
    private static final MethodHandle CLOSE;
    private static final MethodHandle READ;
    private static final MethodHandle POLL;
    private static final MethodHandle MADVISE;
    private static final MethodHandle MEMCHR;
    private static final MethodHandle MEMSET;
    private static final MethodHandle STRERROR;
    private static final MethodHandle SYSCONF;
    private static final MethodHandle SCHED_SETSCHEDULER;
    private static final MethodHandle SCHED_GETSCHEDULER;
    private static final String UNAVAILABLE;

    /** Per-thread native buffers: errno capture and a small struct area for ioctls. */
    private static final ThreadLocal<MemorySegment[]> SCRATCH = new ThreadLocal<>();

    static {
        StructLayout capture = null;
        VarHandle errno = null;
        MethodHandle syscall = null;
        MethodHandle ioctlPtr = null;
        MethodHandle ioctlLong = null;
        MethodHandle open = null;
        MethodHandle close = null;
        MethodHandle read = null;
        MethodHandle poll = null;
        MethodHandle madvise = null;
        MethodHandle memchr = null;
        MethodHandle memset = null;
        MethodHandle strerror = null;
        MethodHandle sysconf = null;
        MethodHandle schedSet = null;
        MethodHandle schedGet = null;
        String why = null;
        if (!System.getProperty("os.name", "").toLowerCase().contains("linux")) {
            why = "not Linux (" + System.getProperty("os.name") + ")";
        } else {
            try {
                Linker linker = Linker.nativeLinker();
                SymbolLookup libc = linker.defaultLookup();
                capture = Linker.Option.captureStateLayout();
                errno = capture.varHandle(MemoryLayout.PathElement.groupElement("errno"));
                Linker.Option err = Linker.Option.captureCallState("errno");
                ValueLayout i = ValueLayout.JAVA_INT;
                ValueLayout l = ValueLayout.JAVA_LONG;
                ValueLayout a = ValueLayout.ADDRESS;
                syscall = linker.downcallHandle(libc.find("syscall").orElseThrow(),
                        FunctionDescriptor.of(l, l, l), err, Linker.Option.firstVariadicArg(1));
                ioctlPtr = linker.downcallHandle(libc.find("ioctl").orElseThrow(),
                        FunctionDescriptor.of(i, i, l, a), err, Linker.Option.firstVariadicArg(2));
                ioctlLong = linker.downcallHandle(libc.find("ioctl").orElseThrow(),
                        FunctionDescriptor.of(i, i, l, l), err, Linker.Option.firstVariadicArg(2));
                open = linker.downcallHandle(libc.find("open").orElseThrow(),
                        FunctionDescriptor.of(i, a, i, i), err, Linker.Option.firstVariadicArg(2));
                close = linker.downcallHandle(libc.find("close").orElseThrow(), FunctionDescriptor.of(i, i), err);
                read = linker.downcallHandle(libc.find("read").orElseThrow(), FunctionDescriptor.of(l, i, a, l), err);
                poll = linker.downcallHandle(libc.find("poll").orElseThrow(), FunctionDescriptor.of(i, a, l, i), err);
                madvise = linker.downcallHandle(libc.find("madvise").orElseThrow(),
                        FunctionDescriptor.of(i, a, l, i), err);
                // No errno capture and not "critical": the call must leave the Java state (see class doc).
                memchr = linker.downcallHandle(libc.find("memchr").orElseThrow(), FunctionDescriptor.of(a, a, i, l));
                memset = linker.downcallHandle(libc.find("memset").orElseThrow(), FunctionDescriptor.of(a, a, i, l));
                strerror = linker.downcallHandle(libc.find("strerror").orElseThrow(), FunctionDescriptor.of(a, i));
                sysconf = linker.downcallHandle(libc.find("sysconf").orElseThrow(), FunctionDescriptor.of(l, i));
                schedSet = linker.downcallHandle(libc.find("sched_setscheduler").orElseThrow(),
                        FunctionDescriptor.of(i, i, i, a), err);
                schedGet = linker.downcallHandle(libc.find("sched_getscheduler").orElseThrow(),
                        FunctionDescriptor.of(i, i), err);
            } catch (RuntimeException | LinkageError e) {
                why = "C library calls unavailable: " + e;
            }
        }
        CAPTURE = capture;
        ERRNO = errno;
        SYSCALL = syscall;
        IOCTL_PTR = ioctlPtr;
        IOCTL_LONG = ioctlLong;
        OPEN = open;
        CLOSE = close;
        READ = read;
        POLL = poll;
        MADVISE = madvise;
        MEMCHR = memchr;
        MEMSET = memset;
        STRERROR = strerror;
        SYSCONF = sysconf;
        SCHED_SETSCHEDULER = schedSet;
        SCHED_GETSCHEDULER = schedGet;
        UNAVAILABLE = why;
    }

    private Libc() {}

    /** Null when the calls are usable, else why not. */
    public static String unavailableReason() {
        return UNAVAILABLE;
    }

    private static MemorySegment[] scratch() {
        MemorySegment[] s = SCRATCH.get();
        if (s == null) {
            Arena arena = Arena.ofAuto();
            s = new MemorySegment[] {arena.allocate(CAPTURE), arena.allocate(64, 8), arena.allocate(POLLFD)};
            SCRATCH.set(s);
        }
        return s;
    }

    private static MemorySegment capture() {
        return scratch()[0];
    }

    /** A 64-byte native buffer of this thread, for one ioctl argument at a time. */
    public static MemorySegment structBuffer() {
        MemorySegment b = scratch()[1];
        b.fill((byte) 0);
        return b;
    }

    /** errno of this thread's last failed call made through this class. */
    public static int errno() {
        return (int) ERRNO.get(capture(), 0L);
    }

    public static String strerror(int errno) {
        try {
            MemorySegment s = (MemorySegment) STRERROR.invokeExact(errno);
            return s.reinterpret(256).getString(0) + " (errno " + errno + ")";
        } catch (Throwable t) {
            return "errno " + errno;
        }
    }

    public static long syscall(long number, long arg) {
        try {
            return (long) SYSCALL.invokeExact(capture(), number, arg);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public static int ioctl(int fd, long request, MemorySegment arg) {
        try {
            return (int) IOCTL_PTR.invokeExact(capture(), fd, request, arg);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public static int ioctl(int fd, long request, long arg) {
        try {
            return (int) IOCTL_LONG.invokeExact(capture(), fd, request, arg);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public static int open(String path, int flags) {
        try (Arena a = Arena.ofConfined()) {
            return (int) OPEN.invokeExact(capture(), a.allocateFrom(path), flags, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public static int close(int fd) {
        try {
            return (int) CLOSE.invokeExact(capture(), fd);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public static long read(int fd, MemorySegment buf, long count) {
        try {
            return (long) READ.invokeExact(capture(), fd, buf, count);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * Waits up to {@code timeoutMillis} for {@code fd} to become readable. Returns the revents
     * (0 on timeout), or -1 with {@link #errno()} set.
     */
    public static int pollIn(int fd, int timeoutMillis) {
        MemorySegment p = scratch()[2];
        p.set(ValueLayout.JAVA_INT, 0, fd);
        p.set(ValueLayout.JAVA_SHORT, 4, POLLIN);
        p.set(ValueLayout.JAVA_SHORT, 6, (short) 0);
        int n;
        try {
            n = (int) POLL.invokeExact(capture(), p, 1L, timeoutMillis);
        } catch (Throwable t) {
            throw rethrow(t);
        }
        return n < 0 ? -1 : n == 0 ? 0 : p.get(ValueLayout.JAVA_SHORT, 6) & 0xFFFF;
    }

    /** sched_setscheduler(2) for the calling thread, with a {@code struct sched_param} of {@code priority}. */
    public static int schedSetscheduler(int policy, int priority) {
        MemorySegment param = structBuffer();
        param.set(ValueLayout.JAVA_INT, 0, priority);
        try {
            return (int) SCHED_SETSCHEDULER.invokeExact(capture(), 0, policy, param);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** sched_getscheduler(2) for the calling thread. */
    public static int schedGetscheduler() {
        try {
            return (int) SCHED_GETSCHEDULER.invokeExact(capture(), 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public static int madvise(long address, long length, int advice) {
        try {
            return (int) MADVISE.invokeExact(capture(), MemorySegment.ofAddress(address), length, advice);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * Reads one byte at {@code address} from native code: if the page is missing under
     * userfaultfd, this thread blocks in the kernel, outside the Java state, until it is placed.
     */
    public static void touch(long address) {
        try {
            MemorySegment ignored = (MemorySegment) MEMCHR.invokeExact(MemorySegment.ofAddress(address), 0, 1L);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * Stores {@code value} in the byte at {@code address} from native code: if the page is
     * write-protected under userfaultfd, this thread blocks in the kernel, outside the Java
     * state, until it is unprotected, and the store then completes.
     */
    public static void storeByte(long address, byte value) {
        try {
            MemorySegment ignored = (MemorySegment) MEMSET.invokeExact(MemorySegment.ofAddress(address), (int) value, 1L);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public static long sysconf(int name) {
        try {
            return (long) SYSCONF.invokeExact(name);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    private static RuntimeException rethrow(Throwable t) {
        if (t instanceof RuntimeException r) {
            throw r;
        }
        if (t instanceof Error e) {
            throw e;
        }
        throw new IllegalStateException(t);
    }
}
