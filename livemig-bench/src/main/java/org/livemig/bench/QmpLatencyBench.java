package org.livemig.bench;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import org.HdrHistogram.Histogram;
import org.livemig.analyze.Limits;
import org.livemig.analyze.StreamReader;
import org.livemig.analyze.StreamVisitor;
import org.livemig.monitor.QmpClient;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.QemuStream;
import org.livemig.stream.SectionHeader;
import tools.jackson.databind.JsonNode;

/**
 * {@code livemig bench qmp-latency}: how fast a destination's monitor answers while nothing
 * happens, while it loads a migration, and while the source is stalled in the middle of a device
 * section. One QMP client sends {@code query-status} back to back to the destination (a child
 * {@code livemig run --incoming defer}) and records each round trip in an HdrHistogram. The client
 * is a bare blocking socket ({@link QmpPinger}), so that it adds no thread hand-off of its own.
 *
 * <p>Where {@code qemu-system-x86_64} is installed, a real QEMU destination (paused,
 * {@code -incoming defer}, RAM pre-allocated) is measured the same way in the same run, idle and
 * loading the same amount of random RAM from a QEMU source, and the two are printed side by side.
 *
 * <p>The stall is injected with the source's {@code --x-fault-outgoing stall:...} at a byte
 * offset found by first migrating the same source machine to a file and locating the blob
 * device's section in that stream; the stalled run's stream is then checked to have nearly the
 * same size (the RAM part may be cut into sections differently), so that the stall lands inside
 * the blob section, near half-way through its data.
 *
 * <p>Runs on the caller's thread, which is also the sampling client's only user.
 */
public final class QmpLatencyBench {
    /** How often the sampler asks the destination's query-migrate whether the load completed. */
    private static final long COMPLETION_CHECK_NANOS = 50_000_000L;
    private static final int WARMUP_REQUESTS = 3_000;
    private static final long HIGHEST_TRACKABLE_NANOS = TimeUnit.MINUTES.toNanos(10);

    /**
     * @param ramBytes      guest RAM of the loading case (random content) and of the stalled case (zero)
     * @param blobBytes     size of the blob device's state in the stalled case
     * @param stall         how long the source stalls
     * @param idle          how long the idle case samples
     * @param timeout       longest a migration may take
     * @param dir           where sockets, child logs and the probe stream go
     * @param javaCommand   how to start a child JVM running the CLI ({@link ChildMachine#javaCommand})
     * @param qemuBinary    the QEMU measured beside livemig, or null to measure livemig alone
     */
    public record Options(long ramBytes, long blobBytes, Duration stall, Duration idle, Duration timeout, Path dir,
                          List<String> javaCommand, String qemuBinary) {
        public Options {
            Objects.requireNonNull(dir, "dir");
            Objects.requireNonNull(javaCommand, "javaCommand");
            if (ramBytes < (4L << 20)) {
                throw new IllegalArgumentException("--ram must be at least 4M");
            }
            if (blobBytes < (1L << 20) || blobBytes > (1L << 30)) {
                throw new IllegalArgumentException("--blob-size must be between 1M and 1G");
            }
        }
    }

    /** One case's round trips: p50, p99 and max in nanoseconds, and how many. */
    public record Row(String name, long count, long p50, long p99, long max, String note) {
    }

    private final Options options;
    private final PrintStream out;

    /**
     * The child command for a blob of {@code blobBytes}: unless {@code LIVEMIG_CHILD_JAVA_OPTS}
     * says otherwise, a heap of 256 MiB plus five times the blob, because the source encodes all
     * device state into one heap buffer at switchover (the blob, a growing buffer and its copy),
     * and {@link ChildMachine#RUN_JAVA_OPTS}.
     */
    public static List<String> childJavaCommand(long blobBytes) {
        return ChildMachine.javaCommand(false, "-Xmx" + (256 + 5 * (blobBytes >> 20)) + "m " + ChildMachine.RUN_JAVA_OPTS);
    }

    public QmpLatencyBench(Options options, PrintStream out) {
        this.options = options;
        this.out = out;
    }

    /** Round trips with the time each was sent, in arrival order. Owned by the sampling thread. */
    static final class Samples {
        private long[] sentAt = new long[1 << 14];
        private long[] rtt = new long[1 << 14];
        private int n;

        void add(long sent, long nanos) {
            if (n == rtt.length) {
                sentAt = Arrays.copyOf(sentAt, n * 2);
                rtt = Arrays.copyOf(rtt, n * 2);
            }
            sentAt[n] = sent;
            rtt[n] = nanos;
            n++;
        }

        int size() {
            return n;
        }

        /** A histogram of the round trips sent within [from, to). */
        Histogram histogram(long from, long to) {
            Histogram h = new Histogram(HIGHEST_TRACKABLE_NANOS, 3);
            for (int i = 0; i < n; i++) {
                if (sentAt[i] >= from && sentAt[i] < to) {
                    h.recordValue(Math.min(rtt[i], HIGHEST_TRACKABLE_NANOS));
                }
            }
            return h;
        }

        /** The slowest round trip sent within [from, to) as {sent at, nanos}, or null. */
        long[] slowest(long from, long to) {
            long[] worst = null;
            for (int i = 0; i < n; i++) {
                if (sentAt[i] >= from && sentAt[i] < to && (worst == null || rtt[i] > worst[1])) {
                    worst = new long[] {sentAt[i], rtt[i]};
                }
            }
            return worst;
        }

        Histogram histogram() {
            return histogram(Long.MIN_VALUE, Long.MAX_VALUE);
        }
    }

    /** One {@code query-status} round trip. */
    private static void roundTrip(QmpPinger c, Samples into) throws IOException {
        long t0 = System.nanoTime();
        long dt = c.queryStatus();
        if (into != null) {
            into.add(t0, dt);
        }
    }

    private static Samples sampleFor(QmpPinger c, Duration d) throws IOException {
        Samples s = new Samples();
        long end = System.nanoTime() + d.toNanos();
        while (System.nanoTime() < end) {
            roundTrip(c, s);
        }
        return s;
    }

    /**
     * Samples until the destination's query-migrate (asked every 50 ms on {@code control}, from
     * this thread, not recorded) says completed; fails on failed or after the timeout.
     */
    private Samples sampleUntilLoaded(QmpPinger c, QmpClient control) throws IOException {
        Samples s = new Samples();
        long deadline = System.nanoTime() + options.timeout().toNanos();
        long nextCheck = 0;
        while (true) {
            long now = System.nanoTime();
            if (now >= nextCheck) {
                String st = control.execute("query-migrate").path("status").asString();
                if (st.equals("completed")) {
                    return s;
                }
                if (st.equals("failed") || now > deadline) {
                    throw new IOException("the destination's migration is " + st + " after "
                            + TimeUnit.NANOSECONDS.toSeconds(now - (deadline - options.timeout().toNanos())) + " s");
                }
                nextCheck = now + COMPLETION_CHECK_NANOS;
            }
            roundTrip(c, s);
        }
    }

    private static void warmUp(QmpPinger c) throws IOException {
        for (int i = 0; i < WARMUP_REQUESTS; i++) {
            roundTrip(c, null);
        }
    }

    private List<String> machine(long ram, String fill, long blob, long seed) {
        return List.of("--ram", Long.toString(ram), "--vcpus", "2", "--workload", "idle", "--fill", fill,
                "--blob-size", Long.toString(blob), "--seed", Long.toString(seed));
    }

    private List<String> destination(long blob) {
        List<String> a = new ArrayList<>(machine(options.ramBytes(), "zero", blob, 7920));
        a.addAll(List.of("--incoming", "defer", "-S"));
        return a;
    }

    private static void setEvents(QmpClient qmp) throws IOException {
        PrecopyBench.setCapabilities(qmp, 0);
    }

    private void awaitSource(ChildMachine src) throws IOException {
        try {
            src.qmp().waitForEvent("MIGRATION", e -> PrecopyBench.isMigrationEvent(e, "completed", "failed", "cancelled"),
                    options.timeout());
        } catch (TimeoutException e) {
            throw new IOException("the source's migration did not end within " + options.timeout().toSeconds() + " s", e);
        }
        JsonNode q = src.qmp().execute("query-migrate");
        if (!"completed".equals(q.path("status").asString())) {
            throw new IOException("the source's migration ended " + q.path("status").asString() + ": "
                    + q.path("error-desc").asString(""));
        }
    }

    /** Runs the three cases and prints the table; returns its rows (idle, loading, stalled). */
    public List<Row> run() throws Exception {
        out.printf("livemig bench qmp-latency: query-status round trips to a destination, one client, back to back%n");
        out.printf("  destination: `livemig run --incoming defer` child JVM (%s); --ram %d MiB; host %d CPUs, load average %s%n",
                ChildMachine.jvmOptions(options.javaCommand()),
                options.ramBytes() >> 20, Runtime.getRuntime().availableProcessors(), loadAverage());
        out.printf("  beside: %s%n", options.qemuBinary() == null ? "no QEMU"
                : QemuMachine.version(options.qemuBinary()) + " (" + options.qemuBinary() + "), paused, RAM prealloc=on");
        out.flush();
        List<Row> rows = new ArrayList<>();
        String tcp = "tcp:127.0.0.1:";

        // idle, then loading: one destination.
        long livemigPeak;
        try (ChildMachine dst = ChildMachine.start(options.javaCommand(), destination(64 << 10), options.dir(), "lat-dst");
             QmpPinger sampler = dst.pinger()) {
            warmUp(sampler);
            Samples idle = sampleFor(sampler, options.idle());
            rows.add(row("idle", idle.histogram(), "destination in --incoming defer, nothing happening"));
            try (ChildMachine src = ChildMachine.start(options.javaCommand(),
                    machine(options.ramBytes(), "random", 64 << 10, 1), options.dir(), "lat-src")) {
                setEvents(src.qmp());
                src.qmp().execute("migrate-set-parameters", QmpClient.args("max-bandwidth", 0L));
                String uri = tcp + PrecopyBench.freePort();
                dst.qmp().execute("migrate-incoming", QmpClient.args("uri", uri));
                src.qmp().execute("migrate", QmpClient.args("uri", uri));
                Samples loading = sampleUntilLoaded(sampler, dst.qmp());
                awaitSource(src);
                JsonNode q = src.qmp().execute("query-migrate");
                rows.add(row("loading", loading.histogram(), String.format(
                        "%d MiB random RAM over tcp, migrate -> destination completed (source total-time %d ms)",
                        options.ramBytes() >> 20, q.path("total-time").asLong())));
            }
            livemigPeak = dst.peakRssBytes();
        }

        // the same two cases on QEMU, in the same run
        long qemuPeak = -1;
        if (options.qemuBinary() != null) {
            qemuPeak = runQemu(rows);
        }

        // stalled: probe the stream layout, then stall half-way through the blob's data.
        long blob = options.blobBytes();
        Path probe = options.dir().resolve("lat-probe.mig");
        try (ChildMachine src = ChildMachine.start(options.javaCommand(), machine(options.ramBytes(), "zero", blob, 1),
                options.dir(), "lat-probe")) {
            setEvents(src.qmp());
            src.qmp().execute("migrate", QmpClient.args("uri", "file:" + probe));
            awaitSource(src);
        }
        BlobLocation where = locateBlob(probe);
        Files.deleteIfExists(probe);
        long stallAt = where.sectionOffset() + blob / 2;
        out.printf("  stall placement: the stream of a %d MiB zero-RAM source with a %d MiB blob device is %d bytes; the blob's "
                        + "section starts at byte %d; the source stalls %d ms after byte %d%n",
                options.ramBytes() >> 20, blob >> 20, where.streamBytes(), where.sectionOffset(), options.stall().toMillis(),
                stallAt);
        out.flush();
        List<String> srcArgs = new ArrayList<>(machine(options.ramBytes(), "zero", blob, 1));
        srcArgs.addAll(List.of("--x-fault-outgoing", "stall:ms=" + options.stall().toMillis() + ",after=" + stallAt + ",dir=out"));
        try (ChildMachine dst = ChildMachine.start(options.javaCommand(), destination(blob), options.dir(), "lat-dst2");
             ChildMachine src = ChildMachine.start(options.javaCommand(), srcArgs, options.dir(), "lat-src2");
             QmpPinger sampler = dst.pinger()) {
            setEvents(src.qmp());
            src.qmp().execute("migrate-set-parameters", QmpClient.args("max-bandwidth", 0L));
            AtomicLong deviceAt = new AtomicLong();
            src.qmp().onEvent(e -> {
                if (PrecopyBench.isMigrationEvent(e, "device")) {
                    deviceAt.compareAndSet(0, System.nanoTime());
                }
            });
            warmUp(sampler);
            String uri = tcp + PrecopyBench.freePort();
            dst.qmp().execute("migrate-incoming", QmpClient.args("uri", uri));
            src.qmp().execute("migrate", QmpClient.args("uri", uri));
            Samples all = sampleUntilLoaded(sampler, dst.qmp());
            long loadedAt = System.nanoTime();
            awaitSource(src);
            JsonNode q = src.qmp().execute("query-migrate");
            long transferred = q.path("ram").path("transferred").asLong();
            if (deviceAt.get() == 0) {
                throw new IOException("no MIGRATION event with status device from the source");
            }
            // The RAM part may be cut into a different number of sections (18 bytes each) than in
            // the probe; anything much less than half the blob still puts the stall inside its data.
            long shift = transferred - where.streamBytes();
            if (Math.abs(shift) > blob / 4) {
                throw new IOException("the stalled run's stream has " + transferred + " bytes, the probe's "
                        + where.streamBytes() + ": the stall may not have landed inside the blob section");
            }
            long totalTime = q.path("total-time").asLong();
            if (totalTime < options.stall().toMillis()) {
                throw new IOException("the source's total-time " + totalTime + " ms is shorter than the stall");
            }
            long windowMs = (loadedAt - deviceAt.get()) / 1_000_000;
            long[] worst = all.slowest(deviceAt.get(), loadedAt);
            if (worst != null) {
                out.printf("  slowest round trip of the stalled case: %.1f ms, sent %d ms after the source entered switchover%n",
                        worst[1] / 1e6, (worst[0] - deviceAt.get()) / 1_000_000);
            }
            rows.add(row("stalled", all.histogram(deviceAt.get(), loadedAt), String.format(
                    "source in switchover (status device) -> destination completed: %d ms, of which %d ms stalled inside"
                            + " the blob section (stream %d bytes, %+d against the probe)",
                    windowMs, options.stall().toMillis(), transferred, shift)));
        }
        print(rows);
        long ram = options.ramBytes();
        out.printf("destination's peak RSS beyond guest RAM over idle and loading: livemig %s MiB, QEMU %s%n",
                mib(livemigPeak - ram), qemuPeak < 0 ? "(not measured)" : mib(qemuPeak - ram) + " MiB");
        out.flush();
        return rows;
    }

    private static String mib(long bytes) {
        return String.format("%.1f", bytes / 1048576.0);
    }

    /**
     * QEMU's idle and loading cases: a QEMU destination sampled idle, then while a QEMU source
     * migrates {@code --ram} of random RAM to it. Returns the destination's peak RSS.
     */
    private long runQemu(List<Row> rows) throws Exception {
        String qemu = options.qemuBinary();
        Path ramFile = options.dir().resolve("qemu-src.ram");
        QemuMachine.writeRandomRam(ramFile, options.ramBytes(), 1);
        try (QemuMachine dst = QemuMachine.start(qemu, options.ramBytes(), null, true, options.dir(), "qemu-dst");
             QmpPinger sampler = QmpPinger.connect(dst.pingSocket(), Duration.ofSeconds(10))) {
            warmUp(sampler);
            Samples idle = sampleFor(sampler, options.idle());
            rows.add(row("qemu-idle", idle.histogram(), "QEMU destination in -incoming defer, paused, nothing happening"));
            try (QemuMachine src = QemuMachine.start(qemu, options.ramBytes(), ramFile, false, options.dir(), "qemu-src")) {
                setEvents(src.qmp());
                src.qmp().execute("migrate-set-parameters", QmpClient.args("max-bandwidth", QEMU_UNLIMITED_BANDWIDTH));
                String uri = "tcp:127.0.0.1:" + PrecopyBench.freePort();
                dst.qmp().execute("migrate-incoming", QmpClient.args("uri", uri));
                src.qmp().execute("migrate", QmpClient.args("uri", uri));
                Samples loading = sampleUntilLoaded(sampler, dst.qmp());
                JsonNode q = awaitQemuSource(src);
                rows.add(row("qemu-loading", loading.histogram(), String.format(
                        "QEMU -> QEMU, %d MiB random RAM over tcp (source total-time %d ms)",
                        options.ramBytes() >> 20, q.path("total-time").asLong())));
            }
            return ProcessStats.peakRssBytes(dst.pid());
        } finally {
            Files.deleteIfExists(ramFile);
        }
    }

    /** QEMU's max-bandwidth default is 128 MiB/s; livemig's children are unthrottled (0): 100 GiB/s is as good. */
    static final long QEMU_UNLIMITED_BANDWIDTH = 100L << 30;

    /** Waits for a QEMU source's migration to end, polling query-migrate; returns its last answer when completed. */
    private JsonNode awaitQemuSource(QemuMachine src) throws IOException, InterruptedException {
        long deadline = System.nanoTime() + options.timeout().toNanos();
        while (true) {
            JsonNode q = src.qmp().execute("query-migrate");
            String st = q.path("status").asString();
            if (st.equals("completed")) {
                return q;
            }
            if (st.equals("failed") || st.equals("cancelled") || System.nanoTime() > deadline) {
                throw new IOException("the QEMU source's migration is " + st + ": " + q.path("error-desc").asString(""));
            }
            Thread.sleep(20); // QEMU's own process: polled, as a management tool does
        }
    }

    private static Row row(String name, Histogram h, String note) {
        return new Row(name, h.getTotalCount(), h.getValueAtPercentile(50), h.getValueAtPercentile(99), h.getMaxValue(),
                note);
    }

    private void print(List<Row> rows) {
        out.println();
        out.printf("%-12s %9s %10s %10s %10s   %s%n", "case", "count", "p50 ms", "p99 ms", "max ms", "what");
        for (Row r : rows) {
            out.printf("%-12s %9d %10.3f %10.3f %10.3f   %s%n", r.name(), r.count(), r.p50() / 1e6, r.p99() / 1e6,
                    r.max() / 1e6, r.note());
        }
        Row idle = rows.get(0);
        out.println();
        for (Row r : rows) {
            if (r.name().equals("loading") || r.name().equals("stalled")) {
                double ratio = idle.p99() > 0 ? (double) r.p99() / idle.p99() : Double.NaN;
                out.printf("p99 %s/idle: %.2fx (goal <= 2x: %s)%n", r.name(), ratio, ratio <= 2 ? "met" : "NOT met");
            }
        }
        for (String c : List.of("idle", "loading")) {
            Row l = find(rows, c);
            Row q = find(rows, "qemu-" + c);
            double goal = c.equals("idle") ? 0.5 : 1.0;
            out.printf("%s: p99 %.3f ms (goal <= %.1f ms: %s), max %.3f ms (goal <= 5 ms: %s)", c, l.p99() / 1e6, goal,
                    l.p99() <= goal * 1e6 ? "met" : "NOT met", l.max() / 1e6, l.max() <= 5_000_000 ? "met" : "NOT met");
            if (q != null) {
                out.printf("; livemig/QEMU p50 %.2fx, p99 %.2fx, max %.2fx%n", ratio(l.p50(), q.p50()),
                        ratio(l.p99(), q.p99()), ratio(l.max(), q.max()));
            } else {
                out.println();
            }
        }
        if (options.qemuBinary() == null) {
            out.println("QEMU: skipped (" + QemuMachine.BINARY + " not installed, or --qemu none)");
        }
        out.flush();
    }

    private static Row find(List<Row> rows, String name) {
        return rows.stream().filter(r -> r.name().equals(name)).findFirst().orElse(null);
    }

    private static double ratio(long a, long b) {
        return b > 0 ? (double) a / b : Double.NaN;
    }

    static String loadAverage() {
        try {
            String[] f = Files.readString(Path.of("/proc/loadavg")).trim().split("\\s+");
            return f[0] + " " + f[1] + " " + f[2];
        } catch (IOException | RuntimeException e) {
            return "n/a";
        }
    }

    // ---------------------------------------------------------------- the probe

    /** Where the blob device's FULL section starts in a stream, and the stream's size. */
    record BlobLocation(long sectionOffset, long streamBytes) {
    }

    /** Thrown by the probe's visitor to stop reading once the blob section's header is seen. */
    private static final class BlobFound extends RuntimeException {
        private final long offset;

        BlobFound(long offset) {
            super("blob section at " + offset, null, false, false);
            this.offset = offset;
        }
    }

    /** Reads a stream file up to the blob device's FULL section header. */
    static BlobLocation locateBlob(Path stream) throws IOException {
        StreamVisitor v = new StreamVisitor() {
            @Override
            public void sectionStart(SectionHeader h) {
                if (h.type() == QemuStream.SECTION_FULL && h.idstr().equals("blob")) {
                    throw new BlobFound(h.offset());
                }
            }
        };
        try (FileChannel ch = FileChannel.open(stream, StandardOpenOption.READ);
             StreamReader r = new StreamReader(v, Limits.DEFAULT, null, null, false)) {
            r.read(MigrationFile.forReading(ch));
        } catch (BlobFound f) {
            return new BlobLocation(f.offset, Files.size(stream));
        }
        throw new IOException("no 'blob' device section in " + stream);
    }
}
