package org.livemig.bench;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.RunnerException;
import org.openjdk.jmh.runner.options.ChainedOptionsBuilder;
import org.openjdk.jmh.runner.options.OptionsBuilder;
import org.openjdk.jmh.runner.options.TimeValue;
import org.openjdk.jmh.runner.options.VerboseMode;

/**
 * {@code livemig bench micro}: runs the JMH benchmarks of {@code org.livemig.bench.micro} and
 * prints each result beside its class's baseline measured in the same run, as a ratio. A method
 * {@code x} is compared with {@code baselineX} when the class has one, else with {@code baseline},
 * at the same parameter values.
 */
public final class MicroBench {
    static final String PACKAGE = "org.livemig.bench.micro.";

    /** What to run: a regex on "Class.method" (null: all), JMH's forks, and a quick mode for smoke tests. */
    public record Options(String include, int forks, boolean quick, boolean verbose) {}

    /** One result with its ratio to the baseline (NaN for a baseline itself). */
    public record Line(String benchmark, String params, double score, double error, String unit, double ratio) {}

    private final Options options;
    private final PrintStream out;

    public MicroBench(Options options, PrintStream out) {
        this.options = options;
        this.out = out;
    }

    public List<Line> run() throws RunnerException {
        out.println("JMH micro-benchmarks" + (options.quick() ? " (quick: too short to trust, a smoke test)" : "")
                + ", forks " + options.forks() + "; each beside its baseline in the same run");
        Collection<RunResult> results = new Runner(jmhOptions(options)).run();
        List<Line> lines = lines(results);
        print(lines);
        return lines;
    }

    /** JMH's options for {@code options}. */
    static org.openjdk.jmh.runner.options.Options jmhOptions(Options options) {
        ChainedOptionsBuilder b = new OptionsBuilder()
                .include(PACKAGE.replace(".", "\\.") + (options.include() == null ? ".*" : ".*(" + options.include() + ").*"))
                .forks(options.forks())
                .shouldFailOnError(true)
                .verbosity(options.verbose() ? VerboseMode.NORMAL : VerboseMode.SILENT)
                // The forks' own options, not the host JVM's: the launcher's (a serial collector,
                // its AOT cache, -ea) would clash with these or skew what is measured.
                .jvmArgs("-Xmx1g", "-XX:+UseParallelGC", "--enable-native-access=ALL-UNNAMED",
                        "--sun-misc-unsafe-memory-access=allow");
        if (options.quick()) {
            b.warmupIterations(1).warmupTime(TimeValue.milliseconds(100))
                    .measurementIterations(2).measurementTime(TimeValue.milliseconds(100));
        } else {
            b.warmupIterations(3).warmupTime(TimeValue.seconds(1))
                    .measurementIterations(5).measurementTime(TimeValue.seconds(1));
        }
        return b.build();
    }

    static List<Line> lines(Collection<RunResult> results) {
        // class -> params -> method -> result
        Map<String, Map<String, Map<String, RunResult>>> byClass = new TreeMap<>();
        for (RunResult r : results) {
            String full = r.getParams().getBenchmark();
            int dot = full.lastIndexOf('.');
            String cls = full.substring(PACKAGE.length(), dot);
            String method = full.substring(dot + 1);
            byClass.computeIfAbsent(cls, k -> new TreeMap<>())
                    .computeIfAbsent(params(r), k -> new LinkedHashMap<>()).put(method, r);
        }
        List<Line> lines = new ArrayList<>();
        byClass.forEach((cls, byParams) -> byParams.forEach((params, methods) -> methods.forEach((method, r) -> {
            RunResult base = method.startsWith("baseline") ? null
                    : methods.getOrDefault("baseline" + Character.toUpperCase(method.charAt(0)) + method.substring(1),
                            methods.get("baseline"));
            double score = r.getPrimaryResult().getScore();
            double ratio = base == null ? Double.NaN : score / base.getPrimaryResult().getScore();
            lines.add(new Line(cls + "." + method, params, score, r.getPrimaryResult().getScoreError(),
                    r.getPrimaryResult().getScoreUnit(), ratio));
        })));
        return lines;
    }

    private static String params(RunResult r) {
        List<String> p = new ArrayList<>();
        for (String k : r.getParams().getParamsKeys()) {
            p.add(k + "=" + r.getParams().getParam(k));
        }
        return String.join(",", p);
    }

    private void print(List<Line> lines) {
        out.printf("%-36s %-26s %14s %12s  %s%n", "benchmark", "params", "score", "± error", "x baseline");
        for (Line l : lines) {
            out.printf("%-36s %-26s %11.3f %-2s %12.3f  %s%n", l.benchmark(), l.params(), l.score(), shortUnit(l.unit()),
                    l.error(), Double.isNaN(l.ratio()) ? "(baseline)" : String.format("%.2f", l.ratio()));
        }
        out.println("ratio: time per operation divided by the baseline's (below 1: faster than the baseline)");
    }

    private static String shortUnit(String unit) {
        return unit.replace("/op", "").replace(TimeUnit.MICROSECONDS.toString(), "us");
    }
}
