package org.livemig.bench;

import java.io.IOException;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.HexFormat;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeoutException;
import org.livemig.monitor.QmpClient;
import org.livemig.monitor.QmpError;
import org.livemig.monitor.QmpJson;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.node.ArrayNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * {@code livemig bench soak}: N migrations back and forth between the same two {@code livemig run}
 * processes, cycling precopy, multifd, postcopy, postcopy with a pause and recovery, and a cancel
 * at a random point (seeded: the same seed gives the same cycles). After each cycle both machines
 * verify (RAM and devices equal, or in postcopy every page the destination's guest did not write,
 * and the A-B property), and each process's threads, open file descriptors, resident memory and
 * Java heap after a full GC are recorded (from /proc and {@code x-livemig-process}). At the end
 * each measure's value over the last fifth of the cycles is compared with its highest over the
 * first fifth (the warm-up): growth beyond a small allowance fails the soak.
 *
 * <p>A machine whose guest has migrated away becomes the next destination through
 * {@code x-livemig-become-destination}; a cancelled cycle leaves the roles as they were.
 */
public final class SoakBench {
    /** What one cycle does. */
    enum Kind { PRECOPY, MULTIFD, POSTCOPY, RECOVERY, CANCEL }

    /** Allowed growth from the warm-up's highest to the end's median. */
    static final long THREAD_SLACK = 2;
    static final long FD_SLACK = 4;
    static final long HEAP_SLACK_BYTES = 8L << 20;
    static final long RSS_SLACK_BYTES = 48L << 20;

    private static final Duration STEP = Duration.ofSeconds(120);

    /** Options: cycles, the seed, guest RAM, where the children live, their java command, an optional CSV file. */
    public record Options(int count, long seed, long ramBytes, Path dir, List<String> javaCommand, Path csv) {}

    /** One process after one cycle. */
    record Sample(int cycle, String process, long threads, long fds, long rssBytes, long heapAfterGcBytes) {}

    /** What the soak found: cycles run, samples, failures (empty when every cycle verified and nothing grew). */
    public record Result(int cycles, List<Sample> samples, List<String> failures) {
        public boolean passed() {
            return failures.isEmpty();
        }
    }

    private final Options options;
    private final PrintStream out;
    private final Random random;
    private final List<Sample> samples = new ArrayList<>();
    private int uriCounter;

    public SoakBench(Options options, PrintStream out) {
        this.options = options;
        this.out = out;
        this.random = new Random(options.seed());
    }

    private List<String> machineArgs() {
        return List.of("--ram", (options.ramBytes() >> 20) + "M", "--vcpus", "2", "--workload", "ab:5000", "--fill", "random",
                "--blob-size", "64K", "--no-warm-up");
    }

    /** Runs the soak; never throws for a failed cycle (the result says), only when the children cannot start. */
    public Result run() throws IOException, InterruptedException {
        out.printf("livemig bench soak: %d cycles between two livemig run processes, %d MiB guests (ab:5000), seed %d; "
                + "load average %.2f%n", options.count(), options.ramBytes() >> 20, options.seed(), loadAverage());
        List<String> failures = new ArrayList<>();
        List<String> argsA = new ArrayList<>(machineArgs());
        argsA.add("-S"); // autostart is set per cycle; 'cont' starts the first guest
        List<String> argsB = new ArrayList<>(machineArgs());
        argsB.addAll(List.of("--incoming", "defer"));
        int cycle = 0;
        try (ChildMachine a = ChildMachine.start(options.javaCommand(), argsA, options.dir(), "soak-a");
             ChildMachine b = ChildMachine.start(options.javaCommand(), argsB, options.dir(), "soak-b")) {
            a.qmp().execute("cont");
            ChildMachine src = a;
            ChildMachine dst = b;
            Kind[] kinds = Kind.values();
            for (cycle = 1; cycle <= options.count(); cycle++) {
                Kind kind = kinds[(cycle - 1) % kinds.length];
                long t0 = System.nanoTime();
                String outcome;
                try {
                    outcome = cycle(kind, src, dst);
                } catch (IOException | TimeoutException | AssertionError | QmpError e) {
                    failures.add("cycle " + cycle + " (" + kind + ", " + src.name() + " to " + dst.name() + "): " + e.getMessage());
                    out.println("cycle " + cycle + " FAILED: " + e.getMessage());
                    break;
                }
                Sample sa = sample(cycle, a);
                Sample sb = sample(cycle, b);
                out.printf("cycle %4d %-8s %s->%s %-9s %5.1f s | %s | %s%n", cycle, kind.name().toLowerCase(), src.name(),
                        dst.name(), outcome, (System.nanoTime() - t0) / 1e9, describe(sa), describe(sb));
                if (outcome.equals("completed")) {
                    ChildMachine t = src;
                    src = dst;
                    dst = t;
                }
            }
        }
        int ran = failures.isEmpty() ? options.count() : cycle - 1;
        failures.addAll(growth(ran));
        if (options.csv() != null) {
            writeCsv(options.csv());
        }
        out.println(failures.isEmpty() ? "soak passed: " + ran + " cycles verified, nothing grew beyond the warm-up"
                : "soak FAILED:\n  " + String.join("\n  ", failures));
        return new Result(ran, List.copyOf(samples), failures);
    }

    private static String describe(Sample s) {
        return String.format("%s %d thr %d fd %d MiB rss %.1f MiB heap", s.process(), s.threads(), s.fds(),
                s.rssBytes() >> 20, s.heapAfterGcBytes() / 1048576.0);
    }

    /**
     * One migration from {@code src} to {@code dst} of {@code kind}, verified. Returns
     * "completed" (the roles swap) or "cancelled" (they stay).
     */
    private String cycle(Kind kind, ChildMachine src, ChildMachine dst) throws IOException, TimeoutException, InterruptedException {
        boolean postcopy = kind == Kind.POSTCOPY || kind == Kind.RECOVERY;
        boolean multifd = kind == Kind.MULTIFD || (kind == Kind.CANCEL && random.nextBoolean());
        boolean pauseBeforeSwitchover = kind == Kind.CANCEL && random.nextInt(3) == 0;
        QmpClient s = src.qmp();
        QmpClient d = dst.qmp();
        // A postcopy destination runs the guest while pages still come; a precopy one waits (-S)
        // so that its RAM can be compared whole with the source's.
        d.execute("x-livemig-become-destination", QmpClient.args("autostart", postcopy));
        for (QmpClient c : List.of(s, d)) {
            setCaps(c, postcopy, multifd, pauseBeforeSwitchover);
        }
        if (multifd) {
            int channels = 1 + random.nextInt(4);
            for (QmpClient c : List.of(s, d)) {
                c.execute("migrate-set-parameters", QmpClient.args("multifd-channels", channels));
            }
        }
        long bandwidth = switch (kind) {
            case PRECOPY, MULTIFD -> random.nextBoolean() ? 0 : 256L << 20;
            case POSTCOPY, RECOVERY -> 64L << 20;
            case CANCEL -> 32L << 20;
        };
        s.execute("migrate-set-parameters", QmpClient.args("max-bandwidth", bandwidth, "max-postcopy-bandwidth",
                kind == Kind.RECOVERY ? 4L << 20 : 0L, "downtime-limit", 300));
        String uri = uri();
        d.execute("migrate-incoming", QmpClient.args("uri", uri, "exit-on-error", false));
        s.execute("migrate", QmpClient.args("uri", uri));
        switch (kind) {
            case PRECOPY, MULTIFD -> {
                awaitBoth(s, d, "completed");
                verifyPrecopy(s, d);
                d.execute("cont");
                return "completed";
            }
            case POSTCOPY, RECOVERY -> {
                if (kind == Kind.RECOVERY || random.nextBoolean()) {
                    awaitStatus(s, "active");
                } else {
                    awaitPass(s, 2); // after the first pass over RAM
                }
                s.execute("migrate-start-postcopy");
                if (kind == Kind.RECOVERY) {
                    awaitStatus(s, "postcopy-active");
                    awaitStatus(d, "postcopy-active");
                    try (QmpClient oob = src.connectOob()) {
                        oob.executeOob("migrate-pause", null);
                    }
                    awaitStatus(s, "postcopy-paused");
                    awaitStatus(d, "postcopy-paused");
                    String again = uri();
                    try (QmpClient oob = dst.connectOob()) {
                        oob.executeOob("migrate-recover", QmpClient.args("uri", again));
                    }
                    ObjectNode resume = QmpClient.args("uri", again);
                    resume.put("resume", true);
                    s.execute("migrate", resume);
                    s.execute("migrate-set-parameters", QmpClient.args("max-postcopy-bandwidth", 0L));
                }
                awaitBoth(s, d, "completed");
                verifyPostcopy(s, d);
                d.execute("cont");
                return "completed";
            }
            case CANCEL -> {
                if (pauseBeforeSwitchover) {
                    awaitStatus(s, "pre-switchover");
                } else {
                    long deadline = System.nanoTime() + random.nextInt(1500) * 1_000_000L;
                    while (System.nanoTime() < deadline && !status(s).equals("completed")) {
                        Thread.sleep(5); // a random point: no event marks it
                    }
                }
                s.execute("migrate_cancel");
                String end = awaitStatus(s, "cancelled", "completed");
                if (end.equals("completed")) { // it finished before the cancel came: verify it as one
                    awaitStatus(d, "completed");
                    verifyPrecopy(s, d);
                    d.execute("cont");
                    return "completed";
                }
                awaitStatus(d, "failed");
                check(s.execute("query-status").path("status").asString().equals("running"), "the source runs again after a cancel");
                s.execute("stop");
                JsonNode f = s.execute("x-livemig-fingerprint");
                check(f.path("ab-check").path("ok").asBoolean(), "source A-B after a cancel: " + f.path("ab-check"));
                s.execute("cont");
                check(d.execute("query-status").path("status").asString().equals("inmigrate"), "the destination waits again");
                return "cancelled";
            }
        }
        throw new IllegalStateException(kind.name());
    }

    private String uri() {
        return "unix:" + options.dir().resolve("soak-" + (++uriCounter) + ".sock");
    }

    private static void setCaps(QmpClient c, boolean postcopy, boolean multifd, boolean pause) throws IOException {
        ObjectNode a = QmpJson.object();
        ArrayNode list = a.putArray("capabilities");
        list.addObject().put("capability", "events").put("state", true);
        list.addObject().put("capability", "return-path").put("state", true);
        list.addObject().put("capability", "postcopy-ram").put("state", postcopy);
        list.addObject().put("capability", "multifd").put("state", multifd);
        list.addObject().put("capability", "pause-before-switchover").put("state", pause);
        c.execute("migrate-set-capabilities", a);
    }

    /** Precopy: the destination (paused) holds the source's RAM and devices, and A-B holds. */
    private static void verifyPrecopy(QmpClient s, QmpClient d) throws IOException {
        JsonNode fs = s.execute("x-livemig-fingerprint");
        JsonNode fd = d.execute("x-livemig-fingerprint");
        check(fd.path("ram").equals(fs.path("ram")), "destination RAM differs from the source's");
        check(fd.path("devices").equals(fs.path("devices")), "destination devices differ from the source's");
        check(fd.path("ab-check").path("ok").asBoolean(), "destination A-B: " + fd.path("ab-check"));
    }

    /** Postcopy: every page the destination's guest did not write equals the source's, and A-B holds. */
    private static void verifyPostcopy(QmpClient s, QmpClient d) throws IOException {
        d.execute("stop");
        JsonNode fs = s.execute("x-livemig-fingerprint", QmpClient.args("pages", true));
        JsonNode fd = d.execute("x-livemig-fingerprint", QmpClient.args("pages", true));
        check(fd.path("ab-check").path("ok").asBoolean(), "destination A-B: " + fd.path("ab-check"));
        long differing = 0;
        for (var it = fs.path("page-hashes").properties().iterator(); it.hasNext(); ) {
            var e = it.next();
            String hs = e.getValue().asString();
            String hd = fd.path("page-hashes").path(e.getKey()).asString("");
            BitSet written = BitSet.valueOf(HexFormat.of().parseHex(fd.path("written-here").path(e.getKey()).asString("")));
            check(hd.length() == hs.length(), "block " + e.getKey() + " differs in size");
            for (int p = 0; p < hs.length() / 16; p++) {
                if (!written.get(p) && !hs.regionMatches(p * 16, hd, p * 16, 16)) {
                    differing++;
                }
            }
        }
        check(differing == 0, differing + " pages the destination's guest did not write differ from the source's");
    }

    private static void check(boolean ok, String what) {
        if (!ok) {
            throw new AssertionError(what);
        }
    }

    private static String status(QmpClient c) throws IOException {
        return c.execute("query-migrate").path("status").asString("none");
    }

    /** Waits for one of {@code wanted}; a failed migration ends the wait with its error. */
    private static String awaitStatus(QmpClient c, String... wanted) throws IOException, TimeoutException, InterruptedException {
        long deadline = System.nanoTime() + STEP.toNanos();
        while (true) {
            JsonNode q = c.execute("query-migrate");
            String st = q.path("status").asString("none");
            for (String w : wanted) {
                if (st.equals(w)) {
                    return st;
                }
            }
            if (st.equals("failed") || st.equals("cancelled")) {
                throw new IOException("migration " + st + " (waiting for " + String.join("/", wanted) + "): "
                        + q.path("error-desc").asString(""));
            }
            if (System.nanoTime() > deadline) {
                throw new TimeoutException("status " + st + " after " + STEP.toSeconds() + " s, waiting for " + String.join("/", wanted));
            }
            Thread.sleep(10); // polling query-migrate, as management tools do
        }
    }

    private static void awaitBoth(QmpClient s, QmpClient d, String status) throws IOException, TimeoutException, InterruptedException {
        awaitStatus(s, status);
        awaitStatus(d, status);
    }

    /** Waits for MIGRATION_PASS {@code pass} (pass 2 ends the first pass over RAM). */
    private static void awaitPass(QmpClient c, long pass) throws IOException, TimeoutException {
        c.waitForEvent("MIGRATION_PASS", e -> e.path("data").path("pass").asLong() >= pass, STEP);
    }

    private Sample sample(int cycle, ChildMachine m) throws IOException {
        long pid = m.pid();
        JsonNode p = m.qmp().execute("x-livemig-process");
        m.qmp().takeEvents(); // the soak reads events only while a cycle runs
        return record(new Sample(cycle, m.name(), count(Path.of("/proc", Long.toString(pid), "task")),
                count(Path.of("/proc", Long.toString(pid), "fd")), ProcessStats.rssBytes(pid),
                p.path("heap-used-after-gc").asLong()));
    }

    private Sample record(Sample s) {
        samples.add(s);
        return s;
    }

    private static long count(Path dir) {
        try (var l = Files.list(dir)) {
            return l.count();
        } catch (IOException e) {
            return -1;
        }
    }

    /**
     * Growth per process and measure: the median over the last fifth of the cycles against the
     * highest over the first fifth (the warm-up; at least the first three cycles).
     */
    List<String> growth(int cycles) {
        List<String> failures = new ArrayList<>();
        if (cycles < 5) {
            out.println("growth: too few cycles to tell (" + cycles + ")");
            return failures;
        }
        int warm = Math.max(3, cycles / 5);
        int tail = Math.max(1, cycles / 5);
        out.printf("%-8s %-10s %14s %14s %12s %12s%n", "process", "measure", "warm-up max", "end median", "growth", "allowed");
        for (String process : samples.stream().map(Sample::process).distinct().toList()) {
            List<Sample> mine = samples.stream().filter(x -> x.process().equals(process)).toList();
            List<Sample> first = mine.stream().filter(x -> x.cycle() <= warm).toList();
            List<Sample> last = mine.stream().filter(x -> x.cycle() > cycles - tail).toList();
            failures.addAll(compare(process, "threads", first, last, Sample::threads, THREAD_SLACK, false));
            failures.addAll(compare(process, "fds", first, last, Sample::fds, FD_SLACK, false));
            failures.addAll(compare(process, "rss", first, last, Sample::rssBytes, RSS_SLACK_BYTES, true));
            failures.addAll(compare(process, "heap", first, last, Sample::heapAfterGcBytes, HEAP_SLACK_BYTES, true));
        }
        return failures;
    }

    private List<String> compare(String process, String measure, List<Sample> first, List<Sample> last,
                                 java.util.function.ToLongFunction<Sample> f, long slack, boolean bytes) {
        long warmMax = first.stream().mapToLong(f).max().orElse(0);
        long[] end = last.stream().mapToLong(f).sorted().toArray();
        long median = end.length == 0 ? warmMax : end[end.length / 2];
        long growth = median - warmMax;
        out.printf("%-8s %-10s %14s %14s %12s %12s%s%n", process, measure, show(warmMax, bytes), show(median, bytes),
                show(growth, bytes), show(slack, bytes), growth > slack ? "  GREW" : "");
        return growth > slack ? List.of(process + " " + measure + " grew by " + show(growth, bytes) + " (allowed "
                + show(slack, bytes) + ")") : List.of();
    }

    private static String show(long v, boolean bytes) {
        return bytes ? String.format("%.1f MiB", v / 1048576.0) : Long.toString(v);
    }

    private void writeCsv(Path file) throws IOException {
        try (PrintWriter w = new PrintWriter(Files.newBufferedWriter(file))) {
            w.println("cycle,process,threads,fds,rss_bytes,heap_after_gc_bytes");
            for (Sample s : samples) {
                w.printf("%d,%s,%d,%d,%d,%d%n", s.cycle(), s.process(), s.threads(), s.fds(), s.rssBytes(), s.heapAfterGcBytes());
            }
        }
        out.println("samples written to " + file);
    }

    private static double loadAverage() {
        return java.lang.management.ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage();
    }
}
