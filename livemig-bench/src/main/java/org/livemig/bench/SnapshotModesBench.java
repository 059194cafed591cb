package org.livemig.bench;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.OpenOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import org.livemig.machine.Machine;
import org.livemig.machine.RunState;
import org.livemig.memory.postcopy.WriteTracker;
import org.livemig.migration.Migration;
import org.livemig.migration.RamStats;
import org.livemig.migration.Snapshots;
import org.livemig.migration.ram.DirectIo;

/**
 * {@code livemig bench snapshot}'s live and mapped-ram cases (issue 23).
 * <ul>
 * <li>live: a guest running {@code ab} saved with background-snapshot, with each write tracking
 *     this host has: how long the guest was stopped at the start, the longest wait of a guest
 *     write for its page, and the total time; beside a stop-and-save of the same guest in the
 *     same run, where the guest is stopped for the whole save. A vCPU's longest stall is the
 *     longer of the pause and the longest write wait.</li>
 * <li>mapped-ram: save and load throughput with 1, 2 and 4 channels, with and without O_DIRECT,
 *     beside a plain sequential write (and read) of the same bytes, buffered or O_DIRECT alike.</li>
 * </ul>
 * Guest RAM is random (every page goes to the file) and pre-faulted before any timing; each case
 * runs once unmeasured first (JIT).
 */
public final class SnapshotModesBench {
    /** The goal for a live snapshot: no vCPU stall longer than this. */
    static final long STALL_GOAL_NANOS = 20_000_000L;
    /** The goal for mapped-ram: this share of a plain write's throughput. */
    static final double MAPPED_RAM_GOAL = 0.90;

    private final long ramBytes;
    private final Path dir;
    private final PrintStream out;

    public SnapshotModesBench(long ramBytes, Path dir, PrintStream out) {
        this.ramBytes = ramBytes;
        this.dir = dir;
        this.out = out;
    }

    private static double gibPerSec(long bytes, long nanos) {
        return bytes / (double) (1L << 30) / (nanos / 1e9);
    }

    private static FileChannel open(Path p, boolean direct, OpenOption... mode) throws IOException {
        List<OpenOption> o = new ArrayList<>(List.of(mode));
        if (direct) {
            o.add(com.sun.nio.file.ExtendedOpenOption.DIRECT);
        }
        return FileChannel.open(p, o.toArray(OpenOption[]::new));
    }

    /** A plain sequential write of {@code bytes} from one aligned 8 MiB buffer, buffered or O_DIRECT; ns. */
    static long plainWrite(Path target, long bytes, boolean direct) throws IOException {
        ByteBuffer buf = ByteBuffer.allocateDirect((8 << 20) + 4096).alignedSlice(4096);
        long t0 = System.nanoTime();
        try (FileChannel ch = open(target, direct, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            long left = bytes;
            while (left > 0) {
                buf.clear();
                if (left < buf.capacity()) {
                    buf.limit((int) left);
                }
                left -= ch.write(buf);
            }
            if (direct) {
                ch.force(false); // O_DIRECT writes are on the device already; this is cheap
            }
        }
        return System.nanoTime() - t0;
    }

    /** A plain sequential read of {@code target} into one aligned 8 MiB buffer, buffered or O_DIRECT; ns. */
    static long plainRead(Path target, boolean direct) throws IOException {
        ByteBuffer buf = ByteBuffer.allocateDirect((8 << 20) + 4096).alignedSlice(4096);
        long t0 = System.nanoTime();
        try (FileChannel ch = open(target, direct, StandardOpenOption.READ)) {
            while (true) {
                buf.clear();
                if (ch.read(buf) < 0) {
                    break;
                }
            }
        }
        return System.nanoTime() - t0;
    }

    public void run(boolean live, boolean mappedRam) throws Exception {
        Path file = dir.resolve("livemig-bench-modes.mig");
        Path plain = dir.resolve("livemig-bench-modes.plain");
        try {
            if (live) {
                live(file);
            }
            if (mappedRam) {
                mappedRam(file, plain);
            }
        } finally {
            Files.deleteIfExists(file);
            Files.deleteIfExists(plain);
        }
    }

    private record LiveRow(String what, long totalNanos, long pauseNanos, long waits, long longestWaitNanos) {
        long stall() {
            return Math.max(pauseNanos, longestWaitNanos);
        }
    }

    private void live(Path file) throws Exception {
        List<String> backends = new ArrayList<>();
        var uffd = WriteTracker.userfaultfdAvailability();
        if (uffd.available()) {
            backends.add("userfaultfd");
        }
        backends.add("checked");
        out.printf("live snapshot: %d MiB guest running ab (random RAM), saved to %s%n", ramBytes >> 20, dir);
        if (!uffd.available()) {
            out.println("  userfaultfd write-protect unavailable here (" + uffd.reason() + "): checked accessors only");
        }
        Machine.Config cfg = Machine.Config.defaults().withName("bench-live").withRam(ramBytes).withWorkload("ab")
                .withFill(Machine.Fill.RANDOM).withBlobSize(64 << 10);
        List<LiveRow> rows = new ArrayList<>();
        try (Machine m = new Machine(cfg)) {
            Migration mig = new Migration(m);
            m.mainLoop().runAndWait(() -> m.boot(RunState.RUNNING));
            for (String b : backends) {
                Snapshots.SaveOptions o = new Snapshots.SaveOptions(true, false, 0, false, b);
                Snapshots.save(m, mig, file, o, null, 3_600_000); // warm-up: JIT
                Snapshots.SaveResult r = Snapshots.save(m, mig, file, o, null, 3_600_000);
                rows.add(new LiveRow("--live, " + r.writeTracking(), r.totalNanos(), r.pauseNanos(), r.waits(),
                        r.longestWaitNanos()));
                long[] h = mig.outgoing().writeTracker().waitHistogram();
                out.printf("  %s: pause %s; guest write waits by length (2^i us): %s%n", r.writeTracking(),
                        mig.outgoing().snapshotPauseAccount(), histogram(h));
            }
            // Stop-and-save of the same guest: stopped for the whole save.
            Snapshots.SaveResult s = Snapshots.save(m, mig, file, Snapshots.SaveOptions.stopped(), null, 3_600_000);
            rows.add(new LiveRow("stop-and-save", s.totalNanos(), s.pauseNanos(), 0, 0));
        }
        out.println("  case                      total s   guest stopped ms   writes waited   longest wait ms   longest stall ms");
        for (LiveRow r : rows) {
            out.printf("  %-24s %8.2f   %16.1f   %13d   %15.2f   %16.1f%n", r.what(), r.totalNanos() / 1e9,
                    r.pauseNanos() / 1e6, r.waits(), r.longestWaitNanos() / 1e6, r.stall() / 1e6);
        }
        for (LiveRow r : rows) {
            if (r.what().startsWith("--live")) {
                out.printf("  goal, no vCPU stall over %d ms (%s): %s%n", STALL_GOAL_NANOS / 1_000_000, r.what(),
                        r.stall() <= STALL_GOAL_NANOS ? "met" : "MISSED");
            }
        }
    }

    private static String histogram(long[] h) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < h.length; i++) {
            if (h[i] != 0) {
                sb.append(sb.isEmpty() ? "" : ", ").append(i).append(':').append(h[i]);
            }
        }
        return sb.isEmpty() ? "none" : sb.toString();
    }

    private void mappedRam(Path file, Path plain) throws Exception {
        boolean direct = DirectIo.supported(dir);
        out.printf("mapped-ram: %d MiB guest (random RAM, paused), file in %s; O_DIRECT %s%n", ramBytes >> 20, dir,
                direct ? "allowed" : "not allowed by this file system (those rows left out)");
        Machine.Config cfg = Machine.Config.defaults().withName("bench-mapped").withRam(ramBytes).withVcpus(1)
                .withWorkload("idle").withFill(Machine.Fill.RANDOM).withBlobSize(64 << 10);
        try (Machine m = new Machine(cfg)) {
            Migration mig = new Migration(m);
            m.mainLoop().runAndWait(() -> m.boot(RunState.PAUSED));
            out.println("  case                       save GiB/s  plain write  ratio   load GiB/s  plain read  ratio");
            for (boolean dio : direct ? new boolean[] {false, true} : new boolean[] {false}) {
                long baseWrite = plainWrite(plain, ramBytes, dio); // warm-up
                long baseRead = plainRead(plain, dio);
                for (int ch : new int[] {1, 2, 4}) {
                    Snapshots.SaveOptions o = new Snapshots.SaveOptions(false, true, ch, dio, "auto");
                    Snapshots.save(m, mig, file, o, null, 3_600_000); // warm-up: JIT
                    long save = Snapshots.save(m, mig, file, o, null, 3_600_000).totalNanos();
                    int channels = ch;
                    long load = m.mainLoop().call(() -> {
                        long t0 = System.nanoTime();
                        Snapshots.load(m, file, channels, dio, new RamStats());
                        return System.nanoTime() - t0;
                    }, 3_600_000);
                    // The baselines around each case, taking the fastest: page-cache state favours neither.
                    baseWrite = Math.min(baseWrite, plainWrite(plain, ramBytes, dio));
                    baseRead = Math.min(baseRead, plainRead(plain, dio));
                    double s = gibPerSec(ramBytes, save);
                    double w = gibPerSec(ramBytes, baseWrite);
                    double l = gibPerSec(ramBytes, load);
                    double rd = gibPerSec(ramBytes, baseRead);
                    String label = ch + (ch == 1 ? " channel" : " channels") + (dio ? ", O_DIRECT" : "");
                    out.printf("  %-26s %6.2f      %6.2f     %.2f    %6.2f      %6.2f     %.2f%n", label, s, w, s / w, l,
                            rd, l / rd);
                }
            }
            out.printf("  goal: mapped-ram save at >= %.0f%% of the plain write%n", MAPPED_RAM_GOAL * 100);
        }
    }
}
