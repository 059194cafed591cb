package org.livemig.cli;

import java.nio.file.Path;
import java.util.concurrent.Callable;
import org.livemig.bench.SnapshotBench;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code livemig bench ...}: end-to-end benchmarks; numbers are ratios against a baseline measured in the same run. */
@Command(name = "bench", description = "Run a benchmark.", subcommands = {BenchCommand.Snapshot.class})
final class BenchCommand {
    @Command(name = "snapshot", mixinStandardHelpOptions = true,
            description = "Save/load throughput to a file and to /dev/null against a plain sequential write.")
    static final class Snapshot implements Callable<Integer> {
        @Option(names = "--ram", defaultValue = "4G", description = "Guest RAM (default: ${DEFAULT-VALUE}).")
        String ram;

        @Option(names = "--dir", defaultValue = "${java.io.tmpdir}", description = "Where the file goes (default: ${DEFAULT-VALUE}).")
        Path dir;

        @Override
        public Integer call() throws Exception {
            new SnapshotBench(Sizes.parse(ram), dir, System.out).run();
            return 0;
        }
    }
}
