package org.livemig.monitor;

/**
 * QEMU's QAPI error classes, as {@code error.class} carries them on the wire. QEMU 7.2 has
 * exactly these five; almost every error is {@link #GenericError}. The names are public API
 * (pinned by a test): clients match on them.
 */
public enum QmpErrorClass {
    GenericError,
    CommandNotFound,
    DeviceNotActive,
    DeviceNotFound,
    KVMMissingCap
}
