package org.livemig.api;

import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.LongSupplier;
import java.util.function.Supplier;
import org.livemig.migration.MigrationStatus;
import org.livemig.migration.StatusMachine;

/** One side's status, and a future that completes when it is final (listened to, not polled). */
final class SideWatch {
    private final StatusMachine status;
    private final Supplier<String> error;
    private final LongSupplier transferred;
    private final CompletableFuture<Void> ended = new CompletableFuture<>();

    SideWatch(StatusMachine status, Supplier<String> error, LongSupplier transferred) {
        this.status = status;
        this.error = error;
        this.transferred = transferred;
        status.addListener((from, to) -> {
            if (to.isFinal()) {
                ended.complete(null);
            }
        });
        if (status.get().isFinal()) {
            ended.complete(null);
        }
    }

    MigrationState state() {
        return of(status.get());
    }

    String error() {
        return error.get();
    }

    long transferred() {
        return transferred.getAsLong();
    }

    void awaitFinal(Duration timeout) throws TimeoutException, InterruptedException {
        try {
            ended.get(timeout.toNanos(), TimeUnit.NANOSECONDS);
        } catch (ExecutionException e) {
            throw new IllegalStateException(e.getCause());
        } catch (TimeoutException e) {
            throw new TimeoutException("the migration is still " + state().qemuName() + " after " + timeout);
        }
    }

    static MigrationState of(MigrationStatus s) {
        return MigrationState.ofQemuName(s.qemuName());
    }
}
