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
}
