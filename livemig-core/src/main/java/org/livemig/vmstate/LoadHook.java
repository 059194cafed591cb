package org.livemig.vmstate;

/**
 * The steps of applying a device's loaded state that may need the BQL (the seed's open to-do: QEMU's
 * {@code pre_load}, a field's {@code get}, {@code post_load}). A description says which of them
 * need the lock ({@link VMStateDescription.Builder#bqlOnlyFor}); the load path takes it for those
 * steps only, and never while bytes are read from the stream, which livemig does before any of
 * them (decoding into staged values).
 */
public enum LoadHook {
    /** The description's pre-load hook. */
    PRE_LOAD,
    /**
     * Assigning the staged fields to the device (the device-facing half of QEMU's
     * {@code VMStateInfo.get}; the reading half is the lock-free decode). Nested structs are
     * assigned within this step, their hooks included.
     */
    FIELDS,
    /** The description's post-load hook, which may refuse the state. */
    POST_LOAD
}
