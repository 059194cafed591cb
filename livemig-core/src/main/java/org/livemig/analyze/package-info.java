/**
 * Reading QEMU migration streams generically, as {@code livemig analyze} and QEMU's
 * scripts/analyze-migration.py do: {@link org.livemig.analyze.StreamReader} walks any version-3
 * stream front to back over a channel and reports its records to a
 * {@link org.livemig.analyze.StreamVisitor}; {@link org.livemig.analyze.Analysis} collects them into
 * analyze-migration.py's JSON shapes and a sparse {@link org.livemig.analyze.RamImage};
 * {@link org.livemig.analyze.StreamRewriter} writes the decoded form back byte for byte.
 *
 * <p>Device sections are decoded with the stream's own vmdesc trailer, or, for streams without
 * one, with QEMU's {@code -dump-vmstate} output; nothing here knows a device, except that
 * livemig's accelerators' iterative sections ({@code NAME/accel}) are read record by record
 * with {@link org.livemig.stream.AcceleratorState}. Depends only on
 * {@code org.livemig.stream} and Jackson (checked by an ArchUnit test).
 *
 * <p>Threads: a reader runs on its caller's thread; there is no machine and no BQL here.
 */
package org.livemig.analyze;
