package org.livemig.migration;

/** What the monitor turns into MIGRATION and MIGRATION_PASS events. Called on the thread that made the change. */
public interface MigrationEvents {
    default void statusChanged(MigrationStatus status) {}

    default void pass(long pass) {}
}
