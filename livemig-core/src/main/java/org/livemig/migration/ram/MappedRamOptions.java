package org.livemig.migration.ram;

import java.nio.file.Path;

/**
 * How a mapped-ram migration uses its file.
 *
 * @param path             the {@code file:} URI's file
 * @param offset           where the stream starts in it ({@code ,offset=}); mapped-ram offsets are absolute
 * @param channels         multifd channels that write (or read) pages in parallel, each on a file
 *                         descriptor of its own; 0 without multifd (the migration thread does it)
 * @param directIo         the channels open the file with O_DIRECT (only with channels, as in QEMU)
 * @param detectZeroPages  zero pages are left out of the file (zero-page-detection legacy)
 */
public record MappedRamOptions(Path path, long offset, int channels, boolean directIo, boolean detectZeroPages) {
    public MappedRamOptions {
        if (channels < 0 || channels > 255) {
            throw new IllegalArgumentException("mapped-ram channels must be 0..255: " + channels);
        }
        if (offset < 0) {
            throw new IllegalArgumentException("negative file offset " + offset);
        }
    }
}
