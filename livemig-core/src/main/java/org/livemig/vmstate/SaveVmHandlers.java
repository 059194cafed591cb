package org.livemig.vmstate;

import java.io.IOException;
import org.livemig.stream.MigrationFile;

/**
 * QEMU's SaveVMHandlers for state saved by custom code rather than a VMSD, chiefly the iterative
 * "ram" handler: a START section at setup, PART sections while the guest runs, an END section
 * once it is stopped. Each method writes or reads one section body; the section header and footer
 * are the caller's.
 *
 * <p>Source-side methods run on the outgoing migration thread; {@link #saveComplete} runs with
 * the guest stopped. {@link #loadState} runs on the incoming migration thread without the BQL.
 */
public interface SaveVmHandlers {
    /** False to leave this handler out of a migration (no sections at all). */
    default boolean isActive() {
        return true;
    }

    /** Writes the body of the START section. */
    void saveSetup(MigrationFile f) throws IOException;

    /** Sends part of the pending data as the body of a PART section; true when nothing is pending. */
    boolean saveIterate(MigrationFile f) throws IOException;

    /** Called with the guest stopped: writes the body of the END section. */
    void saveComplete(MigrationFile f) throws IOException;

    /** Estimate of the bytes still to send. */
    long pendingBytes();

    /** Called without the BQL: reads one START/PART/END body written at {@code versionId}. */
    void loadState(MigrationFile f, int versionId) throws IOException;

    default void saveCleanup() {}

    default void loadCleanup() {}

    // ------------------------------------------------------------------ live devices (QEMU's later hooks)

    /** Source, before {@link #saveSetup}: what this migration does (QEMU's handlers ask the migration). */
    default void savePrepare(SaveOptions options) {}

    /**
     * Source: whether the current pass over this handler's state has sent everything that was
     * pending at its start. The migration syncs dirty state and decides on the switchover only
     * when every handler's pass is complete.
     */
    default boolean passComplete() {
        return pendingBytes() == 0;
    }

    /**
     * Source, at the end of a pass: moves what was dirtied since the last sync into what is
     * pending (QEMU's state_pending_exact); returns the bytes newly pending. Called with the BQL held.
     */
    default long syncDirty() {
        return 0;
    }

    /**
     * Source: true when this handler sends its final state over the multifd channels at the
     * switchover (QEMU 10's save_live_complete_precopy_thread); a SWITCHOVER_START command then
     * precedes the END sections.
     */
    default boolean completesOverMultifd() {
        return false;
    }

    /**
     * Source, with the guest stopped, without the BQL, before any END section: a handler that
     * {@link #completesOverMultifd completes over multifd} queues its final state on the channels
     * now, ahead of RAM's last pages, so that the destination loads it while those still arrive
     * (QEMU 10 starts its save_live_complete_precopy_thread here too); its END section then only
     * refers to it. Default: nothing.
     */
    default void saveCompleteMultifd() throws IOException {}

    /** Destination, before the first section (QEMU's load_setup). Called without the BQL. */
    default void loadSetup(LoadContext context) throws IOException {}

    /**
     * Destination: this handler approves the switchover itself once it has loaded its initial
     * data (QEMU's switchover_ack_needed), with {@link LoadContext#approveSwitchover}.
     */
    default boolean switchoverAckNeeded() {
        return false;
    }

    /** Destination: SWITCHOVER_START was read: the source has stopped (QEMU's switchover_start). Called without the BQL. */
    default void switchoverStart() throws IOException {}

    /**
     * Destination, on a multifd channel thread without the BQL: the data of one device-state
     * packet for this handler (QEMU's load_state_buffer); {@code at} is where it starts in its
     * channel, for errors. May block while the handler's load threads catch up.
     */
    default void loadStateBuffer(byte[] data, long at) throws IOException {
        throw new java.io.IOException("this section takes no device-state packets");
    }
}
