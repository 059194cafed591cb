package org.livemig.migration;

/**
 * Migration capabilities with QEMU's names. Only those livemig implements are here; the monitor
 * refuses any other name with an error that names it.
 */
public enum Capability {
    AUTO_CONVERGE("auto-converge"),
    COMPRESS("compress"),
    EVENTS("events"),
    MULTIFD("multifd"),
    PAUSE_BEFORE_SWITCHOVER("pause-before-switchover"),
    POSTCOPY_RAM("postcopy-ram"),
    POSTCOPY_PREEMPT("postcopy-preempt"),
    RETURN_PATH("return-path"),
    /**
     * QEMU 8.1's: the source switches over only after the destination's SWITCHOVER_ACK, sent once
     * its devices have loaded their initial data. Needs return-path.
     */
    SWITCHOVER_ACK("switchover-ack"),
    /** COLO: after the initial migration, checkpoints between a primary and a secondary ({@code migration.colo}). */
    X_COLO("x-colo"),
    XBZRLE("xbzrle");

    private final String qemuName;

    Capability(String qemuName) {
        this.qemuName = qemuName;
    }

    public String qemuName() {
        return qemuName;
    }

    public static Capability fromQemuName(String name) {
        for (Capability c : values()) {
            if (c.qemuName.equals(name)) {
                return c;
            }
        }
        return null;
    }
}
