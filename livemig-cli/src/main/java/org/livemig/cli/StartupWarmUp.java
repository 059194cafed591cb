package org.livemig.cli;

import java.util.List;
import java.util.function.Supplier;
import org.livemig.migration.Migration;
import org.livemig.migration.MigrationEvents;
import org.livemig.migration.MigrationStatus;
import org.livemig.migration.WarmUp;
import org.livemig.transport.tls.TlsCredentials;
import org.livemig.transport.tls.TlsWarmUp;

/**
 * The warm-ups of a {@code livemig run} process, started once its monitor can greet: the TLS
 * warm-up of each credentials object (on {@value TlsWarmUp#THREAD_NAME}), then the scratch
 * migrations ({@link WarmUp}). Before, they ran ahead of the monitor and a TLS one delayed it by
 * up to seconds. A real migration of the machine that reaches setup makes them give way, even
 * one that a client started before they did.
 */
final class StartupWarmUp {
    private final Migration real;
    /** A real migration reached setup: nothing more starts. */
    private volatile boolean gaveWay;
    private volatile WarmUp scratch;

    private StartupWarmUp(Migration real) {
        this.real = real;
    }

    /** Watches {@code real}'s migrations from now on; call before the monitor opens. */
    static StartupWarmUp givingWayTo(Migration real) {
        StartupWarmUp w = new StartupWarmUp(real);
        real.addListener(new MigrationEvents() {
            @Override
            public void statusChanged(MigrationStatus status) {
                if (status == MigrationStatus.SETUP) {
                    w.giveWay();
                }
            }
        });
        return w;
    }

    private void giveWay() {
        gaveWay = true;
        WarmUp s = scratch;
        if (s != null) {
            s.giveWay();
        }
    }

    /** Whether a real migration made the warm-ups stop or not start. */
    boolean gaveWay() {
        return gaveWay;
    }

    /**
     * Starts the warm-ups in the background: the TLS warm-up of each of {@code tls} first (one
     * per kind and process), then {@code scratch}'s. Returns at once.
     */
    void start(List<TlsCredentials> tls, Supplier<WarmUp> scratchWarmUp) {
        if (tls.isEmpty()) {
            startScratch(scratchWarmUp);
            return;
        }
        Thread t = Thread.ofPlatform().name(TlsWarmUp.THREAD_NAME).daemon(true).unstarted(() -> {
            for (TlsCredentials c : tls) {
                if (!gaveWay) {
                    TlsWarmUp.runOnce(c);
                }
            }
            startScratch(scratchWarmUp);
        });
        t.setPriority(Thread.MIN_PRIORITY);
        t.start();
    }

    private void startScratch(Supplier<WarmUp> scratchWarmUp) {
        if (gaveWay) {
            return;
        }
        WarmUp s = scratchWarmUp.get();
        s.giveWayTo(real);
        scratch = s;
        // A real migration that reached setup between the check above and here is seen by one
        // of the two: giveWay() reads scratch after it sets gaveWay, and this reads gaveWay after
        // it sets scratch (both volatile).
        if (gaveWay) {
            s.giveWay();
        }
    }
}
