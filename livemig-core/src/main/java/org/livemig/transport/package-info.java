/**
 * Where migration bytes travel: QEMU's migration URIs ({@code tcp:}, {@code unix:},
 * {@code file:}, {@code exec:}) parsed into a {@link org.livemig.transport.MigrationAddress},
 * opened by {@link org.livemig.transport.Transports} into a
 * {@link org.livemig.transport.MigrationConnection} (a byte channel each way, over blocking NIO or
 * process pipes), and a {@link org.livemig.transport.FaultInjectingConnection} that stalls, cuts,
 * corrupts or slows one at exact byte counts for tests, or at the named points of a migration
 * ({@link org.livemig.transport.FaultPoints}) that the migration announces as it passes them.
 *
 * <p>Transports only move bytes: they know nothing of the stream format, the migration state or
 * the monitor. Every call that opens, accepts, reads or writes may block, so none is made with
 * the BQL held; {@link org.livemig.transport.MigrationConnection#shutdown()} is the one call
 * meant for another thread (yank, cancel).
 */
package org.livemig.transport;
