package org.livemig.migration;

/** A migration request refused or failed, with a message fit for a QMP GenericError. */
public class MigrationException extends Exception {
    public MigrationException(String message) {
        super(message);
    }

    public MigrationException(String message, Throwable cause) {
        super(message, cause);
    }
}
