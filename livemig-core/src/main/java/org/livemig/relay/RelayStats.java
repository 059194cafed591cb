package org.livemig.relay;

import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;
import org.livemig.analyze.StreamEvents.Command;
import org.livemig.analyze.StreamEvents.RamRecord;
import org.livemig.analyze.StreamVisitor;
import org.livemig.stream.QemuStream;
import org.livemig.stream.RamPageRecord;
import org.livemig.stream.SectionHeader;

/**
 * Called on the stream reader's thread; read once the reader is done. Counts what passed through
 * a relay: sections by type, RAM records by kind, commands by name. Counts survive a decoding
 * error part way through (they cover what was decoded before it).
 */
public final class RelayStats implements StreamVisitor {
    private final Map<String, Integer> sections = new LinkedHashMap<>();
    private final Map<RamPageRecord.Kind, Long> ram = new EnumMap<>(RamPageRecord.Kind.class);
    private final Map<String, Integer> commands = new LinkedHashMap<>();
    private final Map<String, Integer> devices = new TreeMap<>();
    private boolean eof;
    private boolean vmdesc;
    /** ENABLE_COLO passed: the return direction carries COLO messages, not return-path ones. */
    private volatile boolean colo;
    private final Map<String, Integer> coloMessages = new LinkedHashMap<>();
    private int checkpoints;

    @Override
    public void sectionStart(SectionHeader h) {
        sections.merge(sectionTypeName(h.type()), 1, Integer::sum);
        if (h.idstr() != null && !h.isRam()) {
            devices.merge(h.idstr(), 1, Integer::sum);
        }
    }

    @Override
    public void ramRecord(SectionHeader h, RamRecord r) {
        ram.merge(r.kind(), 1L, Long::sum);
    }

    @Override
    public void command(Command c) {
        commands.merge(c.name(), 1, Integer::sum);
        if (c.command() == org.livemig.stream.QemuStream.CMD_ENABLE_COLO) {
            colo = true;
        }
    }

    @Override
    public synchronized void coloMessage(org.livemig.stream.ColoMessage message, long value, long offset) {
        coloMessages.merge(message.qemuName(), 1, Integer::sum);
    }

    @Override
    public synchronized void coloCheckpointEnd(int n, long deviceBytes) {
        checkpoints = n;
    }

    /** True once the stream said ENABLE_COLO. Any thread. */
    public boolean colo() {
        return colo;
    }

    /** COLO messages the primary sent, by name. */
    public synchronized Map<String, Integer> coloMessages() {
        return new LinkedHashMap<>(coloMessages);
    }

    /** Complete COLO checkpoints that passed. */
    public synchronized int coloCheckpoints() {
        return checkpoints;
    }

    @Override
    public void packageStart(Command c, int blobLength) {
        commands.merge(c.name(), 1, Integer::sum);
    }

    @Override
    public void eof() {
        eof = true;
    }

    @Override
    public void vmdesc(byte[] json, tools.jackson.databind.JsonNode tree) {
        vmdesc = true;
    }

    /** Sections by QEMU's type name (START, PART, END, FULL), in order of first appearance. */
    public Map<String, Integer> sections() {
        return sections;
    }

    /** RAM records by kind (ZERO, PAGE, XBZRLE, COMPRESS_PAGE, ...). */
    public Map<RamPageRecord.Kind, Long> ram() {
        return ram;
    }

    public long ram(RamPageRecord.Kind kind) {
        return ram.getOrDefault(kind, 0L);
    }

    /** Commands by QEMU's name. */
    public Map<String, Integer> commands() {
        return commands;
    }

    /** Sections per non-RAM idstr. */
    public Map<String, Integer> devices() {
        return devices;
    }

    /** Whether the EOF section passed. */
    public boolean sawEof() {
        return eof;
    }

    /** Whether the vmdesc trailer passed. */
    public boolean sawVmdesc() {
        return vmdesc;
    }

    static String sectionTypeName(int type) {
        return switch (type) {
            case QemuStream.SECTION_START -> "START";
            case QemuStream.SECTION_PART -> "PART";
            case QemuStream.SECTION_END -> "END";
            case QemuStream.SECTION_FULL -> "FULL";
            default -> "type " + type;
        };
    }
}
