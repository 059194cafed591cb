package org.livemig.machine;

/** A machine's run state, with QEMU's names (qapi/run-state.json RunState). */
public enum RunState {
    DEBUG("debug"),
    INMIGRATE("inmigrate"),
    INTERNAL_ERROR("internal-error"),
    IO_ERROR("io-error"),
    PAUSED("paused"),
    POSTMIGRATE("postmigrate"),
    PRELAUNCH("prelaunch"),
    FINISH_MIGRATE("finish-migrate"),
    RESTORE_VM("restore-vm"),
    RUNNING("running"),
    SAVE_VM("save-vm"),
    SHUTDOWN("shutdown"),
    SUSPENDED("suspended"),
    WATCHDOG("watchdog"),
    GUEST_PANICKED("guest-panicked"),
    COLO("colo");

    private final String qemuName;

    RunState(String qemuName) {
        this.qemuName = qemuName;
    }

    public String qemuName() {
        return qemuName;
    }

    public boolean isRunning() {
        return this == RUNNING;
    }

    public static RunState fromQemuName(String name) {
        for (RunState s : values()) {
            if (s.qemuName.equals(name)) {
                return s;
            }
        }
        throw new IllegalArgumentException("unknown run state " + name);
    }
}
