package org.livemig.bench;

import java.io.IOException;
import java.io.PrintStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.ToLongFunction;
import org.livemig.monitor.QmpClient;
import org.livemig.monitor.QmpJson;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.node.ArrayNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * {@code livemig bench precopy}: live precopy migrations between two {@code livemig run} child
 * processes driven over QMP as {@code livemig demo} drives them, one case at a time, against a
 * raw loopback-socket copy of the same number of bytes measured in the same run.
 *
 * <p>Each case reports what the source's query-migrate reports at completion (total-time from
 * {@code migrate} to completion, downtime, dirty-sync-count), the throughput of guest RAM over
 * total-time, when the destination reported completion, and the peak resident memory (VmHWM)
 * of both children against guest RAM + 200 MiB. Guest RAM is allocated, pre-faulted and filled
 * in the children before {@code migrate} is sent, so none of that is timed.
 *
 * <p>Runs on the caller's thread; the children's QMP clients deliver events on their own.
 */
public final class PrecopyBench {
    /** The memory a process may hold beyond guest RAM (issue 3's goal). */
    public static final long RSS_ALLOWANCE = 200L << 20;
    /** QEMU's default downtime-limit in ms, used for every case. */
    public static final long DOWNTIME_LIMIT_MS = 300;
    private static final Duration DESTINATION_TIMEOUT = Duration.ofSeconds(60);

    /**
     * One benchmark case.
     *
     * @param ramDivisor guest RAM is {@code --ram} divided by this
     * @param runBeforeMillis how long the guest runs before {@code migrate} (dirtying workloads)
     * @param multifd    multifd-channels with the multifd capability on both sides, or 0 for off
     * @param tls        "" for none, "x509" or "psk": credentials made for the run, tls-creds set on both sides
     */
    public record Case(String name, String what, int ramDivisor, String fill, String workload,
                       LoopbackCopy.Transport transport, long runBeforeMillis, int multifd, Encoding encoding, String tls) {
        Case(String name, String what, int ramDivisor, String fill, String workload, LoopbackCopy.Transport transport,
             long runBeforeMillis, int multifd) {
            this(name, what, ramDivisor, fill, workload, transport, runBeforeMillis, multifd, Encoding.NONE, "");
        }

        Case(String name, String what, int ramDivisor, String fill, String workload, LoopbackCopy.Transport transport,
             long runBeforeMillis, int multifd, Encoding encoding) {
            this(name, what, ramDivisor, fill, workload, transport, runBeforeMillis, multifd, encoding, "");
        }

        Case(String name, String what, int ramDivisor, String fill, String workload, LoopbackCopy.Transport transport,
             long runBeforeMillis, int multifd, String tls) {
            this(name, what, ramDivisor, fill, workload, transport, runBeforeMillis, multifd, Encoding.NONE, tls);
        }

        long ram(long ramOption) {
            return ramOption / ramDivisor;
        }
    }

    /**
     * What a case adds to a plain migration.
     *
     * @param maxBandwidth       the source's max-bandwidth in bytes/s, 0 for unlimited
     * @param xbzrleCacheSize    with the xbzrle capability on the source, its cache; 0 for off
     * @param multifdCompression multifd-compression on both sides
     * @param timeout            how long before a case that does not converge is cancelled, or null for --timeout
     */
    public record Encoding(long maxBandwidth, long xbzrleCacheSize, String multifdCompression, Duration timeout) {
        static final Encoding NONE = new Encoding(0, 0, "none", null);
    }

    /** ab:25000 capped at 32 MiB/s: whole pages cannot keep up with it, XBZRLE deltas can (issue 17 (a)). */
    private static final Duration AB_CAPPED_TIMEOUT = Duration.ofSeconds(60);

    /** Every case, in the order they run. */
    public static final List<Case> CASES = List.of(
            new Case("random-tcp", "idle guest, random RAM", 1, "random", "idle", LoopbackCopy.Transport.TCP, 0, 0),
            new Case("random-unix", "idle guest, random RAM", 1, "random", "idle", LoopbackCopy.Transport.UNIX, 0, 0),
            new Case("zero-tcp", "idle guest, zero RAM", 1, "zero", "idle", LoopbackCopy.Transport.TCP, 0, 0),
            new Case("ab25000-tcp", "ab:25000 (25,000 pages/s over 99 MiB)", 2, "zero", "ab:25000",
                    LoopbackCopy.Transport.TCP, 500, 0),
            new Case("ab-tcp", "ab unthrottled", 1, "zero", "ab", LoopbackCopy.Transport.TCP, 500, 0),
            new Case("random-tcp-mfd2", "idle guest, random RAM, multifd 2 channels", 1, "random", "idle",
                    LoopbackCopy.Transport.TCP, 0, 2),
            new Case("random-unix-mfd2", "idle guest, random RAM, multifd 2 channels", 1, "random", "idle",
                    LoopbackCopy.Transport.UNIX, 0, 2),
            new Case("ab25000-bw32", "ab:25000, max-bandwidth 32 MiB/s", 2, "zero", "ab:25000",
                    LoopbackCopy.Transport.TCP, 500, 0, new Encoding(32L << 20, 0, "none", AB_CAPPED_TIMEOUT)),
            new Case("ab25000-bw32-xbzrle", "ab:25000, max-bandwidth 32 MiB/s, xbzrle (cache 128 MiB)", 2, "zero",
                    "ab:25000", LoopbackCopy.Transport.TCP, 500, 0,
                    new Encoding(32L << 20, 128L << 20, "none", AB_CAPPED_TIMEOUT)),
            new Case("mixed-mfd2-none", "idle guest, mixed compressible RAM, multifd 2 channels", 1, "mixed", "idle",
                    LoopbackCopy.Transport.TCP, 0, 2),
            new Case("mixed-mfd2-zlib", "idle guest, mixed compressible RAM, multifd 2 channels, zlib", 1, "mixed",
                    "idle", LoopbackCopy.Transport.TCP, 0, 2, new Encoding(0, 0, "zlib", null)),
            new Case("mixed-mfd2-zstd", "idle guest, mixed compressible RAM, multifd 2 channels, zstd", 1, "mixed",
                    "idle", LoopbackCopy.Transport.TCP, 0, 2, new Encoding(0, 0, "zstd", null)),
            new Case("random-tcp-x509", "idle guest, random RAM, TLS with X.509 (TLS 1.3, AES-128-GCM)", 1, "random", "idle",
                    LoopbackCopy.Transport.TCP, 0, 0, "x509"),
            new Case("random-tcp-psk", "idle guest, random RAM, TLS with a pre-shared key (TLS 1.3, AES-128-GCM)", 1, "random", "idle",
                    LoopbackCopy.Transport.TCP, 0, 0, "psk"),
            new Case("random-tcp-mfd2-x509", "idle guest, random RAM, multifd 2 channels, TLS with X.509", 1, "random", "idle",
                    LoopbackCopy.Transport.TCP, 0, 2, "x509"));

    /** The outcome of one run of one case. */
    public record Result(Case c, long ramBytes, int run, String status, long totalMs, long downtimeMs, long setupMs,
                         long passes, long transferred, long dstDoneMs, long srcPeakRss, long dstPeakRss,
                         String busiestThreads, String error, String encoding, String startup) {
        boolean completed() {
            return "completed".equals(status);
        }

        /** Guest RAM over total-time, in MB/s (10^6 bytes). */
        double mbPerSec() {
            return totalMs > 0 ? ramBytes / 1e3 / totalMs : 0;
        }
    }

    /**
     * @param ramBytes      the {@code --ram} option: guest RAM of the full-size cases
     * @param cases         names of the cases to run, in {@link #CASES} order
     * @param repeat        runs per case
     * @param timeout       longest a migration may take before it is cancelled (does not converge)
     * @param dir           where sockets and child logs go
     * @param javaCommand   how to start a child JVM running the CLI ({@link ChildMachine#javaCommand})
     * @param warmUp        whether the children warm up at startup ({@code livemig run}'s default)
     */
    public record Options(long ramBytes, List<String> cases, int repeat, Duration timeout, Path dir,
                          List<String> javaCommand, boolean warmUp) {
        public Options {
            Objects.requireNonNull(cases, "cases");
            Objects.requireNonNull(dir, "dir");
            Objects.requireNonNull(javaCommand, "javaCommand");
            if (ramBytes < (4L << 20)) {
                throw new IllegalArgumentException("--ram must be at least 4M");
            }
            if (repeat < 1) {
                throw new IllegalArgumentException("--repeat must be at least 1");
            }
            Set<String> known = new java.util.HashSet<>(CASES.stream().map(Case::name).toList());
            for (String c : cases) {
                if (!known.contains(c)) {
                    throw new IllegalArgumentException("unknown case '" + c + "' (expected some of "
                            + String.join(", ", CASES.stream().map(Case::name).toList()) + ")");
                }
            }
        }
    }

    private final Options options;
    private final PrintStream out;

    public PrecopyBench(Options options, PrintStream out) {
        this.options = options;
        this.out = out;
    }

    private List<Case> selected() {
        List<Case> s = new ArrayList<>();
        for (Case c : CASES) {
            if (options.cases().isEmpty() || options.cases().contains(c.name())) {
                s.add(c);
            }
        }
        return s;
    }

    /** Runs the selected cases and prints the tables; returns every run's result. */
    public List<Result> run() throws Exception {
        List<Case> cases = selected();
        out.printf("livemig bench precopy: --ram %d MiB, %d run(s) per case, max-bandwidth 0 (unlimited) unless a case caps it, downtime-limit %d ms%n",
                options.ramBytes() >> 20, options.repeat(), DOWNTIME_LIMIT_MS);
        out.println("  source and destination: two `livemig run` child JVMs driven over QMP (java "
                + ChildMachine.jvmOptions(options.javaCommand()) + "), "
                + (options.warmUp() ? "each warming up at startup (scratch migrations) while its RAM is pre-faulted and filled;"
                        + " `migrate` is sent once both have finished warming up"
                        : "cold (--no-warm-up)"));
        out.println("  times are the source's query-migrate at completion: total-time from `migrate` to completion, downtime;");
        out.println("  guest RAM is allocated, pre-faulted and filled before `migrate` and is not timed");
        out.printf("  host: %d CPUs, load average %s at start (other work may share the machine)%n",
                Runtime.getRuntime().availableProcessors(), loadAverage());
        out.flush();

        Map<String, Double> baseline = baselines(cases);
        out.println();
        out.println("MB/s = guest RAM (10^6 bytes) / total-time; ratio = MB/s / baseline MB/s of the same transport and size;");
        out.println("dst done = `migrate` sent -> destination's MIGRATION completed event seen by this process; "
                + "HWM = peak RSS (VmHWM) of each child");
        String head = String.format("%-20s %3s %7s %-10s %8s %8s %6s %6s %8s %7s %6s %8s %8s %8s %8s",
                "case", "run", "RAM MiB", "status", "total ms", "down ms", "setup", "passes", "wire MiB",
                "MB/s", "ratio", "dst done", "src HWM", "dst HWM", "limit");
        out.println(head);
        out.flush();
        List<Result> results = new ArrayList<>();
        for (Case c : cases) {
            for (int run = 1; run <= options.repeat(); run++) {
                Result r = runCase(c, run);
                results.add(r);
                double base = baseline.getOrDefault(baselineKey(c), 0.0);
                out.printf("%-20s %3d %7d %-10s %8s %8s %6s %6d %8d %7.0f %6s %8s %8s %8s %8d%n",
                        c.name(), run, r.ramBytes() >> 20, r.status(), ms(r.totalMs()), ms(r.downtimeMs()),
                        ms(r.setupMs()), r.passes(), r.transferred() >> 20, r.mbPerSec(),
                        base > 0 && r.completed() ? String.format("%.2f", r.mbPerSec() / base) : "-",
                        ms(r.dstDoneMs()), mib(r.srcPeakRss()), mib(r.dstPeakRss()),
                        (r.ramBytes() + RSS_ALLOWANCE) >> 20);
                if (r.error() != null) {
                    out.println("    " + r.error());
                }
                if (!r.encoding().isEmpty()) {
                    out.println("    " + r.encoding());
                }
                if (!r.busiestThreads().isEmpty()) {
                    out.println("    busiest threads, CPU s (% of migrate -> dst done): " + r.busiestThreads());
                }
                if (!r.startup().isEmpty()) {
                    out.println("    " + r.startup());
                }
                out.flush();
            }
        }
        printGoals(results, baseline);
        return results;
    }


    private static String loadAverage() {
        try {
            String[] f = java.nio.file.Files.readString(Path.of("/proc/loadavg")).trim().split("\\s+");
            return f[0] + " " + f[1] + " " + f[2];
        } catch (IOException | RuntimeException e) {
            return "n/a";
        }
    }

    private static String baselineKey(Case c) {
        return c.transport() + "/" + c.ramDivisor();
    }

    private static String ms(long v) {
        return v < 0 ? "-" : Long.toString(v);
    }

    private static String mib(long bytes) {
        return bytes < 0 ? "n/a" : Long.toString(bytes >> 20);
    }

    // ---------------------------------------------------------------- baseline

    private void printCopy(LoopbackCopy.Transport t, long bytes, LoopbackCopy.Result r, String note) {
        out.printf("  %-5s %5d MiB  %7.1f ms  %7.0f MB/s   CPU s: sender %.2f, receiver %.2f%s%n",
                t.name().toLowerCase(java.util.Locale.ROOT), bytes >> 20, r.nanos() / 1e6,
                bytes / 1e6 / (r.nanos() / 1e9), r.senderCpuNanos() / 1e9, r.receiverCpuNanos() / 1e9, note);
    }

    /** A page: the read size of the per-page baseline line. */
    private static final int PAGE_READ_BYTES = 4096;

    /** Best of three loopback copies of each case's RAM size per transport, after a warm-up. */
    private Map<String, Double> baselines(List<Case> cases) throws IOException, InterruptedException {
        Map<String, Long> sizes = new LinkedHashMap<>();
        for (Case c : cases) {
            sizes.putIfAbsent(baselineKey(c), c.ram(options.ramBytes()));
        }
        Map<String, Double> mbps = new LinkedHashMap<>();
        long max = sizes.values().stream().mapToLong(Long::longValue).max().orElse(0);
        if (max == 0) {
            return mbps;
        }
        out.println();
        out.println("baseline: raw loopback copy of the same bytes, memory to memory, one Java sender and receiver thread,");
        out.printf("  %d MiB writes/reads, %d MiB socket buffers; best of 3 after a warm-up%n",
                LoopbackCopy.CHUNK_BYTES >> 20, LoopbackCopy.SOCKET_BUFFER_BYTES >> 20);
        try (Arena arena = Arena.ofShared()) {
            MemorySegment src = arena.allocate(max, 4096);
            MemorySegment dst = arena.allocate(max, 4096);
            src.fill((byte) 0x5A); // pre-fault both regions before any timing
            dst.fill((byte) 0);
            for (Map.Entry<String, Long> e : sizes.entrySet()) {
                LoopbackCopy.Transport t = LoopbackCopy.Transport.valueOf(e.getKey().substring(0, e.getKey().indexOf('/')));
                long bytes = e.getValue();
                LoopbackCopy.copy(t, src, dst, Math.min(bytes, 256L << 20), options.dir()); // warm-up
                LoopbackCopy.Result best = null;
                for (int i = 0; i < 3; i++) {
                    LoopbackCopy.Result r = LoopbackCopy.copy(t, src, dst, bytes, options.dir());
                    if (best == null || r.nanos() < best.nanos()) {
                        best = r;
                    }
                }
                double v = bytes / 1e6 / (best.nanos() / 1e9);
                mbps.put(e.getKey(), v);
                printCopy(t, bytes, best, "");
                // Context for the destination's design, not a ratio's base: what reading every
                // page straight into RAM (a read per page) would cost; see MigrationFile.readInto.
                printCopy(t, bytes, LoopbackCopy.copy(t, src, dst, bytes, options.dir(), PAGE_READ_BYTES),
                        "   (4 KiB reads, one run)");
            }
        }
        out.flush();
        return mbps;
    }

    // ---------------------------------------------------------------- one run

    private List<String> machineArgs(Case c, long ram, boolean destination) {
        return List.of("--ram", Long.toString(ram), "--vcpus", "2", "--workload", c.workload(),
                "--fill", destination ? "zero" : c.fill(), "--blob-size", "65536",
                "--seed", destination ? "7920" : "1", options.warmUp() ? "--warm-up" : "--no-warm-up");
    }

    private Result runCase(Case c, int run) throws Exception {
        long ram = c.ram(options.ramBytes());
        String tag = c.name() + "-" + run;
        String uri = c.transport() == LoopbackCopy.Transport.TCP ? "tcp:127.0.0.1:" + freePort()
                : "unix:" + options.dir().resolve(tag + ".mig.sock");
        List<String> dstArgs = new ArrayList<>(machineArgs(c, ram, true));
        dstArgs.addAll(List.of("--incoming", "defer", "-S"));
        List<String> srcArgs = new ArrayList<>(machineArgs(c, ram, false));
        if (!c.tls().isEmpty()) {
            BenchCredentials.Objects o = BenchCredentials.make(c.tls(), options.dir().resolve(tag + "-creds"));
            dstArgs.addAll(List.of("--object", o.server()));
            srcArgs.addAll(List.of("--object", o.client()));
        }
        try (ChildMachine dst = ChildMachine.start(options.javaCommand(), dstArgs, options.dir(), "dst-" + tag);
             ChildMachine src = ChildMachine.start(options.javaCommand(), srcArgs, options.dir(),
                     "src-" + tag)) {
            String startup = startup(src, dst);
            setCapabilities(src.qmp(), c.multifd(), c.encoding().xbzrleCacheSize() > 0);
            setCapabilities(dst.qmp(), c.multifd(), false);
            if (!c.tls().isEmpty()) {
                src.qmp().execute("migrate-set-parameters", QmpClient.args("tls-creds", "tls0"));
                dst.qmp().execute("migrate-set-parameters", QmpClient.args("tls-creds", "tls0"));
            }
            src.qmp().execute("migrate-set-parameters",
                    QmpClient.args("max-bandwidth", c.encoding().maxBandwidth(), "downtime-limit", DOWNTIME_LIMIT_MS));
            if (c.encoding().xbzrleCacheSize() > 0) {
                src.qmp().execute("migrate-set-parameters", QmpClient.args("xbzrle-cache-size", c.encoding().xbzrleCacheSize()));
            }
            if (!"none".equals(c.encoding().multifdCompression())) {
                for (QmpClient q : List.of(src.qmp(), dst.qmp())) {
                    q.execute("migrate-set-parameters", QmpClient.args("multifd-compression", c.encoding().multifdCompression()));
                }
            }
            AtomicLong dstDone = new AtomicLong();
            dst.qmp().onEvent(e -> {
                if (isMigrationEvent(e, "completed")) {
                    dstDone.compareAndSet(0, System.nanoTime());
                }
            });
            dst.qmp().execute("migrate-incoming", QmpClient.args("uri", uri));
            if (c.runBeforeMillis() > 0) {
                Thread.sleep(c.runBeforeMillis()); // the guest runs and dirties memory before the migration starts
            }
            Map<String, Long> srcCpu0 = cpuSnapshot(src.pid());
            Map<String, Long> dstCpu0 = cpuSnapshot(dst.pid());
            long t0 = System.nanoTime();
            src.qmp().execute("migrate", QmpClient.args("uri", uri));
            String error = null;
            Duration timeout = c.encoding().timeout() != null ? c.encoding().timeout() : options.timeout();
            try {
                src.qmp().waitForEvent("MIGRATION", e -> isMigrationEvent(e, "completed", "failed", "cancelled"),
                        timeout);
            } catch (TimeoutException e) {
                src.qmp().execute("migrate_cancel");
                error = "did not converge within " + timeout.toSeconds() + " s; cancelled";
                try {
                    src.qmp().waitForEvent("MIGRATION", ev -> isMigrationEvent(ev, "cancelled", "failed"),
                            DESTINATION_TIMEOUT);
                } catch (TimeoutException stillRunning) {
                    error += " (and it did not stop within " + DESTINATION_TIMEOUT.toSeconds() + " s)";
                }
            }
            ObjectNode q = (ObjectNode) src.qmp().execute("query-migrate");
            String status = q.path("status").asString();
            if ("completed".equals(status)) {
                try {
                    dst.qmp().waitForEvent("MIGRATION", e -> isMigrationEvent(e, "completed", "failed"),
                            DESTINATION_TIMEOUT);
                } catch (TimeoutException e) {
                    error = "the destination did not complete within " + DESTINATION_TIMEOUT.toSeconds() + " s";
                }
                JsonNode dq = dst.qmp().execute("query-migrate");
                if (!"completed".equals(dq.path("status").asString())) {
                    status = "dst-" + dq.path("status").asString();
                    error = dq.path("error-desc").asString(error == null ? "" : error);
                }
            } else if (error == null) {
                error = q.path("error-desc").asString("");
            }
            long done = dstDone.get();
            long wall = (done == 0 ? System.nanoTime() : done) - t0;
            String busiest = "src " + busiest(srcCpu0, cpuSnapshot(src.pid()), wall)
                    + "; dst " + busiest(dstCpu0, cpuSnapshot(dst.pid()), wall);
            JsonNode ramInfo = q.path("ram");
            JsonNode x = q.path("xbzrle-cache");
            String encoded = x.isMissingNode() ? "" : String.format(
                    "xbzrle: %d pages as deltas (cache hits), %d misses, %d overflows, %d delta bytes, encoding rate %.1f",
                    x.path("pages").asLong(), x.path("cache-miss").asLong(), x.path("overflow").asLong(),
                    x.path("bytes").asLong(), x.path("encoding-rate").asDouble());
            if (!"none".equals(c.encoding().multifdCompression())) {
                encoded = String.format("%s: %d MiB of pages (normal) went as %d MiB on the channels",
                        c.encoding().multifdCompression(), ramInfo.path("normal-bytes").asLong() >> 20,
                        ramInfo.path("multifd-bytes").asLong() >> 20);
            }
            return new Result(c, ram, run, error != null && status.equals("cancelled") ? "no-conv" : status,
                    q.path("total-time").asLong(-1), q.path("downtime").asLong(-1), q.path("setup-time").asLong(-1),
                    Math.max(0, ramInfo.path("dirty-sync-count").asLong() - 1), // the setup sync ends no pass
                    ramInfo.path("transferred").asLong(),
                    done == 0 ? -1 : (done - t0) / 1_000_000, src.peakRssBytes(), dst.peakRssBytes(),
                    srcCpu0.isEmpty() ? "" : busiest + "; C2 share of process CPU: src " + c2Share(srcCpu0, cpuSnapshot(src.pid()))
                            + ", dst " + c2Share(dstCpu0, cpuSnapshot(dst.pid())), error, encoded, startup);
        }
    }

    /** The thread name (as /proc shows it, cut to 15 characters) of the warm-up a child runs at startup. */
    private static final String WARM_UP_THREAD = "livemig-warm-up";
    /** The TLS warm-up's thread, as /proc shows it (a child with TLS credentials runs it first). */
    private static final String TLS_WARM_UP_THREAD = "livemig-tls-war";
    /** Longest wait for the children's warm-up to end before `migrate` is sent anyway. */
    private static final long WARM_UP_WAIT_NANOS = 60_000_000_000L;
    /** C2's compiler threads, as /proc names them. */
    private static final String C2_THREADS = "C2 CompilerThre";

    /**
     * Each child's process CPU when its QMP socket opened (JVM start, RAM filled, and the part of
     * the warm-up that ran meanwhile), and, with warm children, after waiting for both warm-ups to
     * end: what the warm-up cost beyond that, and how long it ran past the socket. A migration
     * started before the warm-up ends runs beside it and cancels it, which measures neither.
     */
    private String startup(ChildMachine src, ChildMachine dst) throws InterruptedException {
        long srcReady = ProcessStats.processCpuNanos(src.pid());
        long dstReady = ProcessStats.processCpuNanos(dst.pid());
        if (srcReady < 0 || dstReady < 0) {
            return "";
        }
        if (!options.warmUp()) {
            return String.format("process CPU s at QMP ready (cold): src %.2f, dst %.2f", srcReady / 1e9, dstReady / 1e9);
        }
        long t0 = System.nanoTime();
        long deadline = t0 + WARM_UP_WAIT_NANOS;
        while ((warmingUp(src) || warmingUp(dst)) && System.nanoTime() < deadline) {
            Thread.sleep(20); // a warm-up ending sends no event over QMP
        }
        boolean ended = !warmingUp(src) && !warmingUp(dst);
        return String.format("process CPU s at QMP ready: src %.2f, dst %.2f; then %s %.0f ms later: src +%.2f, dst +%.2f",
                srcReady / 1e9, dstReady / 1e9, ended ? "warm-ups ended" : "warm-ups still running", (System.nanoTime() - t0) / 1e6,
                (ProcessStats.processCpuNanos(src.pid()) - srcReady) / 1e9,
                (ProcessStats.processCpuNanos(dst.pid()) - dstReady) / 1e9);
    }

    /**
     * Whether a child's warm-ups run: its TLS warm-up or its scratch migrations, which start
     * after its monitor opens and before its ready line (until that line, it counts as warming up).
     */
    private static boolean warmingUp(ChildMachine m) {
        Map<String, Long> threads = ProcessStats.threadCpuNanos(m.pid());
        return threads.containsKey(WARM_UP_THREAD) || threads.containsKey(TLS_WARM_UP_THREAD) || !saidReady(m);
    }

    private static boolean saidReady(ChildMachine m) {
        try {
            return Files.readString(m.log()).contains("livemig run: ready");
        } catch (java.io.IOException e) {
            return true; // no log to read: the thread check alone
        }
    }

    /** C2's CPU between two snapshots as a share of the whole process's, e.g. "3% (0.01 of 0.40 s)". */
    private static String c2Share(Map<String, Long> before, Map<String, Long> after) {
        if (before.isEmpty() || after.isEmpty()) {
            return "-";
        }
        long c2 = after.getOrDefault(C2_THREADS, 0L) - before.getOrDefault(C2_THREADS, 0L);
        long all = after.get(PROCESS) - before.get(PROCESS);
        return String.format("%.0f%% (%.2f of %.2f s)", 100.0 * c2 / Math.max(1, all), c2 / 1e9, all / 1e9);
    }

    /** Key of the whole process's CPU time in a {@link #cpuSnapshot}. */
    private static final String PROCESS = "(process)";
    /** What a process used beyond its live threads: threads that ended, i.e. the migration threads. */
    private static final String ENDED = "ended threads (mig/*)";

    /** CPU time per live thread name, and of the whole process under {@link #PROCESS}; empty without /proc. */
    private static Map<String, Long> cpuSnapshot(long pid) {
        Map<String, Long> m = new java.util.HashMap<>(ProcessStats.threadCpuNanos(pid));
        long total = ProcessStats.processCpuNanos(pid);
        if (m.isEmpty() || total < 0) {
            return Map.of();
        }
        m.put(PROCESS, total);
        return m;
    }

    /**
     * The three threads that used the most CPU between two snapshots, with seconds and share of
     * {@code wallNanos}. The migration threads end with the migration, so their time shows as what
     * the process used beyond its live threads.
     */
    private static String busiest(Map<String, Long> before, Map<String, Long> after, long wallNanos) {
        if (before.isEmpty() || after.isEmpty()) {
            return "-";
        }
        List<Map.Entry<String, Long>> used = new ArrayList<>();
        long live = 0;
        for (Map.Entry<String, Long> e : after.entrySet()) {
            if (!e.getKey().equals(PROCESS)) {
                long d = e.getValue() - before.getOrDefault(e.getKey(), 0L);
                live += d;
                used.add(Map.entry(e.getKey(), d));
            }
        }
        used.add(Map.entry(ENDED, after.get(PROCESS) - before.get(PROCESS) - live));
        used.sort(Map.Entry.<String, Long>comparingByValue().reversed());
        List<String> top = new ArrayList<>();
        for (Map.Entry<String, Long> e : used.subList(0, Math.min(3, used.size()))) {
            if (e.getValue() > 0) {
                top.add(String.format("%s %.2f (%.0f%%)", e.getKey(), e.getValue() / 1e9,
                        100.0 * e.getValue() / Math.max(1, wallNanos)));
            }
        }
        return top.isEmpty() ? "-" : String.join(", ", top);
    }

    /** events on; with {@code multifd > 0} also the multifd capability and that many channels. */
    static void setCapabilities(QmpClient qmp, int multifd) throws IOException {
        setCapabilities(qmp, multifd, false);
    }

    /** As above, and xbzrle when asked. */
    static void setCapabilities(QmpClient qmp, int multifd, boolean xbzrle) throws IOException {
        ObjectNode a = QmpJson.object();
        ArrayNode caps = a.putArray("capabilities");
        caps.addObject().put("capability", "events").put("state", true);
        if (xbzrle) {
            caps.addObject().put("capability", "xbzrle").put("state", true);
        }
        if (multifd > 0) {
            caps.addObject().put("capability", "multifd").put("state", true);
        }
        qmp.execute("migrate-set-capabilities", a);
        if (multifd > 0) {
            qmp.execute("migrate-set-parameters", QmpClient.args("multifd-channels", multifd));
        }
    }

    static boolean isMigrationEvent(ObjectNode e, String... statuses) {
        if (!"MIGRATION".equals(e.path("event").asString())) {
            return false;
        }
        String s = e.path("data").path("status").asString();
        return Arrays.asList(statuses).contains(s);
    }

    /** A loopback port free right now, for a child destination to listen on. */
    static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }

    // ---------------------------------------------------------------- goals

    private static long median(List<Result> rs, ToLongFunction<Result> f) {
        return Medians.of(rs.stream().mapToLong(f));
    }

    private static double medianMbps(List<Result> rs) {
        return Medians.of(rs.stream().mapToDouble(Result::mbPerSec));
    }

    private void printGoals(List<Result> results, Map<String, Double> baseline) {
        out.println();
        out.println("goals (issue 3, for --ram 1G on this 2-core machine; QEMU 7.2 measured here for scale)"
                + (options.ramBytes() == 1L << 30 ? "" : " -- this run used a different --ram, so compare with care")
                + (options.repeat() > 1 ? "; medians of the runs" : "") + ":");
        Map<String, List<Result>> byCase = new LinkedHashMap<>();
        for (Result r : results) {
            byCase.computeIfAbsent(r.c().name(), k -> new ArrayList<>()).add(r);
        }
        byCase.forEach((name, rs) -> {
            boolean all = rs.stream().allMatch(Result::completed);
            double v = medianMbps(rs);
            long total = median(rs, Result::totalMs);
            long down = median(rs, Result::downtimeMs);
            double base = baseline.getOrDefault(baselineKey(rs.getFirst().c()), 0.0);
            String line = switch (name) {
                case "random-tcp" -> String.format("%.0f MB/s (%.2f of loopback), goal >= 1200 MB/s: %s; QEMU 7.2: 436 MB/s",
                        v, base > 0 ? v / base : 0, verdict(all && v >= 1200));
                case "random-unix" -> String.format("%.0f MB/s (%.2f of loopback), goal >= 3000 MB/s: %s",
                        v, base > 0 ? v / base : 0, verdict(all && v >= 3000));
                case "random-tcp-mfd2", "random-unix-mfd2" -> String.format("%.0f MB/s (%.2f of one loopback stream)%s",
                        v, base > 0 ? v / base : 0, all ? "" : ", did not complete");
                case "random-tcp-x509", "random-tcp-psk" -> {
                    double plain = byCase.containsKey("random-tcp") ? medianMbps(byCase.get("random-tcp")) : 0;
                    yield plain > 0
                            ? String.format("%.0f MB/s, %.2f of plain random-tcp in this run, goal >= 0.60: %s; QEMU 7.2 here: x509 0.76, psk 0.39 of its plain",
                                    v, v / plain, verdict(all && v / plain >= 0.60))
                            : String.format("%.0f MB/s (run random-tcp too for the ratio)", v);
                }
                case "random-tcp-mfd2-x509" -> {
                    double plain = byCase.containsKey("random-tcp-mfd2") ? medianMbps(byCase.get("random-tcp-mfd2")) : 0;
                    yield plain > 0 ? String.format("%.0f MB/s, %.2f of plain random-tcp-mfd2 in this run", v, v / plain)
                            : String.format("%.0f MB/s (run random-tcp-mfd2 too for the ratio)", v);
                }
                case "zero-tcp" -> String.format("total %d ms, goal <= 100 ms: %s; QEMU 7.2: 105 ms",
                        total, verdict(all && total <= 100));
                case "ab25000-tcp" -> String.format("%s, downtime %d ms, goal converges with downtime <= 20 ms: %s; QEMU 7.2: 74 ms",
                        all ? "converged" : "did not converge", down, verdict(all && down <= 20));
                case "ab-tcp" -> String.format("%s, downtime %d ms, goal converges within the %d ms downtime-limit: %s",
                        all ? "converged" : "did not converge", down, DOWNTIME_LIMIT_MS,
                        verdict(all && down <= DOWNTIME_LIMIT_MS));
                case "ab25000-bw32" -> String.format("%s in %d ms, %d MiB on the wire, downtime %s ms",
                        all ? "converged" : "did not converge", total, median(rs, Result::transferred) >> 20,
                        all ? Long.toString(down) : "-");
                case "ab25000-bw32-xbzrle" -> xbzrleGoal(rs, byCase.get("ab25000-bw32"));
                case "mixed-mfd2-none", "mixed-mfd2-zlib", "mixed-mfd2-zstd" -> compressionLine(rs, byCase.get("mixed-mfd2-none"),
                        name.equals("mixed-mfd2-zstd"));
                default -> "";
            };
            out.printf("  %-20s %s%n", name, line);
        });
        long worst = results.stream().mapToLong(r -> Math.max(r.srcPeakRss(), r.dstPeakRss()) - r.ramBytes())
                .max().orElse(0);
        boolean memOk = results.stream().allMatch(r -> r.srcPeakRss() >= 0 && r.dstPeakRss() >= 0
                && r.srcPeakRss() <= r.ramBytes() + RSS_ALLOWANCE && r.dstPeakRss() <= r.ramBytes() + RSS_ALLOWANCE);
        Result heaviest = results.stream().max(Comparator.comparingLong(r -> Math.max(r.srcPeakRss(), r.dstPeakRss())
                - r.ramBytes())).orElse(null);
        out.printf("  %-19s peak RSS at most guest RAM + %d MiB%s, goal <= guest RAM + 200 MiB: %s%n", "memory",
                worst >> 20, heaviest == null ? "" : " (" + heaviest.c().name() + ")", verdict(memOk));
        out.flush();
    }

    /** (a): xbzrle against plain precopy of the same guest on the same capped link. */
    private static String xbzrleGoal(List<Result> rs, List<Result> plain) {
        boolean all = rs.stream().allMatch(Result::completed);
        long bytes = median(rs, Result::transferred);
        String line = String.format("%s in %d ms, %d MiB on the wire, downtime %s ms", all ? "converged" : "did not converge",
                median(rs, Result::totalMs), bytes >> 20, all ? Long.toString(median(rs, Result::downtimeMs)) : "-");
        if (plain == null) {
            return line + " (run ab25000-bw32 too for the goal)";
        }
        boolean plainConverged = plain.stream().allMatch(Result::completed);
        long plainBytes = median(plain, Result::transferred);
        double share = plainBytes > 0 ? (double) bytes / plainBytes : 0;
        return line + String.format("; %.0f%% of plain precopy's %d MiB (sent %s); goal converges where plain does not"
                        + " and sends <= 30%%: %s", 100 * share, plainBytes >> 20,
                plainConverged ? "to completion" : "until it was cancelled", verdict(all && !plainConverged && share <= 0.30));
    }

    /** (b): multifd compression beside plain multifd on the same RAM. */
    private static String compressionLine(List<Result> rs, List<Result> none, boolean zstdGoal) {
        boolean all = rs.stream().allMatch(Result::completed);
        double v = medianMbps(rs);
        long bytes = median(rs, Result::transferred);
        String line = String.format("%.0f MB/s of guest RAM, %d MiB on the wire", v, bytes >> 20);
        if (none != null && rs != none) {
            long noneBytes = median(none, Result::transferred);
            line += String.format(" (%.0f%% of none's %d MiB; %.2fx its speed)", 100.0 * bytes / Math.max(1, noneBytes),
                    noneBytes >> 20, v / Math.max(1e-9, medianMbps(none)));
        }
        if (!all) {
            line += ", did not complete";
        }
        if (zstdGoal) {
            line += String.format("; goal zstd >= 1000 MB/s: %s", verdict(all && v >= 1000));
        }
        return line;
    }

    private static String verdict(boolean ok) {
        return ok ? "met" : "NOT met";
    }
}
