package org.livemig.migration.ram;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.OpenOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * Opening a migration file for mapped-ram's channels, with O_DIRECT when asked
 * ({@code com.sun.nio.file.ExtendedOpenOption.DIRECT}, module jdk.unsupported). With O_DIRECT
 * every transfer must start at a file offset and a memory address aligned to the file system's
 * block size and be a multiple of it; mapped-ram's page regions and guest RAM are page-aligned,
 * so that holds wherever the block size is at most a page.
 */
public final class DirectIo {
    private DirectIo() {}

    /** Opens {@code path} for a channel; the error says when the file system refuses O_DIRECT. */
    static FileChannel open(Path path, boolean direct, StandardOpenOption mode) throws IOException {
        if (!direct) {
            return FileChannel.open(path, mode);
        }
        long block = Files.getFileStore(path).getBlockSize();
        if (block > org.livemig.memory.RamBlock.PAGE_SIZE) {
            throw new IOException("direct-io: the file system of " + path + " has blocks of " + block
                    + " bytes, more than a page: mapped-ram's transfers would not be aligned to them");
        }
        try {
            return FileChannel.open(path, new OpenOption[] {mode, com.sun.nio.file.ExtendedOpenOption.DIRECT});
        } catch (IOException | UnsupportedOperationException e) {
            throw new IOException("direct-io: cannot open " + path + " with O_DIRECT (the file system may not allow it): "
                    + e.getMessage(), e);
        }
    }

    /** Whether the file system of directory {@code dir} allows O_DIRECT (tries a scratch file there). */
    public static boolean supported(Path dir) {
        Path probe = null;
        try {
            probe = Files.createTempFile(dir, ".livemig-odirect", ".probe");
            try (FileChannel ch = open(probe, true, StandardOpenOption.WRITE)) {
                return ch.isOpen();
            }
        } catch (IOException | RuntimeException e) {
            return false;
        } finally {
            if (probe != null) {
                try {
                    Files.deleteIfExists(probe);
                } catch (IOException ignored) {
                    // a probe left behind is harmless
                }
            }
        }
    }
}
