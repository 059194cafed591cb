package org.livemig.migration.postcopy;

import java.io.IOException;
import org.livemig.machine.Machine;
import org.livemig.migration.IncomingReturnPath;
import org.livemig.migration.RamStats;
import org.livemig.migration.StatusMachine;
import org.livemig.stream.MigrationFile;
import org.livemig.transport.MigrationAddress;
import org.livemig.transport.MigrationConnection;

/**
 * The incoming migration as the destination's postcopy ({@link PostcopyIncoming}) and its
 * recovery ({@link IncomingRecovery}) see it: the one seam between them and {@code Incoming},
 * which implements it. Threads are named per method.
 */
public interface IncomingHost {
    Machine machine();

    StatusMachine status();

    RamStats ram();

    /** How the request threads ({@code mig/dst/fault}, {@code mig/dst/preempt}) are scheduled. */
    RequestThreads requestThreads();

    /** Called without the BQL; blocks on IO: the migration's TLS (or none) on a connection just accepted. */
    org.livemig.transport.MigrationConnection secure(org.livemig.transport.MigrationConnection accepted)
            throws java.io.IOException;

    /** Whether this migration emits trace events (a warm-up's scratch migrations do not). */
    boolean traced();

    /** The current return path (a recovery opens a new one). */
    IncomingReturnPath returnPath();

    /** POSTCOPY_RUN was read: the guest starts here, from a bottom half on the main loop. */
    void runGuest();

    /**
     * Called without the BQL on {@code mig/dst/listen}, at the end of the postcopy stream: waits
     * until {@code mig/dst/main} has finished the package (device state, RUN).
     *
     * @throws IOException when it has not within {@code millis}, or failed
     */
    void awaitPackageLoaded(long millis) throws IOException, InterruptedException;

    /** The listen thread loaded the whole postcopy stream: complete, from the main loop. */
    void completed();

    /** Postcopy failed (listen, fault or preempt thread): fail the migration unless it ended. */
    void failed(String message);

    /** Shuts the main channel so that the listen thread pauses postcopy (migrate-pause). Any thread. */
    boolean pause();

    /** Whether postcopy-preempt is on here (a recovery then takes a second connection). */
    boolean preempt();

    /** Shuts and closes the main and preempt channels (broken, before a recovery). */
    void dropChannels();

    /**
     * Called with the BQL held: the source's recovery connection is the main channel from now on,
     * with a return path on it. Returns a reader of it for the listen thread.
     */
    MigrationFile adoptChannel(MigrationConnection c);

    /** The source's new preempt connection (a recovery's second one). Accept thread. */
    void preemptConnected(MigrationConnection c);

    /** The recovery listener is bound to {@code a} (a tcp port 0 resolved). */
    void boundTo(MigrationAddress a);

    /** True once the incoming state is torn down: nothing may wait for a recovery any more. */
    boolean destroyed();
}
