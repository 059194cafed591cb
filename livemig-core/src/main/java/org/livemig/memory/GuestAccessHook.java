package org.livemig.memory;

/**
 * Called by {@link GuestRam}'s guest accessors before each access while a postcopy backend is
 * listening on the destination. Called on vCPU threads, without the BQL; it may block the
 * caller until the page is placed.
 */
public interface GuestAccessHook {
    void beforeAccess(RamBlock block, long offset, boolean write);
}
