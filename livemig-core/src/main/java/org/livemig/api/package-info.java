/**
 * livemig's library API: what an application embedding live migration uses, and the only package
 * the {@code org.livemig.core} module exports.
 *
 * <p>A {@link org.livemig.api.VirtualMachine} is a machine to migrate (guest RAM, devices, vCPUs
 * running a workload, its main loop and big lock); {@link org.livemig.api.VirtualMachine#migrate}
 * sends it to a URI in QEMU's syntax ({@code tcp:}, {@code unix:}, {@code file:}, {@code exec:})
 * and {@link org.livemig.api.VirtualMachine#listen} receives one. Options, states and results are
 * immutable values with QEMU's names; nothing here exposes a mutable field, a JSON library type or
 * an internal class, so the internals may change without breaking an embedding application.
 *
 * <p>Threads: every method may be called from any application thread that does not hold the
 * machine's big lock (no application thread ever does); a method that changes the machine runs
 * its change on the machine's main loop and waits for it, bounded.
 */
package org.livemig.api;
