package org.livemig.migration.postcopy;

import java.io.IOException;
import java.lang.System.Logger.Level;
import org.livemig.machine.Machine;
import org.livemig.migration.RamSaver;
import org.livemig.migration.RamStats;
import org.livemig.migration.ReturnPathReader;
import org.livemig.migration.StatusMachine;
import org.livemig.stream.MigrationFile;
import org.livemig.transport.FaultSpec;
import org.livemig.transport.MigrationAddress;
import org.livemig.transport.MigrationConnection;

/**
 * The outgoing migration as its postcopy phase ({@link PostcopySource}) and its recovery
 * ({@link OutgoingRecovery}) see it: the one seam between them and {@code Outgoing}, which
 * implements it. Every method is called on {@code mig/src/main} unless it says otherwise.
 */
public interface OutgoingHost {
    Machine machine();

    StatusMachine status();

    RamStats ram();

    /** The migration's own address (where the preempt channel connects). */
    MigrationAddress address();

    /** Whether the postcopy-preempt capability is on. */
    boolean preempt();

    /** Where switch-over accounts are logged: INFO, FINE for a warm-up scratch migration. */
    Level accountLevel();

    /** True once cancelled. Any thread. */
    boolean cancelled();

    /** Called without the BQL; blocks on IO: connects one more channel to {@code address}, with test faults. */
    MigrationConnection connect(MigrationAddress address, FaultSpec faults) throws IOException;

    /** The main connection is now {@code c} (a recovery): cancel and yank shut this one. */
    void replaceMainConnection(MigrationConnection c);

    /** Shuts the main connection down, so that IO on it fails at once (migrate-pause). Any thread. */
    void shutdownMainConnection();

    /** Closes the main connection (a broken one, before a recovery). */
    void closeMainConnection();

    /** The current return path (a recovery opens a new one). */
    ReturnPathReader returnPath();

    /** Reads the return path of {@code c} on a new {@code mig/src/rp_thr} (a recovery's new channel). */
    ReturnPathReader startReturnPath(MigrationConnection c, RamSaver saver);

    /** Sends PING {@code value} on {@code f} and records when, for the round trip. */
    void ping(MigrationFile f, int value) throws IOException;

    /** Sets {@code f}'s rate limit from the current parameters (max-postcopy-bandwidth once {@code postcopyPhase}). */
    void applyRateLimit(MigrationFile f, boolean postcopyPhase);

    /** The rate window's budget is spent: flush, then park until it ends (at least {@code minNanos}). */
    void waitOutRateWindow(MigrationFile f, long minNanos) throws IOException;

    /** The guest was paused {@code millis} for the switch (query-migrate's downtime). */
    void switchedOver(long millis);
}
