package org.livemig.migration;

/** Migration status with QEMU's names (qapi/migration.json MigrationStatus). Public API: a test pins the names. */
public enum MigrationStatus {
    NONE("none"),
    SETUP("setup"),
    CANCELLING("cancelling"),
    CANCELLED("cancelled"),
    ACTIVE("active"),
    POSTCOPY_ACTIVE("postcopy-active"),
    POSTCOPY_PAUSED("postcopy-paused"),
    POSTCOPY_RECOVER_SETUP("postcopy-recover-setup"),
    POSTCOPY_RECOVER("postcopy-recover"),
    COMPLETED("completed"),
    FAILED("failed"),
    COLO("colo"),
    PRE_SWITCHOVER("pre-switchover"),
    DEVICE("device"),
    WAIT_UNPLUG("wait-unplug");

    private final String qemuName;

    MigrationStatus(String qemuName) {
        this.qemuName = qemuName;
    }

    public String qemuName() {
        return qemuName;
    }

    /** True for the states a migration ends in. */
    public boolean isFinal() {
        return this == COMPLETED || this == FAILED || this == CANCELLED;
    }

    /** True once postcopy has started, until the migration ends (QEMU's migration_in_postcopy). */
    public boolean isPostcopy() {
        return this == POSTCOPY_ACTIVE || this == POSTCOPY_PAUSED || this == POSTCOPY_RECOVER_SETUP
                || this == POSTCOPY_RECOVER;
    }

    /** True while a migration is in progress (capabilities and parameters are frozen). */
    public boolean isActive() {
        return this != NONE && !isFinal();
    }
}
