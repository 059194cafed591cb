package org.livemig.api;

import java.time.Duration;
import java.util.concurrent.TimeoutException;

/** A migration arriving at a {@link VirtualMachine}; from {@link VirtualMachine#listen}. */
public final class IncomingMigration {
    private final VirtualMachine vm;
    private final SideWatch watch;
    private final String uri;

    IncomingMigration(VirtualMachine vm, SideWatch watch, String uri) {
        this.vm = vm;
        this.watch = watch;
        this.uri = uri;
    }

    /** The URI the source should migrate to (a {@code tcp:HOST:0} resolved to its port). */
    public String uri() {
        return uri;
    }

    public MigrationState state() {
        return watch.state();
    }

    /**
     * Waits until the whole machine has arrived. A failed load leaves this machine ready for a
     * new {@link VirtualMachine#listen} (it never exits the process).
     *
     * @throws MigrationFailedException the load failed (with what was wrong and where)
     */
    public MigrationInfo awaitCompletion(Duration timeout) throws MigrationFailedException, TimeoutException,
            InterruptedException {
        watch.awaitFinal(timeout);
        MigrationState s = watch.state();
        MigrationInfo info = new MigrationInfo(s, -1, -1, watch.transferred(), 0, 0, watch.error());
        if (s != MigrationState.COMPLETED) {
            throw new MigrationFailedException("incoming migration " + s.qemuName()
                    + (info.error() != null ? ": " + info.error() : ""), info);
        }
        return info;
    }
}
