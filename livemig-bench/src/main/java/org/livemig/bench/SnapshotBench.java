package org.livemig.bench;

import java.io.IOException;
import java.io.PrintStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import org.livemig.machine.Machine;
import org.livemig.machine.RunState;
import org.livemig.migration.LoadVm;
import org.livemig.migration.RamStats;
import org.livemig.migration.SaveVm;
import org.livemig.stream.MigrationFile;

/**
 * {@code livemig bench snapshot}: save and load throughput of a whole machine to a local file and
 * to /dev/null, beside a plain sequential write of the same number of bytes measured in the same
 * run. Guest RAM is allocated and pre-faulted before any timing starts; times cover the save or
 * load only.
 */
public final class SnapshotBench {
    private final long ramBytes;
    private final Path dir;
    private final PrintStream out;

    public SnapshotBench(long ramBytes, Path dir, PrintStream out) {
        this.ramBytes = ramBytes;
        this.dir = dir;
        this.out = out;
    }

    private static double gibPerSec(long bytes, long nanos) {
        return bytes / (double) (1L << 30) / (nanos / 1e9);
    }

    /** Plain sequential write of {@code bytes} from one 8 MiB direct buffer: the baseline. */
    private static long plainWrite(Path target, long bytes) throws IOException {
        ByteBuffer buf = ByteBuffer.allocateDirect(8 << 20);
        long t0 = System.nanoTime();
        try (FileChannel ch = FileChannel.open(target, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            long left = bytes;
            while (left > 0) {
                buf.clear();
                if (left < buf.capacity()) {
                    buf.limit((int) left);
                }
                left -= ch.write(buf);
            }
        }
        return System.nanoTime() - t0;
    }

    /**
     * Copy of {@code src} through an 8 MiB buffer: the baseline for saving to /dev/null, where a
     * plain write costs nothing (the kernel copies no data) and the stream's own work is all there is.
     */
    private static long memcpy(MemorySegment src) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment buf = a.allocate(8 << 20, 4096);
            long t0 = System.nanoTime();
            for (long off = 0; off < src.byteSize(); off += buf.byteSize()) {
                long n = Math.min(buf.byteSize(), src.byteSize() - off);
                MemorySegment.copy(src, off, buf, 0, n);
            }
            return System.nanoTime() - t0;
        }
    }

    private static long save(Machine m, Path target) throws Exception {
        return m.mainLoop().call(() -> {
            long t0 = System.nanoTime();
            try (FileChannel ch = FileChannel.open(target, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                    StandardOpenOption.TRUNCATE_EXISTING)) {
                MigrationFile f = MigrationFile.forWriting(ch);
                SaveVm.saveSnapshot(m, f, new RamStats());
                f.flush();
            }
            return System.nanoTime() - t0;
        }, 3_600_000);
    }

    private static long load(Machine m, Path source) throws Exception {
        return m.mainLoop().call(() -> {
            long t0 = System.nanoTime();
            try (FileChannel ch = FileChannel.open(source, StandardOpenOption.READ)) {
                MigrationFile f = MigrationFile.forReading(ch);
                LoadVm l = new LoadVm(m, new RamStats(), null);
                l.loadvmState(f, true);
                l.skipVmdesc(f);
            }
            return System.nanoTime() - t0;
        }, 3_600_000);
    }

    public void run() throws Exception {
        Path devNull = Path.of("/dev/null");
        Path file = dir.resolve("livemig-bench.mig");
        Path plain = dir.resolve("livemig-bench.plain");
        out.printf("livemig bench snapshot: %d MiB of guest RAM, pre-faulted before timing; heap max %d MiB%n",
                ramBytes >> 20, Runtime.getRuntime().maxMemory() >> 20);
        long rssLimit = ramBytes + (200L << 20);
        try {
            // Random pages.
            Machine.Config cfg = Machine.Config.defaults().withName("bench").withRam(ramBytes).withVcpus(1)
                    .withWorkload("idle").withFill(Machine.Fill.RANDOM).withBlobSize(64 << 10);
            try (Machine m = new Machine(cfg)) {
                m.mainLoop().runAndWait(() -> m.boot(RunState.PAUSED));
                memcpy(m.mainBlock().memory()); // warm-up
                long baseNull = memcpy(m.mainBlock().memory());
                save(m, devNull); // warm-up: JIT
                long saveNull = save(m, devNull);
                long baseFile = plainWrite(plain, ramBytes);
                Files.deleteIfExists(plain);
                ProcessStats.resetPeak();
                long before = ProcessStats.rssBytes();
                long saveFile = save(m, file);
                long loadFile = load(m, file);
                long peak = ProcessStats.peakRssBytes(); // saving and loading only, not the baseline's buffers
                // the baseline again after ours, taking the faster: page-cache state favours neither
                baseFile = Math.min(baseFile, plainWrite(plain, ramBytes));
                Files.deleteIfExists(plain);
                long size = Files.size(file);
                out.println("baselines: /dev/null rows against a memcpy of the same bytes, file rows against a plain sequential write");
                out.println("random pages                      GiB/s   baseline GiB/s   ratio");
                row("save to /dev/null", ramBytes, saveNull, baseNull);
                row("save to file", ramBytes, saveFile, baseFile);
                row("load from file (page cache)", ramBytes, loadFile, baseFile);
                out.printf("stream size %d MiB; peak RSS while saving/loading %d MiB, %+d MiB on the %d MiB before"
                                + " (limit guest RAM + 200 MiB = %d MiB): %s%n",
                        size >> 20, peak >> 20, (peak - before) >> 20, before >> 20, rssLimit >> 20,
                        peak < 0 ? "n/a" : peak <= rssLimit ? "ok" : "OVER");
            }
            Files.deleteIfExists(file);
            // Zero pages.
            try (Machine m = new Machine(Machine.Config.defaults().withName("bench-zero").withRam(ramBytes).withVcpus(1)
                    .withWorkload("idle").withBlobSize(64 << 10))) {
                m.mainLoop().runAndWait(() -> m.boot(RunState.PAUSED));
                // As if a guest had run: every page is then checked (never-written RAM is sent
                // without looking, which would not measure detection at all).
                m.ram().markWritten();
                long baseNull = memcpy(m.mainBlock().memory());
                save(m, devNull); // warm-up: JIT
                long saveNull = save(m, devNull);
                out.println("zero pages                        GiB/s   baseline GiB/s   ratio");
                row("save to /dev/null (detection)", ramBytes, saveNull, baseNull);
            }
            // Raw zero detection rate, no IO at all.
            try (Arena a = Arena.ofConfined()) {
                MemorySegment seg = a.allocate(Math.min(ramBytes, 256L << 20), 4096);
                long zero = 0;
                for (long off = 0; off < seg.byteSize(); off += 4096) { // warm-up: JIT
                    org.livemig.memory.ZeroPages.isZero(seg.asSlice(off, 4096));
                }
                long t0 = System.nanoTime();
                for (int rep = 0; rep < 4; rep++) {
                    for (long off = 0; off < seg.byteSize(); off += 4096) {
                        if (org.livemig.memory.ZeroPages.isZero(seg.asSlice(off, 4096))) {
                            zero++;
                        }
                    }
                }
                long dt = System.nanoTime() - t0;
                out.printf("zero-page detection alone: %.2f GiB/s (%d pages)%n", gibPerSec(4 * seg.byteSize(), dt), zero);
            }
        } finally {
            Files.deleteIfExists(file);
            Files.deleteIfExists(plain);
        }
    }

    private void row(String what, long bytes, long nanos, long baseNanos) {
        double v = gibPerSec(bytes, nanos);
        double b = gibPerSec(bytes, baseNanos);
        out.printf("  %-30s %6.2f   %6.2f           %.2f%n", what, v, b, v / b);
    }
}
