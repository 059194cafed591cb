package org.livemig.memory.postcopy;

import org.livemig.memory.GuestRam;
import org.livemig.memory.RamBlock;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.Collection;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import java.util.function.Predicate;

/**
 * Postcopy demand paging on the destination: which pages are received, guest accesses to missing
 * pages blocked and reported as {@link PageFault}s, and pages placed whole. One backend per
 * incoming postcopy migration and {@link GuestRam}; two implementations behind this interface:
 * <ul>
 * <li>{@code checked} ({@link #checked}): portable. While listening, {@link GuestRam}'s guest
 *     accessors test the {@link ReceivedMap} and wait for missing pages; placing copies the page
 *     into RAM, then marks it received.</li>
 * <li>{@code userfaultfd} ({@link #userfaultfd}): Linux. Guest RAM is registered with
 *     userfaultfd in missing mode, so the kernel itself blocks a thread that touches a missing
 *     page and queues a fault event; pages are placed with UFFDIO_COPY, which maps a whole page
 *     at once. QEMU's own mechanism.</li>
 * </ul>
 *
 * <p>Life cycle and who calls what (QEMU's order):
 * <ol>
 * <li>POSTCOPY_ADVISE ({@code mig/dst/main}): create the backend. Precopy pages loaded from now
 *     on are written into RAM as usual and then marked with {@code receivedMap(block).markReceived(page)}.</li>
 * <li>POSTCOPY_RAM_DISCARD ({@code mig/dst/main}, guest not running): {@link #discard}.</li>
 * <li>POSTCOPY_LISTEN ({@code mig/dst/main}, before {@code mig/dst/listen} starts):
 *     {@link #startListening}. From here on, RAM is written only through {@link #placePage} and
 *     {@link #placeZeroPage}.</li>
 * <li>While the guest runs: {@code mig/dst/fault} loops on {@link #pollFault}/{@link #drainFaults}
 *     and requests pages; {@code mig/dst/listen} and {@code mig/dst/preempt} place them.</li>
 * <li>End of the postcopy stream, all pages received ({@code mig/dst/listen}), or teardown:
 *     {@link #close}. A page still missing then is released to the guest as it is in RAM
 *     (userfaultfd: zeros), so close early only when the guest is being destroyed.</li>
 * </ol>
 */
public interface PostcopyBackend extends AutoCloseable {

    /** The portable backend. */
    static PostcopyBackend checked(GuestRam ram) {
        return new CheckedPostcopy(ram);
    }

    /** The userfaultfd backend; fails with the reason when the kernel or process does not allow it. */
    static PostcopyBackend userfaultfd(GuestRam ram) throws IOException {
        return new UserfaultfdPostcopy(ram);
    }

    /** Whether {@link #userfaultfd} can work here, found once by trying it on a scratch page. */
    static Availability userfaultfdAvailability() {
        return UserfaultfdPostcopy.availability();
    }

    /**
     * Whether userfaultfd's write-protect mode (UFFD_FEATURE_PAGEFAULT_FLAG_WP, what a background
     * snapshot needs) is offered here; throws with the reason when userfaultfd cannot be opened.
     */
    static boolean userfaultfdWriteProtect() throws IOException {
        try (Userfaultfd u = Userfaultfd.open()) {
            return (u.features() & Userfaultfd.FEATURE_PAGEFAULT_FLAG_WP) != 0;
        }
    }

    /** userfaultfd when available, else checked, telling {@code log} why it fell back. */
    static PostcopyBackend choose(GuestRam ram, Consumer<String> log) {
        Availability a = userfaultfdAvailability();
        if (a.available()) {
            try {
                return userfaultfd(ram);
            } catch (IOException | RuntimeException e) {
                log.accept("postcopy: userfaultfd backend failed (" + e.getMessage() + "), using checked");
                return checked(ram);
            }
        }
        log.accept("postcopy: userfaultfd unavailable (" + a.reason() + "), using checked");
        return checked(ram);
    }

    /** Whether a backend can be used, and why not. */
    record Availability(boolean available, String reason) {
        public static Availability yes(String how) {
            return new Availability(true, how);
        }

        public static Availability no(String reason) {
            return new Availability(false, reason);
        }
    }

    /** "checked" or "userfaultfd" (as reported in query-migrate). */
    String name();

    GuestRam ram();

    /** The received-page map of {@code block}; the block must have existed when the backend was made. */
    ReceivedMap receivedMap(RamBlock block);

    /**
     * Called by {@code mig/dst/main} for POSTCOPY_RAM_DISCARD, before {@link #startListening}:
     * drops {@code [offset, offset + length)} of {@code block} (page-aligned, inside the block), whose
     * pages are missing again.
     */
    void discard(RamBlock block, long offset, long length) throws IOException;

    /**
     * Called once by {@code mig/dst/main} at POSTCOPY_LISTEN, before the guest runs and before any
     * other thread places pages: starts demand paging, so that from now on a guest access to a
     * missing page blocks and is reported.
     */
    void startListening() throws IOException;

    boolean isListening();

    /**
     * Lets a guest thread that finds a page missing hand its fault on itself, before it waits:
     * {@code handler} runs on that thread and returns true when it has dealt with the fault (asked
     * for the page), false to queue the fault for {@code mig/dst/fault} as usual. It must not
     * throw. This saves a thread wakeup per fault, but only where the fault surfaces on the guest
     * thread ({@code checked}); with {@code userfaultfd} the kernel blocks the thread and only
     * {@code mig/dst/fault} learns of the fault, so this does nothing. Set before {@link #startListening}.
     */
    default void handleFaultsOnGuestThreads(Predicate<PageFault> handler) {}

    boolean isClosed();

    /**
     * Called by {@code mig/dst/fault} (one thread at a time): the next fault, waiting up to
     * {@code timeout}; null on timeout or once closed. Interruptible, at least between short slices.
     */
    PageFault pollFault(long timeout, TimeUnit unit) throws InterruptedException, IOException;

    /** Called by {@code mig/dst/fault}: adds up to {@code max} pending faults to {@code sink} without waiting; returns how many. */
    int drainFaults(Collection<? super PageFault> sink, int max) throws IOException;

    /**
     * Any thread, no lock needed ({@code mig/dst/listen}, {@code mig/dst/preempt}): places page
     * {@code page} of {@code block} from the first {@link RamBlock#PAGE_SIZE} bytes of {@code src},
     * copied whole, then marked received, waking whoever waits for it. Returns false, leaving RAM
     * alone, when the page is already received or another thread is placing it: a received page
     * may have been written by the guest since.
     *
     * @throws IOException when the backend is closed or the kernel refuses the placement
     */
    boolean placePage(RamBlock block, long page, MemorySegment src) throws IOException;

    /** Any thread: as {@link #placePage}, with a page of zeros. */
    boolean placeZeroPage(RamBlock block, long page) throws IOException;

    /**
     * Any thread, idempotent: stops demand paging; no access blocks any more, blocked ones are
     * released, later placements fail. Waits for placements in progress to finish.
     */
    @Override
    void close();
}
