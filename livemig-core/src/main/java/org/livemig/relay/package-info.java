/**
 * Sitting on a live QEMU migration: {@link org.livemig.relay.MigrationRelay} forwards a source's
 * stream to a destination byte for byte while decoding it and carries the return path back;
 * {@link org.livemig.relay.ReturnPathResponder} lets a reader that is itself the end of a
 * migration ({@code livemig analyze --listen}) answer a source that opened a return path.
 * A {@link org.livemig.relay.FaultPlan} of {@link org.livemig.relay.Fault}s makes it a chaos
 * relay ({@code livemig relay --fault}): cuts, stalls, rate caps, delays and flipped bytes on any
 * direction, from a byte count or a point the decoder sees. Device-state packets on multifd
 * channels are passed on undecoded. Transports come from {@link org.livemig.transport}, decoding
 * from {@link org.livemig.analyze}.
 *
 * <p>Threads: the relay's own ({@code relay-return-path}, {@code relay-multifd-n},
 * {@code relay-preempt}, {@code relay-delay-CHANNEL}, {@code relay-watchdog}) beside the
 * caller's; there is no machine and no BQL here. Every wait is bounded by the idle timeout.
 */
package org.livemig.relay;
