/**
 * QEMU's migration stream, version 3, as bytes: {@link org.livemig.stream.MigrationFile} (QEMU's
 * QEMUFile: a buffered big-endian reader or writer over one channel, with a sticky first error,
 * byte offsets for errors, gathered writes of guest RAM and a rate limit), the wire's constants
 * ({@link org.livemig.stream.QemuStream}), and one codec per wire structure, each with its byte
 * layout drawn: section headers and footers ({@link org.livemig.stream.SectionHeader}), the RAM
 * section's records ({@link org.livemig.stream.RamPageRecord}), the postcopy commands, the
 * return-path messages ({@link org.livemig.stream.ReturnPathCodec}), multifd packets
 * ({@link org.livemig.stream.MultifdPacket}, with QEMU 10's device-state packets), an accelerator's
 * records ({@link org.livemig.stream.AcceleratorState}); and JSON string quoting as QEMU and Python write it
 * ({@link org.livemig.stream.JsonText}).
 *
 * <p>Codecs frame and check; they decide nothing about what a record means to a machine, and
 * know no machine, RAM block or thread. A {@code MigrationFile} belongs to one thread at a time;
 * its reads and writes block on IO, so callers never hold the BQL around them.
 */
package org.livemig.stream;
