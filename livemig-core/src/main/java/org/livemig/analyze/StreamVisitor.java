package org.livemig.analyze;

import org.livemig.analyze.StreamEvents.Command;
import org.livemig.analyze.StreamEvents.Configuration;
import org.livemig.analyze.StreamEvents.DeviceBody;
import org.livemig.analyze.StreamEvents.RamRecord;
import org.livemig.stream.SectionHeader;
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

    /** A block of a mapped-ram stream, once its header was read and its pages located (after its MEM_SIZE entry). */
    default void mappedRamBlock(SectionHeader header, StreamEvents.MappedRamBlock block) {}

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

    /** Bytes after the vmdesc trailer that are not COLO checkpoints. */
    default void trailing(byte[] chunk) {}

    /**
     * A COLO message on the primary's stream, after the initial migration of a stream that said
     * ENABLE_COLO; {@code value} is VMSTATE_SIZE's length, else -1.
     */
    default void coloMessage(org.livemig.stream.ColoMessage message, long value, long offset) {}

    /** COLO checkpoint {@code n} (from 1) begins: its RAM and device sections follow. */
    default void coloCheckpointStart(int n, long offset) {}

    /** COLO checkpoint {@code n} ends with its device state, {@code deviceBytes} long. */
    default void coloCheckpointEnd(int n, long deviceBytes) {}

    /** The stream ended cleanly. */
    default void end() {}

    /** A visitor that passes every record to {@code first}, then to {@code second}. */
    static StreamVisitor tee(StreamVisitor first, StreamVisitor second) {
        return new StreamVisitor() {
            @Override
            public void header(int magic, int version) {
                first.header(magic, version);
                second.header(magic, version);
            }

            @Override
            public void configuration(Configuration c) {
                first.configuration(c);
                second.configuration(c);
            }

            @Override
            public void command(Command c) {
                first.command(c);
                second.command(c);
            }

            @Override
            public void packageStart(Command c, int blobLength) {
                first.packageStart(c, blobLength);
                second.packageStart(c, blobLength);
            }

            @Override
            public void packageEnd(byte[] trailing) {
                first.packageEnd(trailing);
                second.packageEnd(trailing);
            }

            @Override
            public void sectionStart(SectionHeader h) {
                first.sectionStart(h);
                second.sectionStart(h);
            }

            @Override
            public void mappedRamBlock(SectionHeader h, StreamEvents.MappedRamBlock b) {
                first.mappedRamBlock(h, b);
                second.mappedRamBlock(h, b);
            }

            @Override
            public void ramRecord(SectionHeader h, RamRecord r) {
                first.ramRecord(h, r);
                second.ramRecord(h, r);
            }

            @Override
            public void deviceSection(SectionHeader h, DeviceBody body) {
                first.deviceSection(h, body);
                second.deviceSection(h, body);
            }

            @Override
            public void deviceSectionLate(SectionHeader h, DeviceBody body) {
                first.deviceSectionLate(h, body);
                second.deviceSectionLate(h, body);
            }

            @Override
            public void sectionEnd(SectionHeader h, boolean footer) {
                first.sectionEnd(h, footer);
                second.sectionEnd(h, footer);
            }

            @Override
            public void eof() {
                first.eof();
                second.eof();
            }

            @Override
            public void vmdesc(byte[] json, JsonNode tree) {
                first.vmdesc(json, tree);
                second.vmdesc(json, tree);
            }

            @Override
            public void trailing(byte[] chunk) {
                first.trailing(chunk);
                second.trailing(chunk);
            }

            @Override
            public void coloMessage(org.livemig.stream.ColoMessage message, long value, long offset) {
                first.coloMessage(message, value, offset);
                second.coloMessage(message, value, offset);
            }

            @Override
            public void coloCheckpointStart(int n, long offset) {
                first.coloCheckpointStart(n, offset);
                second.coloCheckpointStart(n, offset);
            }

            @Override
            public void coloCheckpointEnd(int n, long deviceBytes) {
                first.coloCheckpointEnd(n, deviceBytes);
                second.coloCheckpointEnd(n, deviceBytes);
            }

            @Override
            public void end() {
                first.end();
                second.end();
            }
        };
    }
}
