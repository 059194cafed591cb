package org.livemig.migration;

import java.io.IOException;
import java.util.List;
import org.livemig.machine.Machine;
import org.livemig.memory.RamBlock;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.QemuStream;
import org.livemig.stream.SectionHeader;
import org.livemig.vmstate.SaveStateEntry;
import org.livemig.vmstate.VmDesc;

/**
 * Writes QEMU's stream layout for a machine (QEMU's savevm.c, save side): header and
 * configuration, START/PART/END sections of iterative handlers, FULL device sections, EOF and the
 * vmdesc trailer. Every section is followed by its footer.
 */
public final class SaveVm {
    /** The machine type in the configuration section; both sides must agree on it. */
    public static final String MACHINE_TYPE = "livemig-1.0";

    private SaveVm() {}

    public static void writeHeader(MigrationFile f) throws IOException {
        f.putBe32(QemuStream.MAGIC);
        f.putBe32(QemuStream.VERSION);
        f.putByte(QemuStream.SECTION_CONFIGURATION);
        byte[] name = MACHINE_TYPE.getBytes(java.nio.charset.StandardCharsets.UTF_8);
        f.putBe32(name.length);
        f.putBytes(name);
    }

    /** START or FULL header: type, section id, idstr, instance id, version. */
    public static void writeFullHeader(MigrationFile f, int type, SaveStateEntry e) throws IOException {
        SectionHeader.writeNamed(f, type, e.sectionId(), e.idstr(), e.instanceId(), e.versionId());
    }

    /** PART or END header: type and section id. */
    public static void writeShortHeader(MigrationFile f, int type, SaveStateEntry e) throws IOException {
        SectionHeader.writeShort(f, type, e.sectionId());
    }

    public static void writeFooter(MigrationFile f, SaveStateEntry e) throws IOException {
        SectionHeader.writeFooter(f, e.sectionId());
    }

    public static void writeCommand(MigrationFile f, int cmd, byte[] payload) throws IOException {
        f.putByte(QemuStream.SECTION_COMMAND);
        f.putBe16(cmd);
        f.putBe16(payload.length);
        f.putBytes(payload);
    }

    private static List<SaveStateEntry> iterative(Machine m) {
        return m.registry().entries().stream().filter(SaveStateEntry::isIterative)
                .filter(e -> e.handlers().isActive()).toList();
    }

    /** Every iterative handler learns what this migration does (QEMU's save_prepare); before {@link #saveSetup}. */
    public static void savePrepare(Machine m, org.livemig.vmstate.SaveOptions options) {
        for (SaveStateEntry e : iterative(m)) {
            e.handlers().savePrepare(options);
        }
    }

    /** The live devices: iterative handlers other than RAM, which the migration drives itself. */
    static List<SaveStateEntry> devices(Machine m) {
        return iterative(m).stream().filter(e -> !(e.handlers() instanceof RamHandlers)).toList();
    }

    /** True when every live device's current pass is done (always, without any). */
    public static boolean devicePassesComplete(Machine m) {
        for (SaveStateEntry e : devices(m)) {
            if (!e.handlers().passComplete()) {
                return false;
            }
        }
        return true;
    }

    /** Called with the BQL held: each live device's dirty state becomes pending; returns the bytes newly pending. */
    public static long syncDevices(Machine m) {
        m.bql().assertHeld();
        long n = 0;
        for (SaveStateEntry e : devices(m)) {
            n += e.handlers().syncDirty();
        }
        return n;
    }

    /** Bytes still to send, RAM and live devices together: what the switchover decision weighs. */
    public static long pendingBytes(Machine m) {
        long n = 0;
        for (SaveStateEntry e : iterative(m)) {
            n += e.handlers().pendingBytes();
        }
        return n;
    }

    /** Whether some handler sends its final state over multifd (then SWITCHOVER_START precedes the END sections). */
    public static boolean completesOverMultifd(Machine m) {
        for (SaveStateEntry e : iterative(m)) {
            if (e.handlers().completesOverMultifd()) {
                return true;
            }
        }
        return false;
    }

    /** START sections of every iterative handler (qemu_savevm_state_setup). */
    public static void saveSetup(Machine m, MigrationFile f) throws IOException {
        for (SaveStateEntry e : iterative(m)) {
            writeFullHeader(f, QemuStream.SECTION_START, e);
            e.handlers().saveSetup(f);
            writeFooter(f, e);
        }
    }

    /** One PART section per iterative handler; true when all of them have nothing pending. */
    public static boolean saveIterate(Machine m, MigrationFile f) throws IOException {
        boolean done = true;
        for (SaveStateEntry e : iterative(m)) {
            writeShortHeader(f, QemuStream.SECTION_PART, e);
            done &= e.handlers().saveIterate(f);
            writeFooter(f, e);
        }
        return done;
    }

    /** END sections of every iterative handler. The guest is stopped; no BQL needed for RAM. */
    public static void saveCompleteIterative(Machine m, MigrationFile f) throws IOException {
        for (SaveStateEntry e : iterative(m)) {
            if (e.handlers().completesOverMultifd()) {
                e.handlers().saveCompleteMultifd();
            }
        }
        for (SaveStateEntry e : iterative(m)) {
            writeShortHeader(f, QemuStream.SECTION_END, e);
            e.handlers().saveComplete(f);
            writeFooter(f, e);
        }
    }

    /**
     * Called with the BQL held. Encodes every device as a FULL section into memory, describing each
     * in {@code vmdesc} (device state is read under it; the bytes are written out after it is dropped).
     */
    public static byte[] encodeDevices(Machine m, VmDesc vmdesc) throws IOException {
        m.bql().assertHeld();
        MigrationFile buf = MigrationFile.toMemory();
        for (SaveStateEntry e : m.registry().entries()) {
            if (e.isIterative()) {
                continue;
            }
            writeFullHeader(buf, QemuStream.SECTION_FULL, e);
            saveDevice(buf, e, vmdesc);
            writeFooter(buf, e);
        }
        return buf.toByteArray();
    }

    private static void saveDevice(MigrationFile f, SaveStateEntry e, VmDesc vmdesc) throws IOException {
        VmDesc.Device d = vmdesc == null ? null
                : vmdesc.addDevice(e.idstr(), e.instanceId(), e.vmsd().name(), e.versionId());
        e.saveState(f, d);
    }

    /** EOF, then the vmdesc trailer. */
    public static void writeEofAndVmdesc(MigrationFile f, VmDesc vmdesc) throws IOException {
        f.putByte(QemuStream.SECTION_EOF);
        if (vmdesc != null) {
            byte[] json = vmdesc.toJsonBytes();
            f.putByte(QemuStream.SECTION_VMDESCRIPTION);
            f.putBe32(json.length);
            f.putBytes(json);
        }
    }

    /**
     * Called with the BQL held. Saves a whole stopped machine to {@code f} (a snapshot: QEMU's
     * qemu_savevm_state), on the main loop, the guest stopped.
     */
    public static void saveSnapshot(Machine m, MigrationFile f, RamStats stats) throws IOException {
        m.bql().assertHeld();
        if (m.runState().isRunning()) {
            throw new IllegalStateException("snapshot of a running machine: stop it first");
        }
        RamHandlers ram = RamHandlers.of(m);
        RamSaver saver = ram.beginSave(stats);
        saver.startDirtyTracking();
        savePrepare(m, org.livemig.vmstate.SaveOptions.PLAIN);
        try {
            m.cpuSynchronizeAllStates();
            writeHeader(f);
            saveSetup(m, f);
            VmDesc vmdesc = new VmDesc(RamBlock.PAGE_SIZE);
            saveCompleteIterative(m, f);
            f.putBytes(encodeDevices(m, vmdesc));
            writeEofAndVmdesc(f, vmdesc);
            f.flush();
        } finally {
            saver.stopDirtyTracking();
        }
    }
}
