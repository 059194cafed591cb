/**
 * Demand paging for an incoming postcopy: a {@link org.livemig.memory.postcopy.PostcopyBackend}
 * tracks which pages have arrived ({@link org.livemig.memory.postcopy.ReceivedMap}), places
 * pages atomically, and turns a guest access to a missing page into a
 * {@link org.livemig.memory.postcopy.PageFault}. Two backends: userfaultfd, where the kernel
 * blocks the faulting thread ({@link org.livemig.memory.postcopy.UserfaultfdPostcopy} over the
 * ioctl binding {@link org.livemig.memory.postcopy.Userfaultfd}), and checked guest accessors
 * ({@link org.livemig.memory.postcopy.CheckedPostcopy}) where userfaultfd is not allowed.
 * {@link org.livemig.memory.postcopy.PlacementWarmUp} brings the placement paths to compiled code.
 *
 * <p>Threads: vCPU threads fault and wait (without the BQL: a thread holding it must not wait for
 * a page, so the migration layer never asks for one under it); the placing threads
 * ({@code mig/dst/listen}, {@code mig/dst/preempt}) place; {@code mig/dst/fault} drains faults.
 * The BQL is never taken here.
 *
 * <p>The same two mechanisms track writes for a background snapshot: a
 * {@link org.livemig.memory.postcopy.WriteTracker} write-protects all of guest RAM when the
 * snapshot starts (userfaultfd's write-protect mode, or the checked accessors), turns a guest
 * write to a page not yet saved into a {@link org.livemig.memory.postcopy.PageFault} and blocks
 * the writer until the saver reports the page {@code saved}; {@code close} lets every writer go.
 * A writer blocked in userfaultfd waits in a native store, so a safepoint never waits for it.
 */
package org.livemig.memory.postcopy;
