/**
 * Postcopy, both sides: the source's switch and postcopy-active loop with its preempt channel
 * ({@link org.livemig.migration.postcopy.PostcopySource}), the destination's ADVISE, DISCARD,
 * LISTEN and RUN with its fault, listen and preempt threads
 * ({@link org.livemig.migration.postcopy.PostcopyIncoming}), and recovery on each side
 * ({@link org.livemig.migration.postcopy.OutgoingRecovery},
 * {@link org.livemig.migration.postcopy.IncomingRecovery}). They see their migration only through
 * {@link org.livemig.migration.postcopy.OutgoingHost} and {@link org.livemig.migration.postcopy.IncomingHost}.
 *
 * <p>Threads: {@code mig/src/main} runs the source's loop; {@code mig/src/rp_thr} sends requested
 * pages on the preempt channel; {@code mig/dst/listen} loads the rest of the stream while the
 * guest runs; {@code mig/dst/fault} turns faults into requests (with the checked backend the
 * faulting vCPU sends its own); {@code mig/dst/preempt} places requested pages. None of them holds
 * the BQL across IO; the source takes it to stop the guest and read its devices, the destination
 * to run the guest (a bottom half on {@code main}). A page request is never sent under the BQL.
 * {@link org.livemig.migration.postcopy.RequestThreads} may put the request threads in SCHED_FIFO.
 */
package org.livemig.migration.postcopy;
