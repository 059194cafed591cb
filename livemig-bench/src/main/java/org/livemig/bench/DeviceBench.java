package org.livemig.bench;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import org.HdrHistogram.Histogram;
import org.livemig.monitor.QmpClient;
import org.livemig.monitor.QmpJson;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.node.ArrayNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * {@code livemig bench device}: the downtime of a machine whose accelerator (an iterative device,
 * {@code --device}) the guest writes while it migrates, with the device's final state on the
 * main stream against over multifd channels loaded by the destination's load threads, in the
 * same run; and the destination monitor's round trips while it loads the device's state.
 *
 * <p>Each run starts two {@code livemig run} child JVMs (the destination with {@code -S}),
 * sets return-path and switchover-ack on both (and multifd for the multifd case), lets the guest
 * write its device for a second, migrates over TCP with max-bandwidth 0, and verifies both
 * sides' fingerprints (RAM, devices, the accelerator's memory). A second QMP session to the
 * destination sends {@code query-status} back to back from {@code migrate} to the destination's
 * completion, recorded with HdrHistogram. The cases alternate within each repeat, so that a
 * slower patch of a shared machine falls on both.
 */
public final class DeviceBench {
    private static final Duration DESTINATION_TIMEOUT = Duration.ofSeconds(60);
    private static final int DOWNTIME_GOAL_MS = 100;

    /**
     * @param ramBytes      guest RAM (random, the guest idle: the device is what changes)
     * @param deviceBytes   the accelerator's memory
     * @param dirtyRate     how fast the guest writes it, MiB/s
     * @param channels      multifd channels of the multifd case
     * @param repeat        runs of each case
     * @param timeout       longest a migration may take
     * @param dir           where sockets and child logs go
     * @param javaCommand   how to start a child JVM running the CLI ({@link ChildMachine#javaCommand})
     */
    public record Options(long ramBytes, long deviceBytes, double dirtyRate, int channels, int repeat, Duration timeout,
                          Path dir, List<String> javaCommand) {
        public Options {
            Objects.requireNonNull(dir, "dir");
            Objects.requireNonNull(javaCommand, "javaCommand");
            if (ramBytes < (4L << 20)) {
                throw new IllegalArgumentException("--ram must be at least 4M");
            }
            if (deviceBytes < (1L << 20) || deviceBytes % (64 << 10) != 0) {
                throw new IllegalArgumentException("--device-size must be at least 1M, a multiple of 64K");
            }
            if (channels < 1 || channels > 255) {
                throw new IllegalArgumentException("--channels must be 1..255");
            }
            if (repeat < 1) {
                throw new IllegalArgumentException("--repeat must be at least 1");
            }
        }
    }

    /** One run of one case. */
    public record Result(String name, int run, String status, long downtimeMs, long totalMs, long passes,
                         long deviceBytes, boolean overMultifd, boolean verified, Histogram whole, Histogram switchover,
                         String error) {
    }

    private final Options options;
    private final PrintStream out;

    public DeviceBench(Options options, PrintStream out) {
        this.options = options;
        this.out = out;
    }

    private String device() {
        return new org.livemig.machine.Accelerator.Spec("acc0", options.deviceBytes(), options.dirtyRate()).toString();
    }

    private List<String> machine(boolean destination) {
        return List.of("--ram", Long.toString(options.ramBytes()), "--vcpus", "2", "--workload", "idle",
                "--fill", destination ? "zero" : "random", "--blob-size", "65536",
                "--seed", destination ? "7920" : "1", "--device", device());
    }

    /** Runs both cases {@code repeat} times and prints the table and the goals; returns every run. */
    public List<Result> run() throws Exception {
        String main = "main";
        String mfd = "mfd" + options.channels();
        out.printf("livemig bench device: a machine with --device %s (the guest writes its memory while it runs),%n",
                device());
        out.printf("  %d MiB of random RAM (idle guest); its final state on the main stream (%s) against over %d multifd"
                + " channels%n  loaded by the destination's load threads (%s); return-path and switchover-ack on, max-bandwidth 0,"
                + " downtime-limit 300 ms%n", options.ramBytes() >> 20, main, options.channels(), mfd);
        out.println("  two `livemig run` child JVMs (java " + ChildMachine.jvmOptions(options.javaCommand()) + ")"
                + " over TCP; downtime and total-time are the source's query-migrate at completion;");
        out.println("  monitor: query-status round trips to the destination on a second QMP session, from `migrate` to its"
                + " completion (whole) and from the source's switchover (status device) to it (switchover)");
        out.printf("  host: %d CPUs, load average %s at start (other work may share the machine)%n",
                Runtime.getRuntime().availableProcessors(), loadAverage());
        out.println();
        out.printf("%-6s %3s %-10s %7s %8s %6s %9s %7s %8s %9s %9s %9s %9s%n", "case", "run", "status", "down ms",
                "total ms", "passes", "dev MiB", "verify", "final", "whole p50", "whole p99", "swo p99", "swo max");
        out.flush();
        List<Result> results = new ArrayList<>();
        for (int run = 1; run <= options.repeat(); run++) {
            List<Integer> order = run % 2 == 1 ? List.of(0, options.channels()) : List.of(options.channels(), 0);
            for (int channels : order) {
                Result r = runCase(channels == 0 ? main : mfd, channels, run);
                results.add(r);
                out.printf("%-6s %3d %-10s %7s %8s %6d %9.1f %7s %8s %9.2f %9.2f %9.2f %9.2f%n", r.name(), r.run(),
                        r.status(), ms(r.downtimeMs()), ms(r.totalMs()), r.passes(), r.deviceBytes() / 1048576.0,
                        r.verified() ? "ok" : "FAILED", r.overMultifd() ? "multifd" : "main",
                        p(r.whole(), 50), p(r.whole(), 99), p(r.switchover(), 99), max(r.switchover()));
                if (r.error() != null) {
                    out.println("    " + r.error());
                }
                out.flush();
            }
        }
        printGoals(results, main, mfd);
        return results;
    }

    private void printGoals(List<Result> results, String main, String mfd) {
        long mainDown = median(results, main);
        long mfdDown = median(results, mfd);
        Histogram mfdWhole = merged(results, mfd, true);
        Histogram mfdSwitch = merged(results, mfd, false);
        Histogram mainWhole = merged(results, main, true);
        out.println();
        out.printf("median downtime: %s %d ms, %s %d ms (%s)%n", main, mainDown, mfd, mfdDown,
                results.stream().map(r -> r.name() + " " + r.downtimeMs()).toList());
        out.printf("monitor during the device-state load, all runs pooled: %s p99 %.2f ms (max %.2f); %s p99 %.2f ms"
                        + " (max %.2f), during the switchover p99 %.2f ms%n", main, p(mainWhole, 99), max(mainWhole), mfd,
                p(mfdWhole, 99), max(mfdWhole), p(mfdSwitch, 99));
        boolean allOk = results.stream().allMatch(r -> r.verified() && "completed".equals(r.status()));
        out.printf("goal: downtime <= %d ms with multifd and load threads: %s (%d ms)%n", DOWNTIME_GOAL_MS,
                mfdDown >= 0 && mfdDown <= DOWNTIME_GOAL_MS ? "met" : "NOT met", mfdDown);
        out.printf("goal: lower than the single stream: %s (%d ms against %d ms)%n",
                mfdDown >= 0 && mainDown >= 0 && mfdDown < mainDown ? "met" : "NOT met", mfdDown, mainDown);
        out.printf("every run completed and verified: %s%n", allOk ? "yes" : "NO");
        out.printf("load average at the end: %s%n", loadAverage());
        out.flush();
    }

    private Result runCase(String name, int channels, int run) throws Exception {
        String tag = "dev-" + name + "-" + run;
        List<String> dstArgs = new ArrayList<>(machine(true));
        dstArgs.addAll(List.of("--incoming", "defer", "-S"));
        try (ChildMachine dst = ChildMachine.start(options.javaCommand(), dstArgs, options.dir(), "dst-" + tag);
             ChildMachine src = ChildMachine.start(options.javaCommand(), machine(false), options.dir(), "src-" + tag);
             QmpClient sampler = dst.connect()) {
            for (ChildMachine m : List.of(src, dst)) {
                capabilities(m.qmp(), channels);
            }
            src.qmp().execute("migrate-set-parameters", QmpClient.args("max-bandwidth", 0L, "downtime-limit", 300));
            AtomicLong switchoverAt = new AtomicLong();
            src.qmp().onEvent(e -> {
                if (PrecopyBench.isMigrationEvent(e, "device")) {
                    switchoverAt.compareAndSet(0, System.nanoTime());
                }
            });
            String uri = "tcp:127.0.0.1:" + PrecopyBench.freePort();
            dst.qmp().execute("migrate-incoming", QmpClient.args("uri", uri));
            for (int i = 0; i < 2_000; i++) {
                sampler.request("query-status", null); // warm the session up
            }
            Thread.sleep(1_000); // the guest writes its device before the migration starts
            QmpLatencyBench.Samples samples = new QmpLatencyBench.Samples();
            java.util.concurrent.atomic.AtomicBoolean stop = new java.util.concurrent.atomic.AtomicBoolean();
            Thread sampling = Thread.ofPlatform().name("bench-sampler").start(() -> {
                try {
                    while (!stop.get()) {
                        long t0 = System.nanoTime();
                        sampler.request("query-status", null);
                        samples.add(t0, System.nanoTime() - t0);
                    }
                } catch (IOException e) {
                    // the destination went away: the run reports why
                }
            });
            long t0 = System.nanoTime();
            String error = null;
            long dstDone = 0;
            try {
                src.qmp().execute("migrate", QmpClient.args("uri", uri));
                try {
                    src.qmp().waitForEvent("MIGRATION", e -> PrecopyBench.isMigrationEvent(e, "completed", "failed",
                            "cancelled"), options.timeout());
                } catch (TimeoutException e) {
                    src.qmp().execute("migrate_cancel");
                    error = "did not complete within " + options.timeout().toSeconds() + " s; cancelled";
                }
                long deadline = System.nanoTime() + DESTINATION_TIMEOUT.toNanos();
                while (System.nanoTime() < deadline) {
                    String st = dst.qmp().execute("query-migrate").path("status").asString();
                    if (st.equals("completed") || st.equals("failed")) {
                        break;
                    }
                    Thread.sleep(5); // polled: the destination's completion has no event this process waits on
                }
                dstDone = System.nanoTime();
            } finally {
                stop.set(true);
                sampling.join(10_000);
            }
            ObjectNode q = (ObjectNode) src.qmp().execute("query-migrate");
            JsonNode dq = dst.qmp().execute("query-migrate");
            String status = q.path("status").asString();
            if (!"completed".equals(dq.path("status").asString())) {
                status = "dst-" + dq.path("status").asString();
                error = dq.path("error-desc").asString(error == null ? "" : error);
            } else if (!"completed".equals(status) && error == null) {
                error = q.path("error-desc").asString("");
            }
            boolean verified = false;
            if ("completed".equals(status)) {
                JsonNode fs = src.qmp().timeout(Duration.ofMinutes(5)).execute("x-livemig-fingerprint");
                JsonNode fd = dst.qmp().timeout(Duration.ofMinutes(5)).execute("x-livemig-fingerprint");
                verified = fs.get("ram").equals(fd.get("ram")) && fs.get("devices").equals(fd.get("devices"));
                if (!verified) {
                    error = "fingerprints differ: source " + QmpJson.write((ObjectNode) fs.get("devices"))
                            + ", destination " + QmpJson.write((ObjectNode) fd.get("devices"));
                }
            }
            long devBytes = 0;
            boolean overMultifd = false;
            if (q.get("x-iterative-devices") instanceof ArrayNode a && !a.isEmpty()) {
                devBytes = a.get(0).path("transferred").asLong();
                overMultifd = a.get(0).path("final-state-over-multifd").asBoolean();
            }
            long sw = switchoverAt.get();
            return new Result(name, run, status, q.path("downtime").asLong(-1), q.path("total-time").asLong(-1),
                    Math.max(0, q.path("ram").path("dirty-sync-count").asLong() - 1), // the setup sync ends no pass
                    devBytes, overMultifd, verified,
                    samples.histogram(t0, dstDone), samples.histogram(sw == 0 ? dstDone : sw, dstDone), error);
        }
    }

    /** events, return-path and switchover-ack; multifd with {@code channels} > 0. */
    private static void capabilities(QmpClient qmp, int channels) throws IOException {
        ObjectNode a = QmpJson.object();
        ArrayNode caps = a.putArray("capabilities");
        for (String c : List.of("events", "return-path", "switchover-ack")) {
            caps.addObject().put("capability", c).put("state", true);
        }
        if (channels > 0) {
            caps.addObject().put("capability", "multifd").put("state", true);
        }
        qmp.execute("migrate-set-capabilities", a);
        if (channels > 0) {
            qmp.execute("migrate-set-parameters", QmpClient.args("multifd-channels", channels));
        }
    }

    private static long median(List<Result> rs, String name) {
        long[] v = rs.stream().filter(r -> r.name().equals(name) && "completed".equals(r.status()))
                .mapToLong(Result::downtimeMs).sorted().toArray();
        return v.length == 0 ? -1 : v[v.length / 2];
    }

    private static Histogram merged(List<Result> rs, String name, boolean whole) {
        Histogram h = null;
        for (Result r : rs) {
            if (r.name().equals(name)) {
                Histogram x = whole ? r.whole() : r.switchover();
                if (h == null) {
                    h = x.copy();
                } else {
                    h.add(x);
                }
            }
        }
        return h;
    }

    private static double p(Histogram h, double percentile) {
        return h == null || h.getTotalCount() == 0 ? Double.NaN : h.getValueAtPercentile(percentile) / 1e6;
    }

    private static double max(Histogram h) {
        return h == null || h.getTotalCount() == 0 ? Double.NaN : h.getMaxValue() / 1e6;
    }

    private static String ms(long v) {
        return v < 0 ? "-" : Long.toString(v);
    }

    private static String loadAverage() {
        try {
            String[] f = Files.readString(Path.of("/proc/loadavg")).trim().split("\\s+");
            return f[0] + " " + f[1] + " " + f[2];
        } catch (IOException | RuntimeException e) {
            return "n/a";
        }
    }
}
