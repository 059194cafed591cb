package org.livemig.migration;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.BiConsumer;

/**
 * The status of one migration, changed only by compare-and-set (QEMU's migrate_set_state): two
 * threads racing (mig/src/main finishing, the monitor cancelling) cannot both win.
 */
public final class StatusMachine {
    private final AtomicReference<MigrationStatus> status = new AtomicReference<>(MigrationStatus.NONE);
    private final List<BiConsumer<MigrationStatus, MigrationStatus>> listeners = new CopyOnWriteArrayList<>();

    public MigrationStatus get() {
        return status.get();
    }

    /** Moves from {@code from} to {@code to}; false (and no change) when the status was not {@code from}. */
    public boolean transition(MigrationStatus from, MigrationStatus to) {
        if (!status.compareAndSet(from, to)) {
            return false;
        }
        for (var l : listeners) {
            l.accept(from, to);
        }
        return true;
    }

    /** Moves to {@code to} from whatever the status is, unless it is already final; returns the old status. */
    public MigrationStatus force(MigrationStatus to) {
        while (true) {
            MigrationStatus cur = status.get();
            if (cur.isFinal() && cur != MigrationStatus.NONE && to != MigrationStatus.NONE) {
                return cur;
            }
            if (transition(cur, to)) {
                return cur;
            }
        }
    }

    /** Called on every transition, on the thread that made it. */
    public void addListener(BiConsumer<MigrationStatus, MigrationStatus> l) {
        listeners.add(l);
    }
}
