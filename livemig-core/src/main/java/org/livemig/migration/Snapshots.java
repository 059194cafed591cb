package org.livemig.migration;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import org.livemig.machine.Machine;
import org.livemig.machine.RunState;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.StreamFormatException;

/**
 * Saving a machine to a file and loading it back: the seed's snapshot path, where
 * {@code loadvmState(file, true)} runs on the main loop with the BQL held.
 */
public final class Snapshots {
    private Snapshots() {}

    /** Called with the BQL held. Stops the guest and writes it to {@code file}. */
    public static RamStats save(Machine m, Path file) throws IOException {
        m.bql().assertHeld();
        if (m.runState().isRunning()) {
            m.vmStop(RunState.SAVE_VM);
        }
        RamStats stats = new RamStats();
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            MigrationFile f = MigrationFile.forWriting(ch);
            SaveVm.saveSnapshot(m, f, stats);
            f.flush();
        } finally {
            m.setRunState(RunState.PAUSED);
        }
        return stats;
    }

    /**
     * Called with the BQL held. Loads {@code file} into {@code m}. On failure the machine is left
     * paused and usable, and the error names what was wrong and where.
     */
    public static RamStats load(Machine m, Path file) throws IOException {
        m.bql().assertHeld();
        if (m.runState().isRunning()) {
            m.vmStop(RunState.RESTORE_VM);
        } else {
            m.setRunState(RunState.RESTORE_VM);
        }
        RamStats stats = new RamStats();
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            MigrationFile f = MigrationFile.forReading(ch);
            LoadVm load = new LoadVm(m, stats, null);
            load.loadvmState(f, true);
            load.skipVmdesc(f);
            if (!f.atEof()) {
                throw new StreamFormatException("unexpected data after the end of the stream", f.position());
            }
        } finally {
            m.setRunState(RunState.PAUSED);
        }
        return stats;
    }
}
