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
 */
package org.livemig.memory.postcopy;
