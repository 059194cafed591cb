package org.livemig.bench;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.HdrHistogram.Histogram;
import org.livemig.monitor.QmpClient;
import tools.jackson.databind.JsonNode;

/**
 * {@code livemig bench qmp-load}: the monitor under load. Migrations between two
 * {@code livemig run} processes, alternately unloaded and with {@code --clients} QMP clients (each
 * on its own connection) polling the source's query-migrate as fast as they can. Reports each
 * migration's throughput (RAM on the wire over query-migrate's total-time), the loaded median
 * against the unloaded median of the same run (the goal: at least 90%), and per client the
 * replies, p99 and maximum round trip, and whether every request was answered and none starved
 * (the least served client got at least a quarter of the most served's replies).
 *
 * <p>Order, after one untimed migration: unloaded, loaded, loaded, unloaded (per repeat), so that
 * each direction carries as many of each; the guests idle on random RAM at unlimited bandwidth.
 */
public final class QmpLoadBench {
    /** Options: guest RAM, clients, repeats, where the children live, their java command. */
    public record Options(long ramBytes, int clients, int repeat, Path dir, List<String> javaCommand) {}

    /** What one migration measured. */
    record Run(boolean loaded, String direction, double mbPerSec, long[] replies, long p99Micros, long maxMicros,
               boolean allAnswered) {}

    /** The verdict: loaded/unloaded throughput, and whether every client was answered and none starved. */
    public record Result(double unloadedMbPerSec, double loadedMbPerSec, boolean allAnswered, boolean noneStarved) {
        public double ratio() {
            return loadedMbPerSec / unloadedMbPerSec;
        }
    }

    private static final Duration TIMEOUT = Duration.ofSeconds(180);

    private final Options options;
    private final PrintStream out;

    public QmpLoadBench(Options options, PrintStream out) {
        this.options = options;
        this.out = out;
    }

    public Result run() throws IOException, InterruptedException, java.util.concurrent.TimeoutException {
        out.printf("livemig bench qmp-load: %d MiB of random RAM between two livemig run processes, %d clients polling"
                        + " query-migrate on the source during the loaded runs; load average %.2f%n",
                options.ramBytes() >> 20, options.clients(),
                java.lang.management.ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage());
        List<String> machine = List.of("--ram", (options.ramBytes() >> 20) + "M", "--vcpus", "1", "--workload", "idle",
                "--fill", "random");
        List<String> argsB = new ArrayList<>(machine);
        argsB.addAll(List.of("--incoming", "defer"));
        List<Run> runs = new ArrayList<>();
        try (ChildMachine a = ChildMachine.start(options.javaCommand(), machine, options.dir(), "load-a");
             ChildMachine b = ChildMachine.start(options.javaCommand(), argsB, options.dir(), "load-b")) {
            ChildMachine src = a;
            ChildMachine dst = b;
            List<Boolean> plan = new ArrayList<>();
            plan.add(null); // untimed: both JVMs compile the paths first
            for (int i = 0; i < options.repeat(); i++) {
                plan.addAll(List.of(false, true, true, false));
            }
            int n = 0;
            for (Boolean loaded : plan) {
                Run r = migrate(src, dst, loaded != null && loaded, ++n);
                if (loaded != null) {
                    runs.add(r);
                    out.printf("%-9s %s  %8.0f MB/s%s%n", loaded ? "loaded" : "unloaded", r.direction(), r.mbPerSec(),
                            loaded ? String.format("  replies per client min %d max %d, round trip p99 %d us max %d us%s",
                                    Arrays.stream(r.replies()).min().orElse(0), Arrays.stream(r.replies()).max().orElse(0),
                                    r.p99Micros(), r.maxMicros(), r.allAnswered() ? "" : "  UNANSWERED REQUESTS") : "");
                }
                ChildMachine t = src;
                src = dst;
                dst = t;
            }
        }
        double unloaded = median(runs.stream().filter(r -> !r.loaded()).mapToDouble(Run::mbPerSec).toArray());
        double loaded = median(runs.stream().filter(Run::loaded).mapToDouble(Run::mbPerSec).toArray());
        boolean answered = runs.stream().allMatch(Run::allAnswered);
        boolean fair = runs.stream().filter(Run::loaded).allMatch(r -> {
            long min = Arrays.stream(r.replies()).min().orElse(0);
            long max = Arrays.stream(r.replies()).max().orElse(0);
            return min >= Math.max(1, max / 4);
        });
        Result result = new Result(unloaded, loaded, answered, fair);
        out.printf("throughput: loaded %.0f MB/s against unloaded %.0f MB/s (medians): %.0f%% (goal: at least 90%%)%n",
                loaded, unloaded, 100 * result.ratio());
        out.println("every request answered: " + answered + "; no client starved: " + fair);
        return result;
    }

    private static double median(double[] v) {
        Arrays.sort(v);
        return v.length == 0 ? 0 : v.length % 2 == 1 ? v[v.length / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
    }

    /** One migration from {@code src} to {@code dst}, under load or not; the roles are then swapped by the caller. */
    private Run migrate(ChildMachine src, ChildMachine dst, boolean loaded, int n)
            throws IOException, InterruptedException, java.util.concurrent.TimeoutException {
        QmpClient s = src.qmp();
        QmpClient d = dst.qmp();
        d.execute("x-livemig-become-destination", QmpClient.args("autostart", false));
        s.execute("migrate-set-parameters", QmpClient.args("max-bandwidth", 0));
        String uri = "unix:" + options.dir().resolve("load-" + n + ".sock");
        d.execute("migrate-incoming", QmpClient.args("uri", uri, "exit-on-error", false));
        int clients = loaded ? options.clients() : 0;
        List<QmpClient> conns = new ArrayList<>();
        for (int i = 0; i < clients; i++) {
            conns.add(src.connect().timeout(Duration.ofSeconds(30)));
        }
        AtomicBoolean stop = new AtomicBoolean();
        long[] sent = new long[clients];
        long[] replies = new long[clients];
        Histogram[] rtt = new Histogram[clients];
        List<CompletableFuture<Void>> pollers = new ArrayList<>();
        for (int i = 0; i < clients; i++) {
            int k = i;
            rtt[k] = new Histogram(3);
            pollers.add(CompletableFuture.runAsync(() -> {
                try {
                    while (!stop.get()) {
                        long t0 = System.nanoTime();
                        sent[k]++;
                        conns.get(k).execute("query-migrate");
                        replies[k]++;
                        rtt[k].recordValue(Math.max(1, (System.nanoTime() - t0) / 1000));
                    }
                } catch (IOException e) {
                    // unanswered: counted below (sent != replies)
                }
            }, r -> Thread.ofPlatform().daemon().name("qmp-load-" + k).start(r)));
        }
        try {
            s.execute("migrate", QmpClient.args("uri", uri));
            JsonNode q = awaitCompleted(s);
            awaitCompleted(d);
            stop.set(true);
            for (CompletableFuture<Void> p : pollers) {
                try {
                    p.get(60, TimeUnit.SECONDS);
                } catch (java.util.concurrent.ExecutionException e) {
                    throw new IOException(e.getCause());
                }
            }
            long bytes = q.path("ram").path("transferred").asLong();
            long ms = Math.max(1, q.path("total-time").asLong());
            Histogram all = new Histogram(3);
            boolean answered = true;
            for (int i = 0; i < clients; i++) {
                all.add(rtt[i]);
                answered &= sent[i] == replies[i];
            }
            d.execute("cont");
            return new Run(loaded, src.name() + "->" + dst.name(), bytes / 1e3 / ms, replies,
                    clients == 0 ? 0 : all.getValueAtPercentile(99), clients == 0 ? 0 : all.getMaxValue(), answered);
        } finally {
            stop.set(true);
            for (QmpClient c : conns) {
                c.close();
            }
        }
    }

    private static JsonNode awaitCompleted(QmpClient c) throws IOException, InterruptedException, java.util.concurrent.TimeoutException {
        long deadline = System.nanoTime() + TIMEOUT.toNanos();
        while (true) {
            JsonNode q = c.execute("query-migrate");
            String st = q.path("status").asString("none");
            if (st.equals("completed")) {
                return q;
            }
            if (st.equals("failed") || st.equals("cancelled")) {
                throw new IOException("migration " + st + ": " + q.path("error-desc").asString(""));
            }
            if (System.nanoTime() > deadline) {
                throw new java.util.concurrent.TimeoutException("migration still " + st + " after " + TIMEOUT.toSeconds() + " s");
            }
            Thread.sleep(20); // the unloaded baseline polls too, but slowly
        }
    }
}
