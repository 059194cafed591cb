package org.livemig.memory.postcopy;

import org.livemig.memory.RamBlock;
import org.livemig.memory.Libc;
import org.livemig.memory.NativeMemory;

import static java.lang.foreign.MemoryLayout.PathElement.groupElement;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.UnionLayout;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * One userfaultfd file descriptor (Linux's userfaultfd(2)) driven through FFM: creation, the
 * UFFDIO_API handshake, UFFDIO_REGISTER in missing mode (postcopy) or write-protect mode (a
 * background snapshot), UFFDIO_COPY / UFFDIO_ZEROPAGE / UFFDIO_WAKE / UFFDIO_WRITEPROTECT, and
 * reading {@code struct uffd_msg} fault events. Struct layouts and ioctl numbers follow
 * {@code include/uapi/linux/userfaultfd.h}; the numbers are built with the generic {@code _IOC}
 * encoding, valid on x86_64 and aarch64 (other architectures are refused).
 *
 * <p>Thread contract: the ioctls may be called from any thread at once (the kernel serialises
 * them); {@link #readEvents} by one thread at a time; {@link #close} only once no other call is
 * in flight (the backend guarantees it with a lock).
 */
final class Userfaultfd implements AutoCloseable {
    // ---------------------------------------------------------------- ABI facts

    static final long UFFD_API = 0xAA;
    static final int UFFDIO = 0xAA;
    static final int NR_REGISTER = 0x00;
    static final int NR_UNREGISTER = 0x01;
    static final int NR_WAKE = 0x02;
    static final int NR_COPY = 0x03;
    static final int NR_ZEROPAGE = 0x04;
    static final int NR_WRITEPROTECT = 0x06;
    static final int NR_API = 0x3F;

    static final long REGISTER_MODE_MISSING = 1L;
    static final long REGISTER_MODE_WP = 2L;
    /** uffdio_writeprotect.mode: protect (else unprotect); DONTWAKE leaves blocked threads asleep. */
    static final long WRITEPROTECT_MODE_WP = 1L;
    static final long WRITEPROTECT_MODE_DONTWAKE = 2L;
    static final int EVENT_PAGEFAULT = 0x12;
    static final long PAGEFAULT_FLAG_WRITE = 1L;
    /** uffd_msg.pagefault.flags: the fault was a write to a write-protected page. */
    static final long PAGEFAULT_FLAG_WP = 2L;
    /** Flag of userfaultfd(2): only faults taken in user mode are reported (allowed unprivileged). */
    static final int USER_MODE_ONLY = 1;
    /** ioctl of /dev/userfaultfd that creates a userfaultfd (Linux 6.1+). */
    static final long USERFAULTFD_IOC_NEW = ioc(0, UFFDIO, 0x00, 0);

    /** struct uffdio_range { __u64 start; __u64 len; }. */
    static final StructLayout RANGE = MemoryLayout.structLayout(
            ValueLayout.JAVA_LONG.withName("start"), ValueLayout.JAVA_LONG.withName("len"));
    /** struct uffdio_api { __u64 api; __u64 features; __u64 ioctls; }. */
    static final StructLayout API = MemoryLayout.structLayout(
            ValueLayout.JAVA_LONG.withName("api"), ValueLayout.JAVA_LONG.withName("features"),
            ValueLayout.JAVA_LONG.withName("ioctls"));
    /** struct uffdio_register { struct uffdio_range range; __u64 mode; __u64 ioctls; }. */
    static final StructLayout REGISTER = MemoryLayout.structLayout(
            RANGE.withName("range"), ValueLayout.JAVA_LONG.withName("mode"), ValueLayout.JAVA_LONG.withName("ioctls"));
    /** struct uffdio_copy { __u64 dst; __u64 src; __u64 len; __u64 mode; __s64 copy; }. */
    static final StructLayout COPY = MemoryLayout.structLayout(
            ValueLayout.JAVA_LONG.withName("dst"), ValueLayout.JAVA_LONG.withName("src"),
            ValueLayout.JAVA_LONG.withName("len"), ValueLayout.JAVA_LONG.withName("mode"),
            ValueLayout.JAVA_LONG.withName("copy"));
    /** struct uffdio_zeropage { struct uffdio_range range; __u64 mode; __s64 zeropage; }. */
    static final StructLayout ZEROPAGE = MemoryLayout.structLayout(
            RANGE.withName("range"), ValueLayout.JAVA_LONG.withName("mode"), ValueLayout.JAVA_LONG.withName("zeropage"));
    /** struct uffdio_writeprotect { struct uffdio_range range; __u64 mode; }. */
    static final StructLayout WRITEPROTECT = MemoryLayout.structLayout(
            RANGE.withName("range"), ValueLayout.JAVA_LONG.withName("mode"));
    /** The pagefault arm of uffd_msg's union: { __u64 flags; __u64 address; union { __u32 ptid; } feat; }. */
    static final StructLayout PAGEFAULT = MemoryLayout.structLayout(
            ValueLayout.JAVA_LONG.withName("flags"), ValueLayout.JAVA_LONG.withName("address"),
            ValueLayout.JAVA_INT.withName("ptid"), MemoryLayout.paddingLayout(4));
    static final UnionLayout MSG_ARG = MemoryLayout.unionLayout(PAGEFAULT.withName("pagefault"),
            MemoryLayout.sequenceLayout(3, ValueLayout.JAVA_LONG).withName("reserved"));
    /** struct uffd_msg (packed): { __u8 event; __u8 reserved1; __u16 reserved2; __u32 reserved3; union arg; }. */
    static final StructLayout MSG = MemoryLayout.structLayout(
            ValueLayout.JAVA_BYTE.withName("event"), ValueLayout.JAVA_BYTE.withName("reserved1"),
            ValueLayout.JAVA_SHORT.withName("reserved2"), ValueLayout.JAVA_INT.withName("reserved3"),
            MSG_ARG.withName("arg"));

    static final long API_API = API.byteOffset(groupElement("api"));
    static final long API_FEATURES = API.byteOffset(groupElement("features"));
    static final long API_IOCTLS = API.byteOffset(groupElement("ioctls"));
    static final long RANGE_START = RANGE.byteOffset(groupElement("start"));
    static final long RANGE_LEN = RANGE.byteOffset(groupElement("len"));
    static final long REGISTER_MODE = REGISTER.byteOffset(groupElement("mode"));
    static final long REGISTER_IOCTLS = REGISTER.byteOffset(groupElement("ioctls"));
    static final long COPY_DST = COPY.byteOffset(groupElement("dst"));
    static final long COPY_SRC = COPY.byteOffset(groupElement("src"));
    static final long COPY_LEN = COPY.byteOffset(groupElement("len"));
    static final long COPY_MODE = COPY.byteOffset(groupElement("mode"));
    static final long COPY_COPY = COPY.byteOffset(groupElement("copy"));
    static final long ZEROPAGE_MODE = ZEROPAGE.byteOffset(groupElement("mode"));
    static final long ZEROPAGE_ZEROPAGE = ZEROPAGE.byteOffset(groupElement("zeropage"));
    static final long WRITEPROTECT_MODE = WRITEPROTECT.byteOffset(groupElement("mode"));
    static final long MSG_EVENT = MSG.byteOffset(groupElement("event"));
    static final long MSG_PF_FLAGS = MSG.byteOffset(groupElement("arg"), groupElement("pagefault"), groupElement("flags"));
    static final long MSG_PF_ADDRESS = MSG.byteOffset(groupElement("arg"), groupElement("pagefault"), groupElement("address"));

    static final long UFFDIO_API = ioc(3, UFFDIO, NR_API, API.byteSize());
    static final long UFFDIO_REGISTER = ioc(3, UFFDIO, NR_REGISTER, REGISTER.byteSize());
    static final long UFFDIO_UNREGISTER = ioc(2, UFFDIO, NR_UNREGISTER, RANGE.byteSize());
    static final long UFFDIO_WAKE = ioc(2, UFFDIO, NR_WAKE, RANGE.byteSize());
    static final long UFFDIO_COPY = ioc(3, UFFDIO, NR_COPY, COPY.byteSize());
    static final long UFFDIO_ZEROPAGE = ioc(3, UFFDIO, NR_ZEROPAGE, ZEROPAGE.byteSize());
    static final long UFFDIO_WRITEPROTECT = ioc(3, UFFDIO, NR_WRITEPROTECT, WRITEPROTECT.byteSize());

    /** Linux's generic _IOC(dir, type, nr, size): dir 1 = write, 2 = read, 3 = both. */
    static long ioc(int dir, int type, int nr, long size) {
        return ((long) dir << 30) | (size << 16) | ((long) type << 8) | nr;
    }

    /** userfaultfd(2)'s number, or -1 on an architecture this class does not support. */
    static long syscallNumber() {
        return switch (System.getProperty("os.arch", "")) {
            case "amd64", "x86_64" -> 323;
            case "aarch64" -> 282;
            default -> -1;
        };
    }

    // ---------------------------------------------------------------- instance

    private final int fd;
    private final String how;
    private boolean closed;

    private Userfaultfd(int fd, String how) {
        this.fd = fd;
        this.how = how;
    }

    /** How the descriptor was obtained ("userfaultfd(2)", "/dev/userfaultfd", ...). */
    String how() {
        return how;
    }

    /**
     * Opens a non-blocking, close-on-exec userfaultfd and completes the API handshake. Tries the
     * system call, then the system call for user-mode faults only (what an unprivileged process
     * may do when vm.unprivileged_userfaultfd is 0), then /dev/userfaultfd.
     */
    static Userfaultfd open() throws IOException {
        return open(0);
    }

    /**
     * As {@link #open()}, asking the handshake for {@code wantFeatures} (UFFD_FEATURE_* bits; the
     * kernel refuses the handshake when it lacks one).
     */
    static Userfaultfd open(long wantFeatures) throws IOException {
        String libc = Libc.unavailableReason();
        if (libc != null) {
            throw new IOException(libc);
        }
        long nr = syscallNumber();
        if (nr < 0) {
            throw new IOException("userfaultfd is wired for x86_64 and aarch64 only, not " + System.getProperty("os.arch"));
        }
        List<String> failures = new ArrayList<>();
        int flags = Libc.O_CLOEXEC | Libc.O_NONBLOCK;
        long fd = Libc.syscall(nr, flags);
        String how = "userfaultfd(2)";
        if (fd < 0) {
            failures.add("userfaultfd(2): " + Libc.strerror(Libc.errno()));
            fd = Libc.syscall(nr, flags | USER_MODE_ONLY);
            how = "userfaultfd(2) with UFFD_USER_MODE_ONLY";
            if (fd < 0) {
                failures.add("userfaultfd(2) with UFFD_USER_MODE_ONLY: " + Libc.strerror(Libc.errno()));
                int dev = Libc.open("/dev/userfaultfd", Libc.O_RDWR | Libc.O_CLOEXEC);
                if (dev < 0) {
                    failures.add("/dev/userfaultfd: " + Libc.strerror(Libc.errno()));
                } else {
                    fd = Libc.ioctl(dev, USERFAULTFD_IOC_NEW, (long) flags);
                    if (fd < 0) {
                        failures.add("/dev/userfaultfd USERFAULTFD_IOC_NEW: " + Libc.strerror(Libc.errno()));
                    }
                    how = "/dev/userfaultfd";
                    Libc.close(dev);
                }
            }
        }
        if (fd < 0) {
            throw new IOException(String.join("; ", failures) + hints());
        }
        Userfaultfd u = new Userfaultfd((int) fd, how);
        try {
            u.handshake(wantFeatures);
        } catch (IOException | RuntimeException e) {
            u.close();
            throw e;
        }
        return u;
    }

    /** UFFD_FEATURE_PAGEFAULT_FLAG_WP: write-protect mode on anonymous memory (Linux 5.7+). */
    static final long FEATURE_PAGEFAULT_FLAG_WP = 1L << 0;

    /** The features the kernel offers (UFFDIO_API's answer), for {@code livemig check}. */
    private long features;

    long features() {
        return features;
    }

    private void handshake(long wantFeatures) throws IOException {
        MemorySegment api = Libc.structBuffer();
        api.set(ValueLayout.JAVA_LONG, API_API, UFFD_API);
        api.set(ValueLayout.JAVA_LONG, API_FEATURES, wantFeatures);
        if (Libc.ioctl(fd, UFFDIO_API, api) != 0) {
            throw new IOException(String.format("UFFDIO_API with features 0x%x: %s", wantFeatures,
                    Libc.strerror(Libc.errno())));
        }
        features = api.get(ValueLayout.JAVA_LONG, API_FEATURES); // the kernel answers all it has
        long ioctls = api.get(ValueLayout.JAVA_LONG, API_IOCTLS);
        long need = (1L << NR_REGISTER) | (1L << NR_UNREGISTER) | (1L << NR_API);
        if ((ioctls & need) != need) {
            throw new IOException(String.format("UFFDIO_API offers ioctls 0x%x, without REGISTER/UNREGISTER", ioctls));
        }
    }

    /** Registers {@code [start, start + length)} in missing mode; checks COPY, ZEROPAGE and WAKE are offered. */
    void registerMissing(long start, long length) throws IOException {
        MemorySegment r = Libc.structBuffer();
        r.set(ValueLayout.JAVA_LONG, RANGE_START, start);
        r.set(ValueLayout.JAVA_LONG, RANGE_LEN, length);
        r.set(ValueLayout.JAVA_LONG, REGISTER_MODE, REGISTER_MODE_MISSING);
        if (Libc.ioctl(fd, UFFDIO_REGISTER, r) != 0) {
            throw new IOException(String.format("UFFDIO_REGISTER of [0x%x, +0x%x): %s", start, length,
                    Libc.strerror(Libc.errno())));
        }
        long ioctls = r.get(ValueLayout.JAVA_LONG, REGISTER_IOCTLS);
        long need = (1L << NR_COPY) | (1L << NR_ZEROPAGE) | (1L << NR_WAKE);
        if ((ioctls & need) != need) {
            unregister(start, length);
            throw new IOException(String.format("UFFDIO_REGISTER offers ioctls 0x%x, without COPY/ZEROPAGE/WAKE", ioctls));
        }
    }

    /**
     * Registers {@code [start, start + length)} in write-protect mode (the fd must have been opened
     * with {@link #FEATURE_PAGEFAULT_FLAG_WP}); checks WRITEPROTECT and WAKE are offered. Nothing
     * is protected yet: {@link #writeProtect} does that.
     */
    void registerWriteProtect(long start, long length) throws IOException {
        MemorySegment r = Libc.structBuffer();
        r.set(ValueLayout.JAVA_LONG, RANGE_START, start);
        r.set(ValueLayout.JAVA_LONG, RANGE_LEN, length);
        r.set(ValueLayout.JAVA_LONG, REGISTER_MODE, REGISTER_MODE_WP);
        if (Libc.ioctl(fd, UFFDIO_REGISTER, r) != 0) {
            throw new IOException(String.format("UFFDIO_REGISTER (write-protect) of [0x%x, +0x%x): %s", start, length,
                    Libc.strerror(Libc.errno())));
        }
        long ioctls = r.get(ValueLayout.JAVA_LONG, REGISTER_IOCTLS);
        long need = (1L << NR_WRITEPROTECT) | (1L << NR_WAKE);
        if ((ioctls & need) != need) {
            unregister(start, length);
            throw new IOException(String.format("UFFDIO_REGISTER offers ioctls 0x%x, without WRITEPROTECT/WAKE", ioctls));
        }
    }

    /**
     * UFFDIO_WRITEPROTECT of a registered range: {@code protect} makes writes to its present pages
     * fault; otherwise they are allowed again and the threads blocked on them woken. Returns 0
     * or the errno (EAGAIN and EINTR are retried here).
     */
    int writeProtect(long start, long length, boolean protect) {
        MemorySegment w = Libc.structBuffer();
        while (true) {
            w.set(ValueLayout.JAVA_LONG, RANGE_START, start);
            w.set(ValueLayout.JAVA_LONG, RANGE_LEN, length);
            w.set(ValueLayout.JAVA_LONG, WRITEPROTECT_MODE, protect ? WRITEPROTECT_MODE_WP : 0L);
            if (Libc.ioctl(fd, UFFDIO_WRITEPROTECT, w) == 0) {
                return 0;
            }
            int e = Libc.errno();
            if (e != Libc.EAGAIN && e != Libc.EINTR) {
                return e;
            }
            Thread.onSpinWait();
        }
    }

    /** Unregisters a range; threads blocked on it wake and fault again, normally. Returns errno or 0. */
    int unregister(long start, long length) {
        return rangeIoctl(UFFDIO_UNREGISTER, start, length);
    }

    /** Wakes threads blocked on faults in the range. Returns errno or 0. */
    int wake(long start, long length) {
        return rangeIoctl(UFFDIO_WAKE, start, length);
    }

    private int rangeIoctl(long request, long start, long length) {
        MemorySegment r = Libc.structBuffer();
        r.set(ValueLayout.JAVA_LONG, RANGE_START, start);
        r.set(ValueLayout.JAVA_LONG, RANGE_LEN, length);
        while (true) {
            if (Libc.ioctl(fd, request, r) == 0) {
                return 0;
            }
            int e = Libc.errno();
            if (e != Libc.EINTR) {
                return e;
            }
        }
    }

    /**
     * UFFDIO_COPY of {@code length} bytes from {@code src} to the missing pages at {@code dst},
     * atomically per page, waking their waiters. Returns 0, or the errno (EEXIST: a page was
     * already there; EAGAIN is retried here).
     */
    int copy(long dst, long src, long length) {
        MemorySegment c = Libc.structBuffer();
        while (true) {
            c.set(ValueLayout.JAVA_LONG, COPY_DST, dst);
            c.set(ValueLayout.JAVA_LONG, COPY_SRC, src);
            c.set(ValueLayout.JAVA_LONG, COPY_LEN, length);
            c.set(ValueLayout.JAVA_LONG, COPY_MODE, 0L);
            c.set(ValueLayout.JAVA_LONG, COPY_COPY, 0L);
            if (Libc.ioctl(fd, UFFDIO_COPY, c) == 0) {
                return 0;
            }
            int e = Libc.errno();
            if (e != Libc.EAGAIN && e != Libc.EINTR) {
                return e;
            }
            long done = c.get(ValueLayout.JAVA_LONG, COPY_COPY);
            if (done > 0) { // partial progress before EAGAIN: continue after it
                dst += done;
                src += done;
                length -= done;
                if (length == 0) {
                    return 0;
                }
            }
            Thread.onSpinWait();
        }
    }

    /** UFFDIO_ZEROPAGE of a range: maps zero pages. Returns 0 or the errno (EEXIST as for {@link #copy}). */
    int zeropage(long dst, long length) {
        MemorySegment z = Libc.structBuffer();
        while (true) {
            z.set(ValueLayout.JAVA_LONG, RANGE_START, dst);
            z.set(ValueLayout.JAVA_LONG, RANGE_LEN, length);
            z.set(ValueLayout.JAVA_LONG, ZEROPAGE_MODE, 0L);
            z.set(ValueLayout.JAVA_LONG, ZEROPAGE_ZEROPAGE, 0L);
            if (Libc.ioctl(fd, UFFDIO_ZEROPAGE, z) == 0) {
                return 0;
            }
            int e = Libc.errno();
            if (e != Libc.EAGAIN && e != Libc.EINTR) {
                return e;
            }
            long done = z.get(ValueLayout.JAVA_LONG, ZEROPAGE_ZEROPAGE);
            if (done > 0) {
                dst += done;
                length -= done;
                if (length == 0) {
                    return 0;
                }
            }
            Thread.onSpinWait();
        }
    }

    /**
     * Waits up to {@code timeoutMillis} (0: do not wait) for events, then reads as many as fit
     * {@code buf} (a multiple of {@link #MSG}'s size) without blocking. Returns the count read.
     */
    int readEvents(MemorySegment buf, int timeoutMillis) throws IOException {
        int n = readNow(buf);
        if (n > 0 || timeoutMillis <= 0) {
            return n;
        }
        int revents;
        do {
            revents = Libc.pollIn(fd, timeoutMillis);
        } while (revents < 0 && Libc.errno() == Libc.EINTR);
        if (revents < 0) {
            throw new IOException("poll on userfaultfd: " + Libc.strerror(Libc.errno()));
        }
        if ((revents & (Libc.POLLERR | Libc.POLLNVAL)) != 0) {
            throw new IOException(String.format("poll on userfaultfd: revents 0x%x", revents));
        }
        return revents == 0 ? 0 : readNow(buf);
    }

    /** Told of each page fault of a batch of events: the faulting address, and whether it was a write. */
    interface PageFaultSink {
        void fault(long address, boolean write) throws IOException;
    }

    /** Hands the page faults among the first {@code n} events of {@code buf} to {@code sink}; other events are skipped. */
    static void forEachPageFault(MemorySegment buf, int n, PageFaultSink sink) throws IOException {
        for (int i = 0; i < n; i++) {
            long at = i * MSG.byteSize();
            int event = buf.get(ValueLayout.JAVA_BYTE, at + MSG_EVENT) & 0xFF;
            if (event != EVENT_PAGEFAULT) {
                continue; // no other event is asked for
            }
            long flags = buf.get(ValueLayout.JAVA_LONG, at + MSG_PF_FLAGS);
            sink.fault(buf.get(ValueLayout.JAVA_LONG, at + MSG_PF_ADDRESS), (flags & PAGEFAULT_FLAG_WRITE) != 0);
        }
    }

    private int readNow(MemorySegment buf) throws IOException {
        while (true) {
            long r = Libc.read(fd, buf, buf.byteSize());
            if (r >= 0) {
                if (r % MSG.byteSize() != 0) {
                    throw new IOException("read " + r + " bytes from userfaultfd, not whole uffd_msg records");
                }
                return (int) (r / MSG.byteSize());
            }
            int e = Libc.errno();
            if (e == Libc.EAGAIN) {
                return 0;
            }
            if (e != Libc.EINTR) {
                throw new IOException("read from userfaultfd: " + Libc.strerror(e));
            }
        }
    }

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            Libc.close(fd);
        }
    }

    // ---------------------------------------------------------------- availability

    /** Why this process may not use userfaultfd, appended to a failure: sysctl, seccomp, privileges. */
    private static String hints() {
        StringBuilder sb = new StringBuilder();
        String sysctl = readFirstLine(Path.of("/proc/sys/vm/unprivileged_userfaultfd"));
        if (sysctl != null) {
            sb.append("; vm.unprivileged_userfaultfd=").append(sysctl);
        }
        String seccomp = statusField("Seccomp");
        if (seccomp != null && !seccomp.equals("0")) {
            sb.append("; seccomp mode ").append(seccomp).append(" is active (a filter may refuse the call)");
        }
        String uid = statusField("Uid");
        if (uid != null && !uid.startsWith("0")) {
            sb.append("; not running as root");
        }
        if (!Files.exists(Path.of("/dev/userfaultfd"))) {
            sb.append("; no /dev/userfaultfd");
        }
        return sb.toString();
    }

    private static String readFirstLine(Path p) {
        try {
            List<String> lines = Files.readAllLines(p);
            return lines.isEmpty() ? null : lines.get(0).trim();
        } catch (IOException | RuntimeException e) {
            return null;
        }
    }

    private static String statusField(String name) {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith(name + ":")) {
                    return line.substring(name.length() + 1).trim();
                }
            }
        } catch (IOException | RuntimeException e) {
            return null;
        }
        return null;
    }

    /**
     * Tries the whole mechanism once on a scratch mapping: open, handshake, register in missing
     * mode, place one page with UFFDIO_COPY and one with UFFDIO_ZEROPAGE, unregister.
     */
    static PostcopyBackend.Availability probe() {
        if (!NativeMemory.mmapAvailable()) {
            return PostcopyBackend.Availability.no("guest RAM is not mmap()ed here");
        }
        String libc = Libc.unavailableReason();
        if (libc != null) {
            return PostcopyBackend.Availability.no(libc);
        }
        long pageSize = Libc.sysconf(Libc.SC_PAGESIZE);
        if (pageSize != RamBlock.PAGE_SIZE) {
            return PostcopyBackend.Availability.no("host page size " + pageSize + " differs from the target page size "
                    + RamBlock.PAGE_SIZE);
        }
        try (Userfaultfd u = open(); Arena arena = Arena.ofConfined()) {
            MemorySegment region = NativeMemory.mapAnonymous(2L * RamBlock.PAGE_SIZE, false, arena);
            MemorySegment src = arena.allocate(RamBlock.PAGE_SIZE, RamBlock.PAGE_SIZE);
            src.fill((byte) 0x5A);
            long base = region.address();
            u.registerMissing(base, region.byteSize());
            int e = u.copy(base, src.address(), RamBlock.PAGE_SIZE);
            int z = u.zeropage(base + RamBlock.PAGE_SIZE, RamBlock.PAGE_SIZE);
            int un = u.unregister(base, region.byteSize());
            String why = e != 0 ? "UFFDIO_COPY on a probe page: " + Libc.strerror(e)
                    : z != 0 ? "UFFDIO_ZEROPAGE on a probe page: " + Libc.strerror(z)
                    : un != 0 ? "UFFDIO_UNREGISTER of the probe: " + Libc.strerror(un)
                    : region.get(ValueLayout.JAVA_BYTE, 0) != 0x5A || region.get(ValueLayout.JAVA_BYTE, RamBlock.PAGE_SIZE) != 0
                            ? "UFFDIO_COPY/ZEROPAGE did not place the probe pages" : null;
            if (why != null) {
                return PostcopyBackend.Availability.no(why);
            }
            return PostcopyBackend.Availability.yes("userfaultfd via " + u.how() + " on Linux "
                    + System.getProperty("os.version"));
        } catch (IOException | RuntimeException | OutOfMemoryError e) {
            return PostcopyBackend.Availability.no(e.getMessage() == null ? e.toString() : e.getMessage());
        }
    }

    /**
     * Tries write-protect mode once on a scratch mapping: open with the WP feature, register,
     * protect and unprotect two pages, unregister.
     */
    static PostcopyBackend.Availability probeWriteProtect() {
        if (!NativeMemory.mmapAvailable()) {
            return PostcopyBackend.Availability.no("guest RAM is not mmap()ed here");
        }
        String libc = Libc.unavailableReason();
        if (libc != null) {
            return PostcopyBackend.Availability.no(libc);
        }
        if (Libc.sysconf(Libc.SC_PAGESIZE) != RamBlock.PAGE_SIZE) {
            return PostcopyBackend.Availability.no("host page size differs from the target page size " + RamBlock.PAGE_SIZE);
        }
        try (Userfaultfd u = open(FEATURE_PAGEFAULT_FLAG_WP); Arena arena = Arena.ofConfined()) {
            MemorySegment region = NativeMemory.mapAnonymous(2L * RamBlock.PAGE_SIZE, true, arena);
            long base = region.address();
            u.registerWriteProtect(base, region.byteSize());
            int p = u.writeProtect(base, region.byteSize(), true);
            int q = u.writeProtect(base, region.byteSize(), false);
            int un = u.unregister(base, region.byteSize());
            String why = p != 0 ? "UFFDIO_WRITEPROTECT on probe pages: " + Libc.strerror(p)
                    : q != 0 ? "UFFDIO_WRITEPROTECT (unprotect) on probe pages: " + Libc.strerror(q)
                    : un != 0 ? "UFFDIO_UNREGISTER of the probe: " + Libc.strerror(un) : null;
            if (why != null) {
                return PostcopyBackend.Availability.no(why);
            }
            return PostcopyBackend.Availability.yes("userfaultfd write-protect via " + u.how() + " on Linux "
                    + System.getProperty("os.version"));
        } catch (IOException | RuntimeException | OutOfMemoryError e) {
            return PostcopyBackend.Availability.no(e.getMessage() == null ? e.toString() : e.getMessage());
        }
    }

    @Override
    public String toString() {
        return String.format(Locale.ROOT, "userfaultfd[fd=%d via %s]", fd, how);
    }
}
