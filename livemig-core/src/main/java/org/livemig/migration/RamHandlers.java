package org.livemig.migration;

import java.io.IOException;
import org.livemig.machine.Machine;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.QemuStream;
import org.livemig.vmstate.SaveStateEntry;
import org.livemig.vmstate.SaveVmHandlers;

/**
 * The "ram" entry of a machine's save-state registry. One per machine, registered on first use;
 * each save or load gets a fresh {@link RamSaver} or {@link RamLoader} through {@link #beginSave}
 * and {@link #beginLoad}.
 */
public final class RamHandlers implements SaveVmHandlers {
    public static final String IDSTR = "ram";

    private final Machine machine;
    private RamSaver saver;
    private RamLoader loader;

    private RamHandlers(Machine machine) {
        this.machine = machine;
    }

    /** The machine's ram handlers, registering them (and then the accelerators' sections) the first time. */
    public static synchronized RamHandlers of(Machine machine) {
        var existing = machine.registry().find(IDSTR, 0);
        if (existing.isPresent()) {
            return (RamHandlers) existing.get().handlers();
        }
        RamHandlers h = new RamHandlers(machine);
        machine.registry().registerHandlers(IDSTR, 0, QemuStream.RAM_SECTION_VERSION, h);
        // The live devices' sections come after "ram", as QEMU's VFIO sections after its RAM.
        AcceleratorHandlers.registerAll(machine);
        return h;
    }

    public static SaveStateEntry entry(Machine machine) {
        of(machine);
        return machine.registry().find(IDSTR, 0).orElseThrow();
    }

    public RamSaver beginSave(RamStats stats) {
        saver = new RamSaver(machine.ram(), stats);
        return saver;
    }

    public RamLoader beginLoad(RamStats stats) {
        loader = new RamLoader(machine.ram(), stats);
        return loader;
    }

    public RamLoader loader() {
        return loader;
    }

    public RamSaver saver() {
        return saver;
    }

    @Override
    public void saveSetup(MigrationFile f) throws IOException {
        saver.saveSetup(f);
    }

    @Override
    public boolean saveIterate(MigrationFile f) throws IOException {
        return saver.saveIterate(f);
    }

    @Override
    public void saveComplete(MigrationFile f) throws IOException {
        saver.saveComplete(f);
    }

    @Override
    public long pendingBytes() {
        return saver == null ? 0 : saver.pendingBytes();
    }

    @Override
    public void loadState(MigrationFile f, int versionId) throws IOException {
        if (loader == null) {
            throw new IllegalStateException("ram load without beginLoad");
        }
        loader.load(f, versionId);
    }

    @Override
    public void saveCleanup() {
        if (saver != null) {
            saver.stopDirtyTracking();
        }
    }
}
