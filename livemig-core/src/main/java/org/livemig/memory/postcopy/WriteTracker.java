package org.livemig.memory.postcopy;

import java.io.IOException;
import java.util.Collection;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import org.livemig.memory.GuestRam;
import org.livemig.memory.RamBlock;

/**
 * Write tracking for a background snapshot (QEMU's {@code background-snapshot}, its
 * ram_write_tracking_*): from {@link #start} on, every page of guest RAM is unsaved, and a guest
 * write to an unsaved page waits until the saving thread has copied that page out and called
 * {@link #saved}; the write then goes on. So the snapshot holds RAM as it was at {@link #start}
 * while the guest runs. One tracker per snapshot and {@link GuestRam}; two backends:
 * <ul>
 * <li>{@code userfaultfd} ({@link #userfaultfd}): Linux. Guest RAM is registered with a
 *     userfaultfd in write-protect mode and protected at {@link #start}; the kernel blocks the
 *     writing thread and queues a fault event, and {@link #saved} unprotects the pages, which
 *     wakes it. QEMU's mechanism.</li>
 * <li>{@code checked} ({@link #checked}): portable. {@link GuestRam}'s guest accessors test the
 *     page's saved bit before a write, report the page and wait for the bit.</li>
 * </ul>
 * A JVM thread must never block in the kernel on a page fault while it runs Java code (every
 * safepoint would wait for it; see {@link UserfaultfdPostcopy}), so with userfaultfd too the
 * guest accessors test the saved bit first and take the fault for an unsaved page inside a native
 * store ({@link org.livemig.memory.Libc#storeByte}) of the byte the write is about to replace.
 *
 * <p>Who calls what: the migration thread ({@code mig/src/main}) calls {@link #prepare} while the
 * guest runs, {@link #start} with the guest stopped, then {@link #pollFault}/{@link #drainFaults}
 * and {@link #saved} while it saves RAM, and {@link #close} at the end; guest threads only write.
 * Nothing here takes the BQL, and a guest thread holding it must not write an unsaved page
 * (livemig's devices do not write guest RAM).
 */
public interface WriteTracker extends AutoCloseable {

    /** The portable backend. */
    static WriteTracker checked(GuestRam ram) {
        return new CheckedWriteTracker(ram);
    }

    /** The userfaultfd backend; fails with the reason when the kernel or process does not allow it. */
    static WriteTracker userfaultfd(GuestRam ram) throws IOException {
        return new UserfaultfdWriteTracker(ram);
    }

    /** Whether {@link #userfaultfd} can work here, found once by trying write-protect mode on scratch pages. */
    static PostcopyBackend.Availability userfaultfdAvailability() {
        return UserfaultfdWriteTracker.availability();
    }

    /**
     * The backend {@code kind} names: "userfaultfd", "checked", or "auto" (userfaultfd where
     * available, else checked, telling {@code log} why).
     *
     * @throws IOException when "userfaultfd" is asked for and cannot be used
     */
    static WriteTracker of(String kind, GuestRam ram, Consumer<String> log) throws IOException {
        switch (kind) {
            case "checked" -> {
                return checked(ram);
            }
            case "userfaultfd" -> {
                return userfaultfd(ram);
            }
            case "auto" -> {
                PostcopyBackend.Availability a = userfaultfdAvailability();
                if (a.available()) {
                    try {
                        return userfaultfd(ram);
                    } catch (IOException | RuntimeException e) {
                        log.accept("background-snapshot: userfaultfd write-protect failed (" + e.getMessage()
                                + "), using checked");
                        return checked(ram);
                    }
                }
                log.accept("background-snapshot: userfaultfd write-protect unavailable (" + a.reason()
                        + "), using checked");
                return checked(ram);
            }
            default -> throw new IllegalArgumentException("write tracking must be auto, checked or userfaultfd, not '"
                    + kind + "'");
        }
    }

    /** "userfaultfd" or "checked". */
    String name();

    /** What can be done before the guest stops (userfaultfd: register and map every page). Called once. */
    void prepare() throws IOException;

    /**
     * Called once, with the guest stopped: every page becomes unsaved, and from now on a guest
     * write to an unsaved page waits for {@link #saved}.
     */
    void start() throws IOException;

    /** Whether page {@code page} of {@code block} has been saved (any thread). */
    boolean isSaved(RamBlock block, long page);

    /**
     * The next page a guest write waits for, waiting up to {@code timeout}; null on timeout or
     * once closed. The same page may come more than once. One thread at a time.
     */
    PageFault pollFault(long timeout, TimeUnit unit) throws InterruptedException, IOException;

    /** Adds up to {@code max} pending faults to {@code sink} without waiting; returns how many. */
    int drainFaults(Collection<? super PageFault> sink, int max) throws IOException;

    /**
     * Pages {@code first} to {@code first + count - 1} of {@code block} have been copied out
     * (their contents at {@link #start} are safe elsewhere): writes to them are allowed again and
     * the writers waiting for them go on. Idempotent.
     */
    void saved(RamBlock block, long first, long count) throws IOException;

    /** Guest writes that had to wait so far. */
    long waits();

    /** The longest such wait, in nanoseconds (0 when none waited). */
    long longestWaitNanos();

    /** The sum of all waits, in nanoseconds. */
    long totalWaitNanos();

    /** The waits by length: element i counts those of 2^i to 2^(i+1) microseconds (element 0: up to 2 us). */
    long[] waitHistogram();

    /**
     * Ends tracking, whatever was saved: every page is writable again and every waiting writer
     * goes on. Idempotent; any thread.
     */
    @Override
    void close();
}
