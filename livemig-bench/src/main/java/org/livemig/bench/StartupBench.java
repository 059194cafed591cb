package org.livemig.bench;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.livemig.monitor.QmpClient;
import tools.jackson.databind.JsonNode;

/**
 * {@code livemig bench startup}: what a machine process costs before and while it migrates,
 * livemig beside a real QEMU 7.2 in the same run. Process start to the QMP greeting of a
 * destination ({@code --incoming defer}, RAM pre-faulted; QEMU: {@code -incoming defer -S},
 * {@code prealloc=on}); its resident memory beyond guest RAM after an idle spell; and the peak
 * resident memory (VmHWM) beyond guest RAM of both ends of precopy, multifd and postcopy
 * migrations of random RAM (QEMU: precopy only, QEMU to QEMU). The livemig processes of the
 * migrations run with Native Memory Tracking, and their accounting (heap, metaspace, code cache,
 * thread stacks, GC, direct buffers under Other, the AOT cache as Shared class space) is printed
 * idle and after the migration; the start-up and idle numbers come from processes without it.
 *
 * <p>Runs on the caller's thread.
 */
public final class StartupBench {
    /** The migration cases, in order. */
    public static final List<String> CASES = List.of("precopy", "multifd", "postcopy");
    /** Goals of issue 21 (resident memory beyond guest RAM). */
    static final long IDLE_GOAL = 100L << 20;
    static final long PEAK_GOAL = 150L << 20;

    /**
     * @param ramBytes    guest RAM of every machine
     * @param repeat      start-ups of each kind (medians)
     * @param cases       migration cases, a subset of {@link #CASES}
     * @param idle        how long a started destination sits before its resident memory is read
     * @param timeout     longest a migration may take
     * @param dir         sockets, logs, QEMU's RAM file
     * @param javaCommand how to start a child JVM ({@link ChildMachine#javaCommand})
     * @param qemuBinary  the QEMU measured beside livemig, or null
     */
    public record Options(long ramBytes, int repeat, List<String> cases, Duration idle, Duration timeout, Path dir,
                          List<String> javaCommand, String qemuBinary) {
        public Options {
            Objects.requireNonNull(dir, "dir");
            Objects.requireNonNull(javaCommand, "javaCommand");
            cases = List.copyOf(cases);
            if (ramBytes < (4L << 20)) {
                throw new IllegalArgumentException("--ram must be at least 4M");
            }
            if (repeat < 1) {
                throw new IllegalArgumentException("--repeat must be at least 1, not " + repeat);
            }
            for (String c : cases) {
                if (!CASES.contains(c)) {
                    throw new IllegalArgumentException("--cases takes " + String.join(", ", CASES) + ", not '" + c + "'");
                }
            }
        }
    }

    /** One migration case's peaks beyond guest RAM, in bytes; -1 where not measured. */
    public record Peak(String name, long livemigSource, long livemigDestination, long qemuSource, long qemuDestination) {
    }

    /** Medians of the start-ups (nanoseconds, bytes beyond guest RAM; -1 where not measured) and the peaks. */
    public record Result(long livemigStartNanos, long qemuStartNanos, long livemigIdleRss, long qemuIdleRss,
                         List<Peak> peaks) {
    }

    private final Options options;
    private final PrintStream out;

    public StartupBench(Options options, PrintStream out) {
        this.options = options;
        this.out = out;
    }

    private List<String> machine(String fill, long seed) {
        return List.of("--ram", Long.toString(options.ramBytes()), "--vcpus", "2", "--workload", "idle", "--fill", fill,
                "--seed", Long.toString(seed));
    }

    private List<String> destination() {
        List<String> a = new ArrayList<>(machine("zero", 7920));
        a.addAll(List.of("--incoming", "defer", "-S"));
        return a;
    }

    /** {@code command} with {@code option} among its JVM options (before the class path). */
    static List<String> withJvmOption(List<String> command, String option) {
        List<String> c = new ArrayList<>(command);
        int cp = c.indexOf("-cp");
        c.add(cp < 0 ? 1 : cp, option);
        return c;
    }

    public Result run() throws Exception {
        long ram = options.ramBytes();
        out.printf("livemig bench startup: start to QMP greeting, resident memory beyond guest RAM idle and at the peak of migrations%n");
        out.printf("  livemig: `livemig run` child JVM (%s); --ram %d MiB; host %d CPUs, load average %s%n",
                ChildMachine.jvmOptions(options.javaCommand()), ram >> 20, Runtime.getRuntime().availableProcessors(),
                QmpLatencyBench.loadAverage());
        out.printf("  beside: %s%n", options.qemuBinary() == null ? "no QEMU"
                : QemuMachine.version(options.qemuBinary()) + ", paused, RAM prealloc=on");
        out.flush();

        // start-ups, alternating livemig and QEMU
        List<Long> lmStart = new ArrayList<>();
        List<Long> lmIdle = new ArrayList<>();
        List<Long> qStart = new ArrayList<>();
        List<Long> qIdle = new ArrayList<>();
        for (int i = 0; i < options.repeat(); i++) {
            try (ChildMachine m = ChildMachine.start(options.javaCommand(), destination(), options.dir(), "st-livemig-" + i)) {
                lmStart.add(m.startToGreetingNanos());
                Thread.sleep(options.idle().toMillis()); // the idle spell being measured
                lmIdle.add(ProcessStats.rssBytes(m.pid()) - ram);
            }
            if (options.qemuBinary() != null) {
                try (QemuMachine q = QemuMachine.start(options.qemuBinary(), ram, null, true, options.dir(), "st-qemu-" + i)) {
                    qStart.add(q.startToGreetingNanos());
                    Thread.sleep(options.idle().toMillis());
                    qIdle.add(ProcessStats.rssBytes(q.pid()) - ram);
                }
            }
        }
        long lmStartMed = median(lmStart);
        long lmIdleMed = median(lmIdle);
        long qStartMed = median(qStart);
        long qIdleMed = median(qIdle);
        out.println();
        out.printf("%-34s %12s %12s %10s%n", "destination (median of " + options.repeat() + ")", "livemig", "QEMU", "ratio");
        out.printf("%-34s %12.1f %12s %10s%n", "start to QMP greeting ms", lmStartMed / 1e6,
                qStartMed < 0 ? "-" : String.format("%.1f", qStartMed / 1e6), ratio(lmStartMed, qStartMed));
        out.printf("%-34s %12.1f %12s %10s   (goal <= %d MiB: %s)%n", "RSS beyond guest RAM, idle, MiB", mib(lmIdleMed),
                qIdleMed < 0 ? "-" : String.format("%.1f", mib(qIdleMed)), ratio(lmIdleMed, qIdleMed), IDLE_GOAL >> 20,
                lmIdleMed <= IDLE_GOAL ? "met" : "NOT met");
        out.printf("  (idle: RSS %d s after the greeting; guest RAM %d MiB, pre-faulted, subtracted)%n",
                options.idle().toSeconds(), ram >> 20);
        out.flush();

        // migrations
        List<Peak> peaks = new ArrayList<>();
        Path qemuRam = options.dir().resolve("qemu-src.ram");
        try {
            for (String c : options.cases()) {
                long[] lm = livemigMigration(c);
                long[] q = {-1, -1};
                if (c.equals("precopy") && options.qemuBinary() != null) {
                    if (!Files.exists(qemuRam)) {
                        QemuMachine.writeRandomRam(qemuRam, ram, 1);
                    }
                    q = qemuMigration(qemuRam);
                }
                peaks.add(new Peak(c, lm[0], lm[1], q[0], q[1]));
            }
        } finally {
            Files.deleteIfExists(qemuRam);
        }
        out.println();
        out.printf("peak RSS (VmHWM) beyond guest RAM, MiB (goal <= %d MiB at the peak of any migration)%n", PEAK_GOAL >> 20);
        out.printf("%-10s %12s %12s %12s %12s   %s%n", "case", "livemig src", "livemig dst", "QEMU src", "QEMU dst", "goal");
        for (Peak p : peaks) {
            boolean met = Math.max(p.livemigSource(), p.livemigDestination()) <= PEAK_GOAL;
            out.printf("%-10s %12.1f %12.1f %12s %12s   %s%n", p.name(), mib(p.livemigSource()), mib(p.livemigDestination()),
                    p.qemuSource() < 0 ? "-" : String.format("%.1f", mib(p.qemuSource())),
                    p.qemuDestination() < 0 ? "-" : String.format("%.1f", mib(p.qemuDestination())), met ? "met" : "NOT met");
        }
        if (options.qemuBinary() == null) {
            out.println("QEMU: skipped (" + QemuMachine.BINARY + " not installed, or --qemu none)");
        }
        out.flush();
        return new Result(lmStartMed, qStartMed, lmIdleMed, qIdleMed, peaks);
    }

    /** A livemig migration of case {@code c} with NMT on both ends; prints the accounting; returns {src, dst} peaks beyond RAM. */
    private long[] livemigMigration(String c) throws Exception {
        long ram = options.ramBytes();
        List<String> java = withJvmOption(options.javaCommand(), "-XX:NativeMemoryTracking=summary");
        try (ChildMachine dst = ChildMachine.start(java, destination(), options.dir(), "mig-dst-" + c);
             ChildMachine src = ChildMachine.start(java, machine("random", 1), options.dir(), "mig-src-" + c)) {
            Thread.sleep(options.idle().toMillis()); // as idle as the start-up case
            Map<String, Long> dstIdle = nativeMemory(dst.pid());
            Map<String, Long> srcIdle = nativeMemory(src.pid());
            boolean postcopy = c.equals("postcopy");
            for (QmpClient q : List.of(src.qmp(), dst.qmp())) {
                PrecopyBench.setCapabilities(q, c.equals("multifd") ? 2 : 0);
                if (postcopy) {
                    q.execute("migrate-set-capabilities", QmpClient.args("capabilities",
                            org.livemig.monitor.QmpJson.NODES.arrayNode().add(org.livemig.monitor.QmpJson.object()
                                    .put("capability", "postcopy-ram").put("state", true))));
                }
            }
            src.qmp().execute("migrate-set-parameters", QmpClient.args("max-bandwidth", 0L));
            String uri = "tcp:127.0.0.1:" + PrecopyBench.freePort();
            dst.qmp().execute("migrate-incoming", QmpClient.args("uri", uri));
            src.qmp().execute("migrate", QmpClient.args("uri", uri));
            if (postcopy) {
                src.qmp().execute("migrate-start-postcopy");
            }
            try {
                src.qmp().waitForEvent("MIGRATION", e -> PrecopyBench.isMigrationEvent(e, "completed", "failed", "cancelled"),
                        options.timeout());
            } catch (TimeoutException e) {
                throw new IOException(c + ": the source's migration did not end within " + options.timeout().toSeconds() + " s", e);
            }
            JsonNode q = src.qmp().execute("query-migrate");
            if (!"completed".equals(q.path("status").asString())) {
                throw new IOException(c + ": the source's migration ended " + q.path("status").asString() + ": "
                        + q.path("error-desc").asString(""));
            }
            long deadline = System.nanoTime() + options.timeout().toNanos();
            while (!"completed".equals(dst.qmp().execute("query-migrate").path("status").asString())) {
                if (System.nanoTime() > deadline) {
                    throw new IOException(c + ": the destination did not complete");
                }
                Thread.sleep(10); // the destination's completion has no event of its own on this session
            }
            long srcPeak = src.peakRssBytes() - ram;
            long dstPeak = dst.peakRssBytes() - ram;
            Map<String, Long> dstAfter = nativeMemory(dst.pid());
            Map<String, Long> srcAfter = nativeMemory(src.pid());
            printAccounting(c, srcIdle, srcAfter, srcPeak, dstIdle, dstAfter, dstPeak, q.path("total-time").asLong());
            return new long[] {srcPeak, dstPeak};
        }
    }

    /** QEMU to QEMU precopy of the random RAM file; returns {src, dst} peaks beyond RAM. */
    private long[] qemuMigration(Path ramFile) throws Exception {
        long ram = options.ramBytes();
        String qemu = options.qemuBinary();
        try (QemuMachine dst = QemuMachine.start(qemu, ram, null, true, options.dir(), "mig-qemu-dst");
             QemuMachine src = QemuMachine.start(qemu, ram, ramFile, false, options.dir(), "mig-qemu-src")) {
            src.qmp().execute("migrate-set-parameters", QmpClient.args("max-bandwidth", QmpLatencyBench.QEMU_UNLIMITED_BANDWIDTH));
            String uri = "tcp:127.0.0.1:" + PrecopyBench.freePort();
            dst.qmp().execute("migrate-incoming", QmpClient.args("uri", uri));
            src.qmp().execute("migrate", QmpClient.args("uri", uri));
            long deadline = System.nanoTime() + options.timeout().toNanos();
            while (true) {
                String s = src.qmp().execute("query-migrate").path("status").asString();
                String d = dst.qmp().execute("query-migrate").path("status").asString();
                if (s.equals("completed") && d.equals("completed")) {
                    break;
                }
                if (s.equals("failed") || d.equals("failed") || System.nanoTime() > deadline) {
                    throw new IOException("QEMU -> QEMU migration: source " + s + ", destination " + d);
                }
                Thread.sleep(20); // QEMU's processes: polled, as a management tool does
            }
            return new long[] {ProcessStats.peakRssBytes(src.pid()) - ram, ProcessStats.peakRssBytes(dst.pid()) - ram};
        }
    }

    private static final Pattern NMT_TOTAL = Pattern.compile("^Total: reserved=(\\d+)KB, committed=(\\d+)KB");
    private static final Pattern NMT_CATEGORY = Pattern.compile("^-\\s+(.+?) \\(reserved=(\\d+)KB, committed=(\\d+)KB");

    /**
     * {@code jcmd PID VM.native_memory summary}: committed bytes per NMT category, "Total" first;
     * empty when jcmd is missing or the process has no NMT.
     */
    static Map<String, Long> nativeMemory(long pid) {
        String java = ProcessHandle.current().info().command().orElse("java");
        Path jcmd = Path.of(java).resolveSibling("jcmd");
        Map<String, Long> m = new LinkedHashMap<>();
        try {
            Process p = new ProcessBuilder(jcmd.toString(), Long.toString(pid), "VM.native_memory", "summary")
                    .redirectErrorStream(true).start();
            String text = new String(p.getInputStream().readAllBytes());
            if (!p.waitFor(30, TimeUnit.SECONDS)) {
                p.destroyForcibly();
            }
            return parseNativeMemory(text);
        } catch (IOException e) {
            return m;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return m;
        }
    }

    /** Committed bytes per category of an NMT summary ("Total" first). */
    static Map<String, Long> parseNativeMemory(String text) {
        Map<String, Long> m = new LinkedHashMap<>();
        for (String line : text.lines().map(String::trim).toList()) {
            Matcher t = NMT_TOTAL.matcher(line);
            if (t.find()) {
                m.put("Total", Long.parseLong(t.group(2)) << 10);
                continue;
            }
            Matcher c = NMT_CATEGORY.matcher(line);
            if (c.find()) {
                m.put(c.group(1), Long.parseLong(c.group(3)) << 10);
            }
        }
        return m;
    }

    private void printAccounting(String c, Map<String, Long> srcIdle, Map<String, Long> srcAfter, long srcPeak,
                                 Map<String, Long> dstIdle, Map<String, Long> dstAfter, long dstPeak, long totalTimeMs) {
        out.println();
        out.printf("%s (livemig -> livemig, source total-time %d ms): Native Memory Tracking, committed MiB%n", c, totalTimeMs);
        if (dstAfter.isEmpty()) {
            out.println("  (no NMT summary: jcmd missing or refused)");
            return;
        }
        out.printf("  %-24s %10s %10s %10s %10s%n", "category", "src idle", "src after", "dst idle", "dst after");
        List<String> names = new ArrayList<>(dstAfter.keySet());
        for (String n : srcAfter.keySet()) {
            if (!names.contains(n)) {
                names.add(n);
            }
        }
        for (String n : names) {
            long a = srcIdle.getOrDefault(n, 0L);
            long b = srcAfter.getOrDefault(n, 0L);
            long d = dstIdle.getOrDefault(n, 0L);
            long e = dstAfter.getOrDefault(n, 0L);
            if (!n.equals("Total") && Math.max(Math.max(a, b), Math.max(d, e)) < (512 << 10)) {
                continue; // under half a MiB everywhere
            }
            out.printf("  %-24s %10.1f %10.1f %10.1f %10.1f%n", n, mib(a), mib(b), mib(d), mib(e));
        }
        out.printf("  %-24s %10s %10.1f %10s %10.1f   (VmHWM minus guest RAM; NMT's Total counts committed, not resident)%n",
                "peak RSS beyond RAM", "", mib(srcPeak), "", mib(dstPeak));
        out.flush();
    }

    private static long median(List<Long> xs) {
        return xs.isEmpty() ? -1 : Medians.of(xs.stream().mapToLong(Long::longValue));
    }

    private static double mib(long bytes) {
        return bytes / 1048576.0;
    }

    private static String ratio(long a, long b) {
        return a < 0 || b <= 0 ? "-" : String.format("%.2fx", (double) a / b);
    }
}
