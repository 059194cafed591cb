package org.livemig.transport;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The destination of a {@code file:} migration. {@link Transports#listen} checks that the file
 * can be read; {@link #accept()} opens it, once.
 *
 * <p>Threads: any; the state is one atomic.
 */
final class FileListener implements MigrationListener {
    private static final int OPEN = 0;
    private static final int ACCEPTED = 1;
    private static final int CLOSED = 2;

    private final MigrationAddress.File addr;
    private final AtomicInteger state = new AtomicInteger(OPEN);

    private FileListener(MigrationAddress.File addr) {
        this.addr = addr;
    }

    static FileListener check(MigrationAddress.File addr) throws IOException {
        Path path = addr.path();
        if (!Files.exists(path)) {
            throw new IOException("cannot read " + addr.uri() + ": no such file");
        }
        if (Files.isDirectory(path)) {
            throw new IOException("cannot read " + addr.uri() + ": it is a directory");
        }
        if (!Files.isReadable(path)) {
            throw new IOException("cannot read " + addr.uri() + ": permission denied");
        }
        return new FileListener(addr);
    }

    @Override
    public MigrationAddress boundAddress() {
        return addr;
    }

    @Override
    public MigrationConnection accept() throws IOException {
        if (!state.compareAndSet(OPEN, ACCEPTED)) {
            throw new IOException(state.get() == CLOSED
                    ? "migration listener " + addr.uri() + " is closed"
                    : "migration listener " + addr.uri() + " has already given its one connection");
        }
        return FileConnection.open(addr);
    }

    @Override
    public void close() {
        state.set(CLOSED);
    }

    @Override
    public String toString() {
        return "listener " + addr.uri();
    }
}
