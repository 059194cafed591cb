/**
 * QEMU's migration subsystem: a machine's {@link org.livemig.migration.Migration} (capabilities,
 * parameters, the current outgoing and incoming migration, query-migrate), the source
 * ({@link org.livemig.migration.Outgoing}: setup, iterate, switchover, complete) and the
 * destination ({@link org.livemig.migration.Incoming}: listen, load, complete or clean up), the
 * stream's section loop ({@link org.livemig.migration.SaveVm}, {@link org.livemig.migration.LoadVm}),
 * the RAM section ({@link org.livemig.migration.RamSaver}, {@link org.livemig.migration.RamLoader}),
 * accelerators' iterative sections ({@link org.livemig.migration.AcceleratorHandlers}), switchover-ack
 * and the destination's load threads ({@link org.livemig.migration.DeviceLoadContext},
 * {@link org.livemig.migration.LoadThreads}),
 * the return path, the status machine and statistics, snapshots, and the start-up
 * {@link org.livemig.migration.WarmUp}. Sub-packages: {@code postcopy} (the switch, page requests,
 * recovery), {@code multifd} (page channels).
 *
 * <p>Threads: commands arrive on {@code main} with the BQL held and return at once;
 * {@code mig/src/main} sends and {@code mig/dst/main} loads without it, taking it only to stop or
 * start the guest, read or apply device state, synchronise CPUs and sync the dirty bitmap;
 * {@code mig/src/rp_thr} reads the return path; {@code mig/dst/accept} takes connections;
 * {@code mig/dst/load_n} load devices' state that arrives on the multifd channels, taking the BQL
 * only for the steps a device declares need it, while {@code mig/dst/main} waits for them at EOF
 * with the BQL released.
 * Nothing holds the BQL across IO: methods that block on IO assert they do not hold it, and each
 * method that asserts either way says so in the first sentence of its javadoc.
 */
package org.livemig.migration;
