package org.livemig.transport;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The destination of an {@code exec:} migration: {@link #accept()} starts the command, once, and
 * the connection reads its standard output.
 *
 * <p>Threads: any; the state is one atomic.
 */
final class ExecListener implements MigrationListener {
    private static final int OPEN = 0;
    private static final int ACCEPTED = 1;
    private static final int CLOSED = 2;

    private final MigrationAddress.Exec addr;
    private final Duration exitTimeout;
    private final AtomicInteger state = new AtomicInteger(OPEN);

    ExecListener(MigrationAddress.Exec addr, Duration exitTimeout) throws IOException {
        if (!Files.isExecutable(Path.of("/bin/sh"))) {
            throw new IOException("cannot run " + addr.uri() + ": /bin/sh is not executable");
        }
        this.addr = addr;
        this.exitTimeout = exitTimeout;
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
        return ExecConnection.start(addr, false, exitTimeout);
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
