package org.livemig.migration;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Map;
import java.util.function.Consumer;
import org.livemig.machine.Machine;
import org.livemig.machine.RunState;
import org.livemig.memory.RamBlock;
import org.livemig.migration.ram.MappedRamLoader;
import org.livemig.migration.ram.MappedRamOptions;
import org.livemig.stream.MappedRamHeader;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.QemuStream;
import org.livemig.stream.RamPageRecord;
import org.livemig.stream.SectionHeader;
import org.livemig.stream.StreamFormatException;

/**
 * Saving a machine to a file and loading it back: the seed's snapshot path, where
 * {@code loadvmState(file, true)} runs on the main loop with the BQL held; and snapshots taken
 * through an outgoing migration to {@code file:}: of a running guest (background-snapshot) and in
 * mapped-ram's layout, with its channels and direct IO. {@link #load} reads every one of them.
 */
public final class Snapshots {
    private Snapshots() {}

    /**
     * How {@link #save(Machine, Migration, Path, SaveOptions, Consumer, long)} saves.
     *
     * @param live          background-snapshot: the guest runs on; RAM is saved as it was at the start
     * @param mappedRam     mapped-ram's layout (QEMU 9.0): each page at a fixed place of the file
     * @param channels      mapped-ram's multifd channels writing in parallel (0: none)
     * @param directIo      the channels write with O_DIRECT (needs channels)
     * @param writeTracking background-snapshot's write tracking: auto, checked or userfaultfd
     */
    public record SaveOptions(boolean live, boolean mappedRam, int channels, boolean directIo, String writeTracking) {
        public SaveOptions {
            if (channels > 0 && !mappedRam) {
                throw new IllegalArgumentException("channels write a mapped-ram file: they need mapped-ram");
            }
            if (directIo && channels == 0) {
                throw new IllegalArgumentException("direct-io is done by mapped-ram's multifd channels: it needs channels");
            }
            if (live && channels > 0) {
                throw new IllegalArgumentException("Background-snapshot is not compatible with multifd"); // QEMU's words
            }
        }

        /** The plain snapshot: the guest stopped, QEMU's stream as savevm writes it. */
        public static SaveOptions stopped() {
            return new SaveOptions(false, false, 0, false, "auto");
        }

        /** Neither live nor mapped-ram: the guest stopped, the stream written on the main loop. */
        public boolean plain() {
            return !live && !mappedRam;
        }
    }

    /**
     * What a save did.
     *
     * @param totalNanos     the whole save
     * @param pauseNanos     how long the guest was stopped for it (live: at the start; otherwise the whole save)
     * @param writeTracking  the write tracking of a live save, else null
     * @param waits          guest writes that waited for their page (live)
     * @param longestWaitNanos the longest of them
     */
    public record SaveResult(RamStats ram, long totalNanos, long pauseNanos, String writeTracking, long waits,
                             long longestWaitNanos) {}

    /** Called with the BQL held. Stops the guest and writes it to {@code file}. */
    public static RamStats save(Machine m, Path file) throws IOException {
        return save(m, file, new RamStats());
    }

    /** Called with the BQL held. As {@link #save(Machine, Path)}, counting into {@code stats} as it goes. */
    public static RamStats save(Machine m, Path file, RamStats stats) throws IOException {
        m.bql().assertHeld();
        if (m.runState().isRunning()) {
            m.vmStop(RunState.SAVE_VM);
        }
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
     * Called without the BQL; blocks until the snapshot is written or has failed (at most
     * {@code timeoutMillis}). The plain options save as {@link #save(Machine, Path)} does, on
     * the main loop. Otherwise an outgoing migration of {@code mig} (the machine's) to
     * {@code file:} does it, unthrottled: a live one leaves the guest running, with
     * {@code atStart} told (BQL held, guest stopped) the moment its state is taken; any other
     * stops the guest first and leaves it paused.
     */
    public static SaveResult save(Machine m, Migration mig, Path file, SaveOptions o, Consumer<Machine> atStart,
                                  long timeoutMillis) throws IOException, InterruptedException {
        return save(m, mig, file, o, atStart, new RamStats(), timeoutMillis);
    }

    /**
     * Called without the BQL; blocks on IO. As above; a plain save counts into
     * {@code plainStats} as it goes (a migration's counts are in {@code mig.outgoing().ramStats()}).
     */
    public static SaveResult save(Machine m, Migration mig, Path file, SaveOptions o, Consumer<Machine> atStart,
                                  RamStats plainStats, long timeoutMillis) throws IOException, InterruptedException {
        m.bql().assertNotHeld();
        long t0 = System.nanoTime();
        if (o.plain()) {
            RamStats st = call(m, () -> save(m, file, plainStats), timeoutMillis);
            long dt = System.nanoTime() - t0;
            return new SaveResult(st, dt, dt, null, 0, 0);
        }
        Outgoing out = call(m, () -> {
            mig.setCapabilities(Map.of(Capability.BACKGROUND_SNAPSHOT, o.live(), Capability.MAPPED_RAM, o.mappedRam(),
                    Capability.MULTIFD, o.channels() > 0));
            mig.setParameters(p -> {
                p.maxBandwidth = 0;
                if (o.channels() > 0) {
                    p.multifdChannels = o.channels();
                }
                p.directIo = o.directIo();
            });
            mig.setWriteTracking(o.writeTracking());
            mig.setBackgroundSnapshotObserver(atStart);
            if (!o.live() && m.runState().isRunning()) {
                m.vmStop(RunState.SAVE_VM);
            }
            return mig.migrate("file:" + file);
        }, timeoutMillis);
        if (!out.join(timeoutMillis)) {
            out.cancel();
            out.join(10_000);
            throw new IOException("snapshot to " + file + " did not finish within " + timeoutMillis + " ms");
        }
        long dt = System.nanoTime() - t0;
        if (out.status() != MigrationStatus.COMPLETED) {
            throw new IOException("snapshot to " + file + " failed: "
                    + (out.error() == null ? out.status().qemuName() : out.error()));
        }
        if (!o.live()) {
            call(m, () -> {
                m.setRunState(RunState.PAUSED);
                return null;
            }, timeoutMillis);
        }
        var t = out.writeTracker();
        return new SaveResult(out.ramStats(), dt, o.live() ? out.snapshotPauseNanos() : dt,
                t == null ? null : t.name(), t == null ? 0 : t.waits(), t == null ? 0 : t.longestWaitNanos());
    }

    private interface MainLoopCall<T> {
        T call() throws Exception;
    }

    private static <T> T call(Machine m, MainLoopCall<T> c, long timeoutMillis) throws IOException, InterruptedException {
        try {
            return m.mainLoop().call(c::call, timeoutMillis);
        } catch (IOException | InterruptedException | RuntimeException e) {
            throw e;
        } catch (MigrationException e) {
            throw new IOException(e.getMessage(), e);
        } catch (Exception e) {
            throw new IOException(e.getMessage(), e);
        }
    }

    /** Called with the BQL held. Loads {@code file} into {@code m}, every format {@link #save} writes, mapped-ram read on the loading thread. */
    public static RamStats load(Machine m, Path file) throws IOException {
        return load(m, file, 0, false, new RamStats());
    }

    /**
     * Called with the BQL held. Loads {@code file} into {@code m}: a plain or live snapshot's
     * stream, or a mapped-ram file (found by its layout), whose pages {@code channels} threads
     * read in parallel (0: the loading thread), with O_DIRECT under {@code directIo}.
     * {@code stats} counts the pages as they load. On failure the machine is left paused and
     * usable, and the error names what was wrong and where.
     */
    public static RamStats load(Machine m, Path file, int channels, boolean directIo, RamStats stats) throws IOException {
        m.bql().assertHeld();
        boolean mappedRam = isMappedRam(file);
        if (m.runState().isRunning()) {
            m.vmStop(RunState.RESTORE_VM);
        } else {
            m.setRunState(RunState.RESTORE_VM);
        }
        MappedRamLoader pages = null;
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            MigrationFile f = MigrationFile.forReading(ch);
            LoadVm load = new LoadVm(m, stats, null);
            if (mappedRam) {
                pages = MappedRamLoader.open(new MappedRamOptions(file, 0, channels, directIo && channels > 0, true), ch,
                        stats.normalPages, stats.zeroPages);
                RamHandlers.of(m).loader().useMappedRam(pages);
            }
            load.loadvmState(f, true);
            load.skipVmdesc(f);
            if (!f.atEof()) {
                throw new StreamFormatException("unexpected data after the end of the stream", f.position());
            }
        } finally {
            if (pages != null) {
                pages.close();
            }
            m.setRunState(RunState.PAUSED);
        }
        return stats;
    }

    /**
     * Whether {@code file} holds a stream in mapped-ram's layout: its RAM section's first block
     * entry is followed by a mapped-ram header. Reads the file's first bytes; false for anything
     * that is not such a stream.
     */
    public static boolean isMappedRam(Path file) throws IOException {
        ByteBuffer head = ByteBuffer.allocate(64 * 1024);
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            while (head.hasRemaining() && ch.read(head) > 0) {
                // read what there is
            }
        }
        byte[] bytes = new byte[head.flip().remaining()];
        head.get(bytes);
        MigrationFile f = MigrationFile.ofBytes(bytes);
        try {
            if (f.getBe32() != QemuStream.MAGIC || f.getBe32() != QemuStream.VERSION) {
                return false;
            }
            if (f.peekByte() == QemuStream.SECTION_CONFIGURATION) {
                f.getByte();
                int len = f.getBe32();
                if (len < 0 || len > 256) {
                    return false;
                }
                f.skip(len);
            }
            if (f.peekByte() != QemuStream.SECTION_START) {
                return false;
            }
            SectionHeader h = SectionHeader.readNamed(f, f.getByte(), 0);
            if (!h.idstr().equals(RamHandlers.IDSTR)) {
                return false;
            }
            long memSize = f.getBe64();
            if ((memSize & RamPageRecord.FLAG_MEM_SIZE) == 0) {
                return false;
            }
            SectionHeader.readName(f);
            f.getBe64();
            return MappedRamHeader.follows(f);
        } catch (IOException e) {
            return false;
        }
    }
}
