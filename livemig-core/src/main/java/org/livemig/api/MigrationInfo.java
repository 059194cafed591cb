package org.livemig.api;

/**
 * A snapshot of one side of a migration, as query-migrate reports it.
 *
 * @param state               the status
 * @param totalTimeMillis     from the start to completion (or until now), -1 when not known
 * @param downtimeMillis      the guest's pause at the switchover (source), -1 before it
 * @param transferredBytes    bytes moved so far, every channel counted
 * @param remainingBytes      RAM still to send (source)
 * @param dirtySyncCount      dirty-bitmap syncs so far (QEMU's dirty-sync-count)
 * @param error               why it failed, or null
 */
public record MigrationInfo(MigrationState state, long totalTimeMillis, long downtimeMillis, long transferredBytes,
                            long remainingBytes, long dirtySyncCount, String error) {
}
