/**
 * QEMU's VMState in Java: declarative, versioned device state ({@link org.livemig.vmstate.VMStateDescription}),
 * its byte-exact encoder and a lock-free decoder into staged values ({@link org.livemig.vmstate.VmValue}),
 * applied later under the BQL ({@link org.livemig.vmstate.VmStateCodec}); the vmdesc JSON trailer
 * ({@link org.livemig.vmstate.VmDesc}); the per-machine list of what is saved
 * ({@link org.livemig.vmstate.SaveStateRegistry}) and the SPI of iterative handlers such as RAM and
 * accelerators ({@link org.livemig.vmstate.SaveVmHandlers}, with what a migration offers them:
 * {@link org.livemig.vmstate.SaveOptions}, {@link org.livemig.vmstate.DeviceStateChannels},
 * {@link org.livemig.vmstate.LoadContext}); and schema pins that catch incompatible description
 * changes ({@link org.livemig.vmstate.VmStateSchema}).
 *
 * <p>Wire facts follow docs/qemu-stream-format.md, sections 4 and 5.
 *
 * <p>Threads: decoding a section into staged values needs no lock and may block on the stream
 * ({@code mig/dst/main}); reading a device's state to encode it and applying staged values
 * (with pre- and post-load hooks) run with the BQL held, which the callers take briefly; a
 * description may narrow that to the steps that need it
 * ({@link org.livemig.vmstate.VMStateDescription.Builder#bqlOnlyFor}, {@link org.livemig.vmstate.LoadHook}).
 */
package org.livemig.vmstate;
