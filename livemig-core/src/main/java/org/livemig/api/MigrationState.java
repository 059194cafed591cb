package org.livemig.api;

/** A migration's status, as QEMU's query-migrate names it ({@link #qemuName()}). */
public enum MigrationState {
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

    MigrationState(String qemuName) {
        this.qemuName = qemuName;
    }

    public String qemuName() {
        return qemuName;
    }

    /** Completed, failed or cancelled: nothing more will happen. */
    public boolean isFinal() {
        return this == COMPLETED || this == FAILED || this == CANCELLED;
    }

    static MigrationState ofQemuName(String name) {
        for (MigrationState s : values()) {
            if (s.qemuName.equals(name)) {
                return s;
            }
        }
        throw new IllegalArgumentException("unknown migration status '" + name + "'");
    }
}
