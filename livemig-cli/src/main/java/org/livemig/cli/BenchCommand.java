package org.livemig.cli;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import org.livemig.bench.ChildMachine;
import org.livemig.bench.ColoBench;
import org.livemig.bench.PostcopyBench;
import org.livemig.bench.PrecopyBench;
import org.livemig.bench.QmpLatencyBench;
import org.livemig.bench.SnapshotBench;
import org.livemig.bench.SnapshotModesBench;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

/** {@code livemig bench ...}: end-to-end benchmarks; numbers are ratios against a baseline measured in the same run. */
@Command(name = "bench", mixinStandardHelpOptions = true, description = "Run a benchmark.",
        subcommands = {BenchCommand.Snapshot.class, BenchCommand.Precopy.class, BenchCommand.QmpLatency.class,
                BenchCommand.Postcopy.class, BenchCommand.Colo.class, BenchCommand.Micro.class, BenchCommand.Device.class,
                BenchCommand.Soak.class, BenchCommand.QmpLoad.class, BenchCommand.Startup.class})
final class BenchCommand {
    @Command(name = "snapshot", mixinStandardHelpOptions = true,
            description = {"Save/load throughput to a file and to /dev/null against a plain sequential write (case stream);",
                    "a running ab guest saved with --live against stop-and-save of the same guest: the guest's pause, its writes'"
                            + " longest wait and the total time (case live);",
                    "mapped-ram save and load with 1, 2 and 4 channels, with and without O_DIRECT, against a plain sequential"
                            + " write and read of the same bytes (case mapped-ram)."},
            exitCodeListHeading = ExitCodes.HEADING, footer = "",
            exitCodeList = {"0:measured and printed", "1:a measured migration failed", ExitCodes.USAGE_TEXT})
    static final class Snapshot implements Callable<Integer> {
        @Option(names = "--ram", defaultValue = "4G", description = "Guest RAM (default: ${DEFAULT-VALUE}).")
        String ram;

        @Option(names = "--dir", defaultValue = "${java.io.tmpdir}", description = "Where the file goes (default: ${DEFAULT-VALUE}).")
        Path dir;

        @Option(names = "--cases", split = ",", defaultValue = "stream,live,mapped-ram",
                description = "Which cases to run: stream, live, mapped-ram (default: ${DEFAULT-VALUE}).")
        List<String> cases;

        @Spec
        CommandSpec spec;

        @Override
        public Integer call() throws Exception {
            for (String c : cases) {
                if (!List.of("stream", "live", "mapped-ram").contains(c)) {
                    throw new ParameterException(spec.commandLine(),
                            "--cases takes stream, live and mapped-ram, not '" + c + "'");
                }
            }
            long bytes = Sizes.parse(ram);
            if (cases.contains("stream")) {
                new SnapshotBench(bytes, dir, System.out).run();
            }
            if (cases.contains("live") || cases.contains("mapped-ram")) {
                new SnapshotModesBench(bytes, dir, System.out).run(cases.contains("live"),
                        cases.contains("mapped-ram"));
            }
            return 0;
        }
    }

    @Command(name = "micro", mixinStandardHelpOptions = true,
            description = {"JMH micro-benchmarks of the page path and the monitor: the zero-page scan, RAM page records,",
                    "the VMState codec, QMP's JSON, XBZRLE and compression; each beside a baseline in the same run (a copy of the",
                    "same bytes, Jackson)."},
            exitCodeListHeading = ExitCodes.HEADING, footer = "",
            exitCodeList = {"0:measured and printed", "1:a benchmark failed", ExitCodes.USAGE_TEXT})
    static final class Micro implements Callable<Integer> {
        @Option(names = "--include", paramLabel = "REGEX",
                description = "Only benchmarks whose Class.method matches (e.g. ZeroPage, PageRecord.decode).")
        String include;

        @Option(names = "--forks", defaultValue = "1", description = "JVMs forked per benchmark (default: ${DEFAULT-VALUE}; 0 runs in this one).")
        int forks;

        @Option(names = "--quick", description = "Iterations of 100 ms, a smoke test: the numbers are not to be trusted.")
        boolean quick;

        @Option(names = "--verbose", description = "JMH's own progress output too.")
        boolean verbose;

        @Override
        public Integer call() throws Exception {
            if (forks < 0) {
                throw new IllegalArgumentException("--forks must be 0 or more, not " + forks);
            }
            try {
                return new org.livemig.bench.MicroBench(new org.livemig.bench.MicroBench.Options(include, forks, quick, verbose),
                        System.out).run().isEmpty() ? 1 : 0;
            } catch (org.openjdk.jmh.runner.RunnerException e) {
                System.err.println("livemig bench micro: " + e.getMessage());
                return 1;
            }
        }
    }

    @Command(name = "colo", mixinStandardHelpOptions = true,
            description = {"COLO: the primary's pause per checkpoint (p50/p99) and the checkpoint size at each delay, beside a",
                    "plain precopy switchover of the same guest; then the failover time each way."},
            exitCodeListHeading = ExitCodes.HEADING, footer = "",
            exitCodeList = {"0:measured and printed", "1:a measured migration failed", ExitCodes.USAGE_TEXT})
    static final class Colo implements Callable<Integer> {
        @Option(names = "--ram", defaultValue = "512M", description = "Guest RAM (default: ${DEFAULT-VALUE}).")
        String ram;

        @Option(names = "--delays", split = ",", defaultValue = "100,1000",
                description = "x-checkpoint-delay values in ms (default: ${DEFAULT-VALUE}).")
        long[] delays;

        @Option(names = "--checkpoints", defaultValue = "50",
                description = "Checkpoints measured per delay (default: ${DEFAULT-VALUE}).")
        int checkpoints;

        @Override
        public Integer call() throws Exception {
            new ColoBench(Sizes.parse(ram), delays, checkpoints, System.out).run();
            return 0;
        }
    }

    @Command(name = "postcopy", mixinStandardHelpOptions = true,
            description = "Page-request latency (fault to page placed) per demand-paging backend, and the switch-over pause.",
            exitCodeListHeading = ExitCodes.HEADING, footer = "",
            exitCodeList = {"0:measured and printed", "1:a measured migration failed", ExitCodes.USAGE_TEXT})
    static final class Postcopy implements Callable<Integer> {
        @Option(names = "--ram", defaultValue = "256M", description = "Guest RAM (default: ${DEFAULT-VALUE}).")
        String ram;

        @Option(names = "--repeat", defaultValue = "1", description = "Runs of every case (default: ${DEFAULT-VALUE}); medians at the end.")
        int repeat;

        @Option(names = "--request-priority", defaultValue = "0",
                description = "SCHED_FIFO priority (1-99) of the page-request threads on both sides, as `run --postcopy-request-priority`;"
                        + " 0 (default) for normal scheduling.")
        int requestPriority;

        @Override
        public Integer call() throws Exception {
            new PostcopyBench(Sizes.parse(ram), requestPriority, System.out).run(repeat);
            return 0;
        }
    }

    @Command(name = "precopy", mixinStandardHelpOptions = true,
            description = {"Live precopy migrations between two `livemig run` processes over QMP, against a raw loopback copy.",
                    "Cases: random-tcp, random-unix, zero-tcp (--ram each), ab25000-tcp (--ram / 2), ab-tcp (--ram)."},
            exitCodeListHeading = ExitCodes.HEADING, footer = "",
            exitCodeList = {"0:measured and printed", "1:a measured migration failed", ExitCodes.USAGE_TEXT})
    static final class Precopy implements Callable<Integer> {
        @Option(names = "--ram", defaultValue = "1G", description = "Guest RAM of the full-size cases (default: ${DEFAULT-VALUE}).")
        String ram;

        @Option(names = "--cases", split = ",", description = "Cases to run, comma-separated (default: all).")
        List<String> cases = new ArrayList<>();

        @Option(names = "--repeat", defaultValue = "1", description = "Runs per case (default: ${DEFAULT-VALUE}).")
        int repeat;

        @Option(names = "--timeout", defaultValue = "120",
                description = "Seconds before a migration that has not converged is cancelled (default: ${DEFAULT-VALUE}).")
        long timeoutSeconds;

        @Option(names = "--child-warm-up", negatable = true, defaultValue = "true", fallbackValue = "true",
                description = "Children warm up at startup, as `livemig run` does by default (--no-child-warm-up: measure them cold).")
        boolean childWarmUp;

        @Option(names = "--keep-logs",
                description = "Keep the children's logs (each process's own account of its migrations) and print where.")
        boolean keepLogs;

        @Override
        public Integer call() throws Exception {
            Path dir = Files.createTempDirectory("livemig-bench");
            try {
                List<PrecopyBench.Result> results = new PrecopyBench(new PrecopyBench.Options(Sizes.parse(ram), cases, repeat,
                        Duration.ofSeconds(timeoutSeconds), dir, ChildMachine.javaCommand(false), childWarmUp), System.out).run();
                return results.isEmpty() ? 1 : 0;
            } finally {
                if (keepLogs) {
                    System.out.println("children's logs kept in " + dir);
                } else {
                    deleteTree(dir);
                }
            }
        }
    }

    @Command(name = "qmp-latency", mixinStandardHelpOptions = true,
            description = "query-status round trips to a destination: idle, while loading, while the source stalls in a device section.",
            exitCodeListHeading = ExitCodes.HEADING, footer = "",
            exitCodeList = {"0:measured and printed", "1:a measured migration failed", ExitCodes.USAGE_TEXT})
    static final class QmpLatency implements Callable<Integer> {
        @Option(names = "--ram", defaultValue = "1G", description = "Guest RAM of the migrations (default: ${DEFAULT-VALUE}).")
        String ram;

        @Option(names = "--blob-size", defaultValue = "64M",
                description = "Blob device state of the stalled case (default: ${DEFAULT-VALUE}).")
        String blobSize;

        @Option(names = "--stall-ms", defaultValue = "2000", description = "How long the source stalls (default: ${DEFAULT-VALUE}).")
        long stallMillis;

        @Option(names = "--idle-seconds", defaultValue = "3", description = "How long the idle case samples (default: ${DEFAULT-VALUE}).")
        double idleSeconds;

        @Option(names = "--timeout", defaultValue = "120", description = "Seconds a migration may take (default: ${DEFAULT-VALUE}).")
        long timeoutSeconds;

        @Option(names = "--qemu", paramLabel = "BINARY", defaultValue = "",
                description = "The QEMU measured beside livemig (default: qemu-system-x86_64 on PATH, skipped when there is none;"
                        + " 'none' to skip).")
        String qemu;

        @Spec
        CommandSpec spec;

        @Override
        public Integer call() throws Exception {
            String qemuBinary = qemuBinary(spec, qemu);
            Path dir = Files.createTempDirectory("livemig-bench");
            try {
                long blob = Sizes.parse(blobSize);
                new QmpLatencyBench(new QmpLatencyBench.Options(Sizes.parse(ram), blob,
                        Duration.ofMillis(stallMillis), Duration.ofMillis((long) (idleSeconds * 1000)),
                        Duration.ofSeconds(timeoutSeconds), dir, QmpLatencyBench.childJavaCommand(blob), qemuBinary),
                        System.out).run();
                return 0;
            } finally {
                deleteTree(dir);
            }
        }
    }

    @Command(name = "startup", mixinStandardHelpOptions = true,
            description = {"A destination's start to its QMP greeting and resident memory beyond guest RAM idle, and the peak",
                    "resident memory of both ends of precopy, multifd and postcopy migrations (livemig's with Native Memory",
                    "Tracking's accounting), beside a real QEMU 7.2 in the same run when qemu-system-x86_64 is installed."},
            exitCodeListHeading = ExitCodes.HEADING, footer = "",
            exitCodeList = {"0:measured and printed (the goals are reported, not enforced)", "1:a measured migration failed",
                    ExitCodes.USAGE_TEXT})
    static final class Startup implements Callable<Integer> {
        @Option(names = "--ram", defaultValue = "1G", description = "Guest RAM of every machine (default: ${DEFAULT-VALUE}).")
        String ram;

        @Option(names = "--repeat", defaultValue = "3", description = "Start-ups of each (medians; default: ${DEFAULT-VALUE}).")
        int repeat;

        @Option(names = "--cases", split = ",", defaultValue = "precopy,multifd,postcopy",
                description = "Migrations whose peaks are measured: precopy, multifd, postcopy (default: ${DEFAULT-VALUE}).")
        List<String> cases;

        @Option(names = "--idle-seconds", defaultValue = "3",
                description = "How long a started machine idles before its resident memory is read (default: ${DEFAULT-VALUE}).")
        double idleSeconds;

        @Option(names = "--timeout", defaultValue = "120", description = "Seconds a migration may take (default: ${DEFAULT-VALUE}).")
        long timeoutSeconds;

        @Option(names = "--qemu", paramLabel = "BINARY", defaultValue = "",
                description = "The QEMU measured beside livemig (default: qemu-system-x86_64 on PATH, skipped when there is none;"
                        + " 'none' to skip).")
        String qemu;

        @Spec
        CommandSpec spec;

        @Override
        public Integer call() throws Exception {
            for (String c : cases) {
                if (!org.livemig.bench.StartupBench.CASES.contains(c)) {
                    throw new ParameterException(spec.commandLine(), "--cases takes "
                            + String.join(", ", org.livemig.bench.StartupBench.CASES) + ", not '" + c + "'");
                }
            }
            if (repeat < 1) {
                throw new ParameterException(spec.commandLine(), "--repeat must be at least 1, not " + repeat);
            }
            if (idleSeconds < 0) {
                throw new ParameterException(spec.commandLine(), "--idle-seconds must not be negative, not " + idleSeconds);
            }
            String qemuBinary = qemuBinary(spec, qemu);
            Path dir = Files.createTempDirectory("livemig-bench");
            try {
                new org.livemig.bench.StartupBench(new org.livemig.bench.StartupBench.Options(Sizes.parse(ram), repeat, cases,
                        Duration.ofMillis((long) (idleSeconds * 1000)), Duration.ofSeconds(timeoutSeconds), dir,
                        ChildMachine.javaCommand(false), qemuBinary), System.out).run();
                return 0;
            } finally {
                deleteTree(dir);
            }
        }
    }

    @Command(name = "device", mixinStandardHelpOptions = true,
            description = "Downtime of a machine whose accelerator (--device) the guest writes: its final state on the main"
                    + " stream against over multifd channels with load threads, same run; the destination monitor's p99 meanwhile.",
            exitCodeListHeading = ExitCodes.HEADING, footer = "",
            exitCodeList = {"0:measured and printed", "1:a measured migration failed or did not verify", ExitCodes.USAGE_TEXT})
    static final class Device implements Callable<Integer> {
        @Option(names = "--ram", defaultValue = "256M", description = "Guest RAM, random, idle guest (default: ${DEFAULT-VALUE}).")
        String ram;

        @Option(names = "--device-size", defaultValue = "256M", description = "The accelerator's memory (default: ${DEFAULT-VALUE}).")
        String deviceSize;

        @Option(names = "--dirty-rate", defaultValue = "50", description = "MiB/s the guest writes it (default: ${DEFAULT-VALUE}).")
        double dirtyRate;

        @Option(names = "--channels", defaultValue = "2", description = "multifd channels of the multifd case (default: ${DEFAULT-VALUE}).")
        int channels;

        @Option(names = "--repeat", defaultValue = "3", description = "Runs of each case, alternating (default: ${DEFAULT-VALUE}).")
        int repeat;

        @Option(names = "--timeout", defaultValue = "120", description = "Seconds a migration may take (default: ${DEFAULT-VALUE}).")
        long timeoutSeconds;

        @Option(names = "--keep-logs", description = "Keep the children's logs and print where.")
        boolean keepLogs;

        @Override
        public Integer call() throws Exception {
            Path dir = Files.createTempDirectory("livemig-bench");
            try {
                List<org.livemig.bench.DeviceBench.Result> results = new org.livemig.bench.DeviceBench(
                        new org.livemig.bench.DeviceBench.Options(Sizes.parse(ram), Sizes.parse(deviceSize), dirtyRate,
                                channels, repeat, Duration.ofSeconds(timeoutSeconds), dir, ChildMachine.javaCommand(false)),
                        System.out).run();
                return results.stream().allMatch(r -> r.verified() && "completed".equals(r.status())) ? 0 : 1;
            } finally {
                if (keepLogs) {
                    System.out.println("children's logs kept in " + dir);
                } else {
                    deleteTree(dir);
                }
            }
        }
    }

    @Command(name = "qmp-load", mixinStandardHelpOptions = true,
            description = {"The monitor under load: migrations between two `livemig run` processes, alternately unloaded and with",
                    "--clients QMP clients polling the source's query-migrate as fast as they can; the loaded throughput against",
                    "the unloaded one (goal: at least 90%), per-client replies and round trips, every request answered."},
            exitCodeListHeading = ExitCodes.HEADING, footer = "",
            exitCodeList = {"0:measured and printed (the throughput goal is reported, not enforced)",
                    "1:a migration failed, a request went unanswered or a client starved", ExitCodes.USAGE_TEXT})
    static final class QmpLoad implements Callable<Integer> {
        @Option(names = "--ram", defaultValue = "512M", description = "Guest RAM (default: ${DEFAULT-VALUE}).")
        String ram;

        @Option(names = "--clients", defaultValue = "16", description = "Polling clients (default: ${DEFAULT-VALUE}).")
        int clients;

        @Option(names = "--repeat", defaultValue = "1",
                description = "Rounds of unloaded, loaded, loaded, unloaded (default: ${DEFAULT-VALUE}).")
        int repeat;

        @Override
        public Integer call() throws Exception {
            Path dir = Files.createTempDirectory("livemig-bench");
            try {
                var r = new org.livemig.bench.QmpLoadBench(new org.livemig.bench.QmpLoadBench.Options(Sizes.parse(ram), clients,
                        repeat, dir, ChildMachine.javaCommand(false)), System.out).run();
                return r.allAnswered() && r.noneStarved() ? 0 : 1;
            } finally {
                deleteTree(dir);
            }
        }
    }

    @Command(name = "soak", mixinStandardHelpOptions = true,
            description = {"N migrations back and forth between two `livemig run` processes, cycling precopy, multifd, postcopy,",
                    "postcopy with a pause and recovery, and cancels at random points (seeded). After each cycle both machines",
                    "verify, and each process's threads, open files, RSS and heap after GC are recorded; at the end any growth",
                    "past the warm-up (the first fifth of the cycles) beyond a small allowance fails the soak."},
            exitCodeListHeading = ExitCodes.HEADING, footer = "",
            exitCodeList = {"0:every cycle verified and nothing grew", "1:a cycle failed, or a measure grew", ExitCodes.USAGE_TEXT})
    static final class Soak implements Callable<Integer> {
        @Option(names = "--count", defaultValue = "500", description = "Cycles (default: ${DEFAULT-VALUE}).")
        int count;

        @Option(names = "--seed", defaultValue = "1", description = "Seed of the cycles' random choices (default: ${DEFAULT-VALUE}).")
        long seed;

        @Option(names = "--ram", defaultValue = "64M", description = "Guest RAM (default: ${DEFAULT-VALUE}).")
        String ram;

        @Option(names = "--csv", paramLabel = "FILE", description = "Also write every sample (cycle, process, threads, fds, RSS, heap) to FILE.")
        Path csv;

        @Option(names = "--keep-logs", description = "Keep the children's logs and print where.")
        boolean keepLogs;

        @Override
        public Integer call() throws Exception {
            if (count < 1) {
                throw new IllegalArgumentException("--count must be at least 1, not " + count);
            }
            Path dir = Files.createTempDirectory("livemig-soak");
            try {
                var r = new org.livemig.bench.SoakBench(new org.livemig.bench.SoakBench.Options(count, seed, Sizes.parse(ram), dir,
                        ChildMachine.javaCommand(false), csv), System.out).run();
                return r.passed() ? 0 : 1;
            } finally {
                if (keepLogs) {
                    System.out.println("children's logs kept in " + dir);
                } else {
                    deleteTree(dir);
                }
            }
        }
    }

    /**
     * The QEMU binary of a {@code --qemu} option: the one on PATH for "" (null when none is
     * installed), null for "none", else the given path, which must be executable.
     */
    static String qemuBinary(CommandSpec spec, String option) {
        if (option.isEmpty()) {
            return org.livemig.bench.QemuMachine.binary();
        }
        if (option.equals("none")) {
            return null;
        }
        if (!Files.isExecutable(Path.of(option))) {
            throw new ParameterException(spec.commandLine(), "--qemu: '" + option + "' is not an executable file");
        }
        return option;
    }

    /** Removes a benchmark's scratch directory and everything under it (TLS cases leave credential directories). */
    private static void deleteTree(Path dir) throws java.io.IOException {
        try (var s = Files.walk(dir)) {
            for (Path p : s.sorted(java.util.Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        }
    }
}
