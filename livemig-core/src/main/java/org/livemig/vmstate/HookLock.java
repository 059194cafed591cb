package org.livemig.vmstate;

/**
 * How the load path holds the BQL around each {@link LoadHook} step of applying a device's state:
 * the seed's {@code WITH_BQL_HELD} per step rather than around the whole section.
 */
@FunctionalInterface
public interface HookLock {
    /** One step of applying state. */
    @FunctionalInterface
    interface Step {
        void run() throws VmStateException;
    }

    /** Runs {@code step}, with the BQL held when {@code needed}, without it otherwise (unless the caller holds it). */
    void run(boolean needed, Step step) throws VmStateException;

    /** The caller holds the BQL for the whole apply (a snapshot loaded on the main loop, a COLO checkpoint). */
    HookLock HELD = (needed, step) -> step.run();
}
