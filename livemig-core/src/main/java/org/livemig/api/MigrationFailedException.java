package org.livemig.api;

/** A migration ended failed or cancelled, or could not start; the message says why (QEMU's words where QEMU has them). */
public final class MigrationFailedException extends Exception {
    private final transient MigrationInfo info;

    public MigrationFailedException(String message, MigrationInfo info) {
        super(message);
        this.info = info;
    }

    /** The side's state when it ended, or null when the migration never started. */
    public MigrationInfo info() {
        return info;
    }
}
