package org.livemig.analyze;

import org.livemig.analyze.StreamEvents.Command;
import org.livemig.analyze.StreamEvents.Configuration;
import org.livemig.analyze.StreamEvents.DeviceBody;
import org.livemig.analyze.StreamEvents.RamRecord;
import org.livemig.analyze.StreamEvents.SectionHeader;

import tools.jackson.databind.JsonNode;

/**
 * Receives a stream's records in stream order from a {@link StreamReader}. Called on the
 * reader's thread; a callback must not keep {@link RamRecord#page()} beyond the call.
 */
public interface StreamVisitor {
    default void header(int magic, int version) {}

    default void configuration(Configuration configuration) {}

    /** Any command but PACKAGED. */
    default void command(Command command) {}

    /** A PACKAGED command; the blob's records follow until {@link #packageEnd}. */
    default void packageStart(Command command, int blobLength) {}

    /** End of a package; {@code trailing} are blob bytes after POSTCOPY_RUN (normally none). */
    default void packageEnd(byte[] trailing) {}

    /** A section header (START, PART, END or FULL). */
    default void sectionStart(SectionHeader header) {}

    default void ramRecord(SectionHeader header, RamRecord record) {}

    /** The body of a non-RAM section. */
    default void deviceSection(SectionHeader header, DeviceBody body) {}

    /**
     * A section that was delivered raw could be decoded once the vmdesc trailer arrived (or
     * still could not, with the reason): called after {@link #vmdesc}.
     */
    default void deviceSectionLate(SectionHeader header, DeviceBody body) {}

    /** End of a section; {@code footer} tells whether a footer followed it. */
    default void sectionEnd(SectionHeader header, boolean footer) {}

    default void eof() {}

    /** The vmdesc trailer: its bytes as in the stream and their JSON tree. */
    default void vmdesc(byte[] json, JsonNode tree) {}

    /** Bytes after the device state that are not a vmdesc trailer (e.g. COLO checkpoints). */
    default void trailing(byte[] chunk) {}

    /** The stream ended cleanly. */
    default void end() {}
}
