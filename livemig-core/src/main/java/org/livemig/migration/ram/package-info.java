/**
 * What the RAM saver and loader do to a page besides sending it as it is: QEMU 7.2's
 * {@code xbzrle} (the source's page cache, {@link org.livemig.migration.ram.XbzrleCache}, and
 * deltas), its {@code compress} capability (page compression on a pool of threads on each side)
 * and {@code zero-page-detection}. The wire formats are the codecs of {@code stream}
 * ({@link org.livemig.stream.XbzrleCodec}, {@link org.livemig.stream.CompressedPageCodec}); this
 * package holds the state and threads around them. The RAM saver and loader call into it through
 * {@link org.livemig.migration.ram.TargetPageSaver} and {@link org.livemig.migration.ram.EncodedPageLoader}. mapped-ram's file layout lives here too.
 *
 * <p>Threads and the BQL: nothing here takes the BQL or needs it.
 * <ul>
 * <li>{@code mig/src/main} owns the TargetPageSaver, the XBZRLE cache and the compress threads'
 *     hand-over; the cache is resized only on it (a size set from the monitor is picked up at its
 *     next page).</li>
 * <li>{@code mig/src/compress_n} (QEMU's "compress" threads) check and deflate pages read straight
 *     from guest RAM and hand whole records back to {@code mig/src/main}, which alone writes the
 *     main channel.</li>
 * <li>{@code mig/dst/main} (or {@code mig/dst/listen} in postcopy) owns the EncodedPageLoader:
 *     XBZRLE deltas are applied on it, in place; compressed pages go to
 *     {@code mig/dst/decompress_n} (QEMU's "decompress" threads), which write guest RAM without a
 *     lock (as every page load does) and are waited for at each RAM section's end.</li>
 * <li>mapped-ram (QEMU 9.0): {@link org.livemig.migration.ram.MappedRamSaver} and
 *     {@link org.livemig.migration.ram.MappedRamLoader} put each page at its fixed place in a
 *     {@code file:}; with multifd, channel threads ({@code mig/src/send_n},
 *     {@code mig/dst/recv_n}) write or read runs of pages in parallel with positional IO, on
 *     file descriptors of their own ({@link org.livemig.migration.ram.DirectIo}: O_DIRECT under
 *     {@code direct-io}); {@code mig/src/main} or the loading thread owns the layout and hands
 *     them runs through bounded queues.</li>
 * </ul>
 * Every wait between these threads is a bounded slice that ends on failure, cancel or shutdown.
 * Zero-page detection with multifd runs on the multifd channel threads ({@code migration.multifd}).
 */
package org.livemig.migration.ram;
