package org.livemig.migration.colo;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicReference;

/**
 * COLO's state on one machine, as QMP shows it: the mode while checkpoints run (primary on the
 * source, secondary on the destination, none otherwise), the mode of the last COLO that ended,
 * and the failover state machine that {@code x-colo-lost-heartbeat} drives (QEMU's
 * FailoverStatus: none, require, active, completed, relaunch). Listeners hear COLO_EXIT.
 *
 * <p>Any thread: fields are atomic or volatile; the failover moves by compare-and-set.
 */
public final class ColoState {
    /** QEMU's COLOMode. */
    public enum Mode {
        NONE("none"), PRIMARY("primary"), SECONDARY("secondary");

        private final String qemuName;

        Mode(String qemuName) {
            this.qemuName = qemuName;
        }

        public String qemuName() {
            return qemuName;
        }
    }

    /** QEMU's COLOExitReason. */
    public enum ExitReason {
        NONE("none"), REQUEST("request"), ERROR("error"), PROCESSING("processing");

        private final String qemuName;

        ExitReason(String qemuName) {
            this.qemuName = qemuName;
        }

        public String qemuName() {
            return qemuName;
        }
    }

    /** QEMU's FailoverStatus. */
    public enum Failover { NONE, REQUIRE, ACTIVE, COMPLETED, RELAUNCH }

    /** Told when COLO ends on this machine (QEMU's COLO_EXIT event). */
    public interface Listener {
        void exited(Mode mode, ExitReason reason);
    }

    private volatile Mode mode = Mode.NONE;
    private volatile Mode lastMode = Mode.NONE;
    private final AtomicReference<Failover> failover = new AtomicReference<>(Failover.NONE);
    private final List<Listener> listeners = new CopyOnWriteArrayList<>();

    public void addListener(Listener l) {
        listeners.add(l);
    }

    public Mode mode() {
        return mode;
    }

    public Mode lastMode() {
        return lastMode;
    }

    public Failover failover() {
        return failover.get();
    }

    /** COLO starts in {@code m}: the failover state starts over. */
    void enter(Mode m) {
        failover.set(Failover.NONE);
        mode = m;
    }

    /** COLO ended (after a failover or for good): the mode becomes the last mode. Any thread. */
    void leave() {
        Mode m = mode;
        if (m != Mode.NONE) {
            lastMode = m;
            mode = Mode.NONE;
        }
    }

    /** x-colo-lost-heartbeat: none to require; false when a failover is already under way. */
    public boolean requestFailover() {
        return failover.compareAndSet(Failover.NONE, Failover.REQUIRE);
    }

    /** Moves the failover from {@code from} to {@code to}; false when it was not in {@code from}. */
    boolean failoverTransition(Failover from, Failover to) {
        return failover.compareAndSet(from, to);
    }

    /** The reason query-colo-status gives, as QEMU derives it from the failover state. */
    public ExitReason reason() {
        return switch (failover.get()) {
            case NONE -> ExitReason.NONE;
            case COMPLETED -> ExitReason.REQUEST;
            default -> mode == Mode.PRIMARY ? ExitReason.PROCESSING : ExitReason.ERROR;
        };
    }

    /** COLO_EXIT: the checkpoint loop of {@code m} ended, asked for ({@code request}) or not. */
    void exited(Mode m, boolean request) {
        ExitReason r = request ? ExitReason.REQUEST : ExitReason.ERROR;
        for (Listener l : listeners) {
            l.exited(m, r);
        }
    }
}
