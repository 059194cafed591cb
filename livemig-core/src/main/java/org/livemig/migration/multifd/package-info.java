/**
 * multifd, QEMU 7.2's layout: non-zero pages travel on extra connections in packets of up to 128
 * pages ({@link org.livemig.migration.multifd.MultifdSender}, {@link org.livemig.migration.multifd.MultifdReceiver});
 * the main stream keeps zero pages, device state and an EOS per RAM section, at which every
 * channel syncs, so that no page of one pass lands after the next pass's copy. At the switchover
 * an iterative device's final state may travel on the channels too, as QEMU 10's device-state
 * packets ({@code MultifdSender.queueDeviceState}, {@code MultifdReceiver.DeviceStateSink}).
 *
 * <p>Threads: {@code mig/src/send_n} and {@code mig/dst/recv_n}, one per channel, read guest RAM
 * or write it straight in and never take the BQL (a receiving channel hands device-state packets
 * to their device, which may block it while the load threads catch up); the migration threads hand pages over and wait
 * at syncs without it. A channel's failure is kept by the receiver and fails the main thread's next
 * sync. Knows no machine: only RAM blocks, the stream and the connections.
 */
package org.livemig.migration.multifd;
