package org.livemig.stream;

import java.io.IOException;

/**
 * A stream that is not what QEMU's format says it must be: wrong magic, a truncated record,
 * an unknown section, a length beyond its limit. Carries the byte offset where it was found and,
 * where known, the section (idstr and instance) being read.
 */
public class StreamFormatException extends IOException {
    private final long offset;
    private final String section;

    public StreamFormatException(String message, long offset) {
        this(message, offset, null, null);
    }

    public StreamFormatException(String message, long offset, String section, Throwable cause) {
        super(message, cause);
        this.offset = offset;
        this.section = section;
    }

    /** Byte offset in the stream where the problem was found, or -1 when unknown. */
    public long offset() {
        return offset;
    }

    /** The section being read ("idstr instance N"), or null outside any section. */
    public String section() {
        return section;
    }

    /** The same error, now naming the section it happened in (keeps the first section named). */
    public StreamFormatException inSection(String sectionName) {
        if (section != null) {
            return this;
        }
        StreamFormatException e = new StreamFormatException(rawMessage(), offset, sectionName, getCause());
        e.setStackTrace(getStackTrace());
        return e;
    }

    private String rawMessage() {
        return super.getMessage();
    }

    @Override
    public String getMessage() {
        StringBuilder sb = new StringBuilder(rawMessage());
        if (offset >= 0) {
            sb.append(" (at byte offset ").append(offset);
            if (section != null) {
                sb.append(", in section ").append(section);
            }
            sb.append(')');
        } else if (section != null) {
            sb.append(" (in section ").append(section).append(')');
        }
        return sb.toString();
    }
}
