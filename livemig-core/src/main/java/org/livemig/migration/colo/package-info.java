/**
 * COLO (COarse-grain LOck-stepping), QEMU's fault tolerance, as the seed leaves it: after an
 * ordinary initial migration a primary and a secondary both run the guest, the primary takes
 * checkpoints ({@link org.livemig.migration.colo.ColoPrimary}) that the secondary loads
 * ({@link org.livemig.migration.colo.ColoSecondary}, with its RAM cache
 * {@link org.livemig.migration.colo.ColoCache}), their serial output is compared
 * ({@link org.livemig.migration.colo.OutputCompare}, {@link org.livemig.migration.colo.OutputMirror}),
 * and {@code x-colo-lost-heartbeat} makes either one go on alone. {@link org.livemig.migration.colo.ColoState}
 * holds the mode and failover state that query-colo-status and COLO_EXIT report.
 *
 * <p>Threads: the primary's checkpoint loop runs on {@code mig/src/main}; the secondary's on
 * {@code mig/dst/colo}, which {@code mig/dst/main} starts and waits for without the BQL
 * ({@code colo_incoming_wait}); {@code colo-compare} moves the secondary's output. The BQL is taken
 * only to stop and start a guest, read or apply device state, and flush the RAM cache: no IO
 * happens under it (the secondary reads a whole checkpoint before it takes the lock). The failover
 * runs as a bottom half on {@code main} with the BQL held; x-colo-lost-heartbeat returns at once.
 */
package org.livemig.migration.colo;
