package org.livemig.api;

/** The migration capabilities livemig implements, with QEMU's names ({@link #qemuName()}). */
public enum MigrationCapability {
    AUTO_CONVERGE("auto-converge"),
    COMPRESS("compress"),
    EVENTS("events"),
    MULTIFD("multifd"),
    PAUSE_BEFORE_SWITCHOVER("pause-before-switchover"),
    POSTCOPY_RAM("postcopy-ram"),
    POSTCOPY_PREEMPT("postcopy-preempt"),
    RETURN_PATH("return-path"),
    /** QEMU 8.1's: the source switches over only after the destination's devices have loaded their initial data; needs return-path. */
    SWITCHOVER_ACK("switchover-ack"),
    X_COLO("x-colo"),
    XBZRLE("xbzrle");

    private final String qemuName;

    MigrationCapability(String qemuName) {
        this.qemuName = qemuName;
    }

    /** The name QMP's migrate-set-capabilities takes. */
    public String qemuName() {
        return qemuName;
    }
}
