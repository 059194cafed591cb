package org.livemig.api;

import java.time.Duration;
import java.util.concurrent.TimeoutException;

/** A migration leaving a {@link VirtualMachine}; from {@link VirtualMachine#migrate}. */
public final class OutgoingMigration {
    private final VirtualMachine vm;
    private final SideWatch watch;

    OutgoingMigration(VirtualMachine vm, SideWatch watch) {
        this.vm = vm;
        this.watch = watch;
    }

    /** Its status now. */
    public MigrationState state() {
        return watch.state();
    }

    /** What query-migrate says of it now. */
    public MigrationInfo info() {
        return vm.queryMigrate();
    }

    /**
     * Waits until it completes. On success the source's guest is paused for good (QEMU's
     * postmigrate): it runs on the destination now.
     *
     * @throws MigrationFailedException it failed or was cancelled (the source's guest runs on, unharmed)
     * @throws TimeoutException         it did not end within {@code timeout} (it goes on; {@link #cancel} it if you wish)
     */
    public MigrationInfo awaitCompletion(Duration timeout) throws MigrationFailedException, TimeoutException,
            InterruptedException {
        watch.awaitFinal(timeout);
        MigrationInfo info = info();
        if (info.state() != MigrationState.COMPLETED) {
            throw new MigrationFailedException("outgoing migration " + info.state().qemuName()
                    + (info.error() != null ? ": " + info.error() : ""), info);
        }
        return info;
    }

    /** QMP's migrate_cancel: the migration ends cancelled and the guest goes on running here. */
    public void cancel() {
        vm.execute("migrate_cancel", null);
    }

    /** QMP's migrate-start-postcopy (needs the postcopy-ram capability on both sides). */
    public void startPostcopy() {
        vm.execute("migrate-start-postcopy", null);
    }
}
