package org.livemig.security;

/** An object could not be created, found or deleted; the message is QEMU's where QEMU has one. */
public final class ObjectException extends Exception {
    private static final long serialVersionUID = 1L;

    public ObjectException(String message) {
        super(message);
    }

    public ObjectException(String message, Throwable cause) {
        super(message, cause);
    }
}
