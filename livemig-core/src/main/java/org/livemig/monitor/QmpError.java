package org.livemig.monitor;

import java.util.Objects;

/**
 * A QMP error reply: {@code {"error": {"class": ..., "desc": ...}}}. Thrown by command handlers
 * (and by argument validation) to answer an error; the session stays open.
 *
 * <p>Always create a new instance where the error happens, never share one.
 */
public class QmpError extends RuntimeException {
    private final QmpErrorClass errorClass;

    public QmpError(QmpErrorClass errorClass, String desc) {
        super(Objects.requireNonNull(desc, "desc"));
        this.errorClass = Objects.requireNonNull(errorClass, "errorClass");
    }

    public QmpError(QmpErrorClass errorClass, String desc, Throwable cause) {
        super(Objects.requireNonNull(desc, "desc"), cause);
        this.errorClass = Objects.requireNonNull(errorClass, "errorClass");
    }

    /** A {@link QmpErrorClass#GenericError}, QEMU's {@code error_setg}. */
    public static QmpError generic(String desc) {
        return new QmpError(QmpErrorClass.GenericError, desc);
    }

    public QmpErrorClass errorClass() {
        return errorClass;
    }

    /** The {@code desc} text as sent to the client. */
    public String desc() {
        return getMessage();
    }
}
