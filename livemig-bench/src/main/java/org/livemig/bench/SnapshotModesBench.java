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
import org.livemig.memory.RamBlock;
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

    /** Rounds of each mapped-ram case (save, plain write, load, plain read alternating); medians are printed. */
    static final int MAPPED_RAM_ROUNDS = 3;

    /**
     * A plain sequential write of guest RAM itself (the bytes a save writes, from where it reads
     * them) in 8 MiB writes into a file that does not exist yet, buffered or O_DIRECT; ns.
     */
    static long plainWriteFrom(List<RamBlock> blocks, Path target, boolean direct) throws IOException {
        Files.deleteIfExists(target);
        long t0 = System.nanoTime();
        try (FileChannel ch = open(target, direct, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            long pos = 0;
            for (RamBlock b : blocks) {
                for (long off = 0; off < b.usedLength(); off += 8 << 20) {
                    ByteBuffer src = b.memory().asSlice(off, Math.min(8 << 20, b.usedLength() - off)).asByteBuffer();
                    while (src.hasRemaining()) {
                        pos += ch.write(src, pos);
                    }
                }
            }
            if (direct) {
                ch.force(false);
            }
        }
        return System.nanoTime() - t0;
    }

    /** A plain sequential read of {@code target} straight into guest RAM (what a load does with the bytes), 8 MiB a read; ns. */
    static long plainReadInto(List<RamBlock> blocks, Path target, boolean direct) throws IOException {
        long t0 = System.nanoTime();
        try (FileChannel ch = open(target, direct, StandardOpenOption.READ)) {
            long pos = 0;
            for (RamBlock b : blocks) {
                for (long off = 0; off < b.usedLength(); off += 8 << 20) {
                    ByteBuffer dst = b.memory().asSlice(off, Math.min(8 << 20, b.usedLength() - off)).asByteBuffer();
                    while (dst.hasRemaining()) {
                        int n = ch.read(dst, pos);
                        if (n < 0) {
                            throw new IOException(target + " ends at " + pos);
                        }
                        pos += n;
                    }
                }
            }
        }
        return System.nanoTime() - t0;
    }

    /**
     * Outside the timing: {@code p}'s dirty pages go to the device, so that the next timed write
     * does not meet this one's writeback (on a disk, one round was 25 times slower for it).
     */
    private static void settle(Path p) throws IOException {
        try (FileChannel ch = FileChannel.open(p, StandardOpenOption.WRITE)) {
            ch.force(true);
        }
    }

    /** This process's CPU time so far, all threads (the save's and load's channels included); ns. */
    private static long processCpuNanos() {
        return ((com.sun.management.OperatingSystemMXBean) java.lang.management.ManagementFactory
                .getOperatingSystemMXBean()).getProcessCpuTime();
    }

    private static long median(long[] v) {
        long[] c = v.clone();
        java.util.Arrays.sort(c);
        return c[c.length / 2];
    }

    private void mappedRam(Path file, Path plain) throws Exception {
        boolean direct = DirectIo.supported(dir);
        out.printf("mapped-ram: %d MiB guest (random RAM, paused), file in %s; O_DIRECT %s%n", ramBytes >> 20, dir,
                direct ? "allowed" : "not allowed by this file system (those rows left out)");
        out.printf("  every save and plain write goes to a file removed beforehand and is forced to the device after"
                + " (both outside the timing); the plain write"
                + " writes guest RAM itself, the plain read reads into it, 8 MiB a call; medians of %d rounds; the 8MiB-buf"
                + " columns: the older baseline, one buffer written or read again and again%n", MAPPED_RAM_ROUNDS);
        Machine.Config cfg = Machine.Config.defaults().withName("bench-mapped").withRam(ramBytes).withVcpus(1)
                .withWorkload("idle").withFill(Machine.Fill.RANDOM).withBlobSize(64 << 10);
        try (Machine m = new Machine(cfg)) {
            Migration mig = new Migration(m);
            m.mainLoop().runAndWait(() -> m.boot(RunState.PAUSED));
            List<RamBlock> blocks = m.ram().blocks();
            out.println("  case                       save GiB/s  plain write  ratio  8MiB-buf ratio   load GiB/s  plain read  ratio  8MiB-buf ratio");
            List<String> accounts = new ArrayList<>();
            List<String> cpu = new ArrayList<>();
            for (boolean dio : direct ? new boolean[] {false, true} : new boolean[] {false}) {
                plainWriteFrom(blocks, plain, dio); // warm-up
                plainReadInto(blocks, plain, dio);
                for (int ch : new int[] {1, 2, 4}) {
                    Snapshots.SaveOptions o = new Snapshots.SaveOptions(false, true, ch, dio, "auto");
                    Files.deleteIfExists(file);
                    Snapshots.save(m, mig, file, o, null, 3_600_000); // warm-up: JIT
                    long[] save = new long[MAPPED_RAM_ROUNDS];
                    long[] load = new long[MAPPED_RAM_ROUNDS];
                    long[] write = new long[MAPPED_RAM_ROUNDS];
                    long[] read = new long[MAPPED_RAM_ROUNDS];
                    long[] write8 = new long[MAPPED_RAM_ROUNDS];
                    long[] read8 = new long[MAPPED_RAM_ROUNDS];
                    long[] saveCpu = new long[MAPPED_RAM_ROUNDS];
                    long[] loadCpu = new long[MAPPED_RAM_ROUNDS];
                    long[] writeCpu = new long[MAPPED_RAM_ROUNDS];
                    long[] readCpu = new long[MAPPED_RAM_ROUNDS];
                    int channels = ch;
                    for (int i = 0; i < MAPPED_RAM_ROUNDS; i++) {
                        long c0 = processCpuNanos();
                        write[i] = plainWriteFrom(blocks, plain, dio);
                        writeCpu[i] = processCpuNanos() - c0;
                        settle(plain);
                        c0 = processCpuNanos();
                        read[i] = plainReadInto(blocks, plain, dio);
                        readCpu[i] = processCpuNanos() - c0;
                        Files.deleteIfExists(plain);
                        write8[i] = plainWrite(plain, ramBytes, dio);
                        read8[i] = plainRead(plain, dio);
                        Files.deleteIfExists(plain); // its pages back before the save's file takes new ones
                        Files.deleteIfExists(file);
                        c0 = processCpuNanos();
                        save[i] = Snapshots.save(m, mig, file, o, null, 3_600_000).totalNanos();
                        saveCpu[i] = processCpuNanos() - c0;
                        settle(file);
                        if (i == MAPPED_RAM_ROUNDS - 1) {
                            accounts.add(String.format("  %d ch%s: save %.1f ms (plain write %.1f ms): %s", ch,
                                    dio ? ", O_DIRECT" : "", save[i] / 1e6, write[i] / 1e6,
                                    mig.outgoing().mappedRamAccount()));
                        }
                        c0 = processCpuNanos();
                        load[i] = m.mainLoop().call(() -> {
                            long t0 = System.nanoTime();
                            Snapshots.load(m, file, channels, dio, new RamStats());
                            return System.nanoTime() - t0;
                        }, 3_600_000);
                        loadCpu[i] = processCpuNanos() - c0;
                    }
                    cpu.add(String.format("  %d ch%s: save %.0f, plain write %.0f; load %.0f, plain read %.0f", ch,
                            dio ? ", O_DIRECT" : "", median(saveCpu) / 1e6, median(writeCpu) / 1e6,
                            median(loadCpu) / 1e6, median(readCpu) / 1e6));
                    double s = gibPerSec(ramBytes, median(save));
                    double w = gibPerSec(ramBytes, median(write));
                    double w8 = gibPerSec(ramBytes, median(write8));
                    double l = gibPerSec(ramBytes, median(load));
                    double rd = gibPerSec(ramBytes, median(read));
                    double rd8 = gibPerSec(ramBytes, median(read8));
                    String label = ch + (ch == 1 ? " channel" : " channels") + (dio ? ", O_DIRECT" : "");
                    out.printf("  %-26s %6.2f      %6.2f     %.2f   %6.2f  %.2f    %6.2f      %6.2f     %.2f   %6.2f  %.2f%n",
                            label, s, w, s / w, w8, s / w8, l, rd, l / rd, rd8, l / rd8);
                }
            }
            out.printf("  goal: mapped-ram save at >= %.0f%% of the plain write%n", MAPPED_RAM_GOAL * 100);
            out.println("  where each case's last save went:");
            accounts.forEach(out::println);
            out.println("  the process's CPU time in each, ms (medians; the machine's other load does not count):");
            cpu.forEach(out::println);
        }
    }
}
