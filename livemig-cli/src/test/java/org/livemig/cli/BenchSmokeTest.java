package org.livemig.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;

/**
 * The benchmark drivers at tiny scale: they run end to end with real child processes and print
 * their tables. No timing is asserted; the numbers at this size mean nothing.
 */
class BenchSmokeTest {
    private record Run(int exitCode, String out) {
        List<String> lines() {
            return out.lines().toList();
        }

        /** The first table row whose first column is {@code first} and whose second is a number. */
        Optional<String[]> row(String first) {
            return out.lines().map(String::trim).map(l -> l.split("\\s+"))
                    .filter(c -> c.length >= 5 && c[0].equals(first) && c[1].matches("\\d+")).findFirst();
        }
    }

    private static Run run(String... args) {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        PrintStream old = System.out;
        int rc;
        try {
            System.setOut(new PrintStream(buf, true, StandardCharsets.UTF_8));
            rc = Main.commandLine().execute(args);
        } finally {
            System.setOut(old);
        }
        return new Run(rc, buf.toString(StandardCharsets.UTF_8));
    }

    @Test
    void precopyRunsOneCaseAgainstItsBaselineAndPrintsTheTable() {
        Run r = run("bench", "precopy", "--ram", "32M", "--cases", "random-tcp", "--timeout", "60");

        assertThat(r.exitCode()).as(r.out()).isZero();
        assertThat(r.out()).contains("guest RAM is allocated, pre-faulted and filled before `migrate` and is not timed");
        String[] baseline = r.row("tcp").orElseThrow(() -> new AssertionError("no tcp baseline row in:\n" + r.out()));
        assertThat(baseline[1]).isEqualTo("32");
        assertThat(Double.parseDouble(baseline[5])).as("baseline MB/s").isPositive();
        assertThat(r.lines()).anyMatch(l -> l.startsWith("case") && l.contains("total ms") && l.contains("down ms")
                && l.contains("passes") && l.contains("MB/s") && l.contains("ratio") && l.contains("src HWM"));
        String[] row = r.row("random-tcp").orElseThrow(() -> new AssertionError("no random-tcp row in:\n" + r.out()));
        assertThat(row[1]).as("run").isEqualTo("1");
        assertThat(row[2]).as("RAM MiB").isEqualTo("32");
        assertThat(row[3]).as("status").isEqualTo("completed");
        assertThat(Long.parseLong(row[4])).as("total ms").isPositive();
        assertThat(Long.parseLong(row[7])).as("passes").isPositive();
        assertThat(Long.parseLong(row[12])).as("source peak RSS MiB").isGreaterThanOrEqualTo(32);
        assertThat(r.out()).contains("random-tcp").contains("memory ").doesNotContain("random-unix");
    }

    @Test
    void precopyRunsAMultifdCase() {
        Run r = run("bench", "precopy", "--ram", "32M", "--cases", "random-tcp-mfd2", "--timeout", "60");
        assertThat(r.exitCode()).as(r.out()).isZero();
        String[] row = r.row("random-tcp-mfd2").orElseThrow(() -> new AssertionError("no multifd row in:\n" + r.out()));
        assertThat(row[3]).as("status").isEqualTo("completed");
        assertThat(r.out()).contains("of one loopback stream").doesNotContain("did not complete");
    }

    @Test
    void deviceRunsTheMainStreamAndTheMultifdCaseAndVerifiesBoth() {
        Run r = run("bench", "device", "--ram", "16M", "--device-size", "8M", "--dirty-rate", "16", "--repeat", "1",
                "--timeout", "60");

        assertThat(r.exitCode()).as(r.out()).isZero();
        assertThat(r.lines()).anyMatch(l -> l.startsWith("case") && l.contains("down ms") && l.contains("swo p99"));
        for (String c : List.of("main", "mfd2")) {
            String[] row = r.row(c).orElseThrow(() -> new AssertionError("no " + c + " row in:\n" + r.out()));
            assertThat(row[2]).as(c + " status").isEqualTo("completed");
            assertThat(Long.parseLong(row[3])).as(c + " downtime").isNotNegative();
            assertThat(Double.parseDouble(row[6])).as(c + " device MiB sent").isGreaterThanOrEqualTo(8);
            assertThat(row[7]).as(c + " verified").isEqualTo("ok");
            assertThat(row[8]).as(c + " final state").isEqualTo(c.equals("main") ? "main" : "multifd");
        }
        assertThat(r.out()).contains("goal: downtime <= 100 ms with multifd and load threads: ")
                .contains("every run completed and verified: yes").contains("load average at the end: ");
    }

    @Test
    void precopyRejectsAnUnknownCase() {
        Run r = run("bench", "precopy", "--ram", "32M", "--cases", "random-tcp,bogus");
        assertThat(r.exitCode()).isNotZero();
        assertThat(r.out()).doesNotContain("baseline");
    }

    /** Where qemu-system-x86_64 is on PATH, or null (the QEMU rows are then skipped). */
    private static String qemu() {
        return org.livemig.bench.QemuMachine.binary();
    }

    @Test
    void qmpLatencyRunsIdleLoadingAndStalledAndPrintsTheTable() {
        Run r = run("bench", "qmp-latency", "--ram", "32M", "--blob-size", "4M", "--stall-ms", "300",
                "--idle-seconds", "0.3", "--timeout", "60", "--qemu", "none");

        assertThat(r.exitCode()).as(r.out()).isZero();
        assertThat(r.lines()).anyMatch(l -> l.startsWith("case") && l.contains("count") && l.contains("p50 ms")
                && l.contains("p99 ms") && l.contains("max ms"));
        for (String c : List.of("idle", "loading", "stalled")) {
            String[] row = r.row(c).orElseThrow(() -> new AssertionError("no " + c + " row in:\n" + r.out()));
            assertThat(Long.parseLong(row[1])).as(c + " count").isPositive();
            double p50 = Double.parseDouble(row[2]);
            double p99 = Double.parseDouble(row[3]);
            double max = Double.parseDouble(row[4]);
            assertThat(p50).as(c + " p50").isPositive().isLessThanOrEqualTo(p99);
            assertThat(p99).as(c + " p99").isLessThanOrEqualTo(max);
        }
        assertThat(r.out()).contains("p99 loading/idle:").contains("p99 stalled/idle:")
                .contains("the source stalls 300 ms after byte")
                .contains("QEMU: skipped (qemu-system-x86_64 not installed, or --qemu none)")
                .containsPattern("idle: p99 [0-9.]+ ms \\(goal <= 0.5 ms: (met|NOT met)\\)")
                .doesNotContain("qemu-idle").doesNotContain("livemig/QEMU");
    }

    /** With QEMU installed, its idle and loading cases run in the same run and are compared. */
    @Test
    void qmpLatencyMeasuresQemuBesideLivemigWhereItIsInstalled() {
        org.junit.jupiter.api.Assumptions.assumeTrue(qemu() != null, "qemu-system-x86_64 is not installed");
        Run r = run("bench", "qmp-latency", "--ram", "32M", "--blob-size", "4M", "--stall-ms", "300",
                "--idle-seconds", "0.3", "--timeout", "60");

        assertThat(r.exitCode()).as(r.out()).isZero();
        for (String c : List.of("idle", "loading", "stalled", "qemu-idle", "qemu-loading")) {
            String[] row = r.row(c).orElseThrow(() -> new AssertionError("no " + c + " row in:\n" + r.out()));
            assertThat(Long.parseLong(row[1])).as(c + " count").isPositive();
            assertThat(Double.parseDouble(row[2])).as(c + " p50").isPositive().isLessThanOrEqualTo(Double.parseDouble(row[3]));
        }
        assertThat(r.out()).contains("QEMU emulator version").containsPattern("loading: p99 .* livemig/QEMU p50 [0-9.]+x, p99 [0-9.]+x")
                .containsPattern("peak RSS beyond guest RAM over idle and loading: livemig -?[0-9.]+ MiB, QEMU [0-9.]+ MiB")
                .doesNotContain("QEMU: skipped");
    }

    @Test
    void qmpLatencyRefusesAQemuThatIsNotAnExecutable() {
        Run r = run("bench", "qmp-latency", "--qemu", "/nonexistent/qemu-system-x86_64");

        assertThat(r.exitCode()).isEqualTo(ExitCodes.USAGE);
        assertThat(r.out()).doesNotContain("query-status round trips");
    }

    /** Without QEMU (--qemu none, as where it is not installed) only livemig is measured, and the output says so. */
    @Test
    void startupMeasuresLivemigAloneAndSaysQemuWasSkipped() {
        Run r = run("bench", "startup", "--ram", "32M", "--repeat", "1", "--idle-seconds", "0.2", "--cases", "precopy",
                "--qemu", "none");

        assertThat(r.exitCode()).as(r.out()).isZero();
        assertThat(r.out()).containsPattern("start to QMP greeting ms +[0-9.]+ +- +-")
                .containsPattern("RSS beyond guest RAM, idle, MiB +[0-9.]+ +- +- +\\(goal <= 100 MiB: (met|NOT met)\\)")
                .containsPattern("\nprecopy +[0-9.]+ +[0-9.]+ +- +- +(met|NOT met)")
                .contains("QEMU: skipped (qemu-system-x86_64 not installed, or --qemu none)")
                .doesNotContain("\nmultifd ").doesNotContain("\npostcopy ");
        // the NMT accounting of both livemig ends, idle and after the migration
        assertThat(r.out()).containsPattern("  Java Heap +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+")
                .containsPattern("  Total +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+");
    }

    @Test
    void startupMeasuresQemuBesideLivemigWhereItIsInstalled() {
        org.junit.jupiter.api.Assumptions.assumeTrue(qemu() != null, "qemu-system-x86_64 is not installed");
        Run r = run("bench", "startup", "--ram", "32M", "--repeat", "1", "--idle-seconds", "0.2", "--cases", "precopy,postcopy");

        assertThat(r.exitCode()).as(r.out()).isZero();
        assertThat(r.out()).contains("QEMU emulator version")
                .containsPattern("start to QMP greeting ms +[0-9.]+ +[0-9.]+ +[0-9.]+x")
                .containsPattern("RSS beyond guest RAM, idle, MiB +[0-9.]+ +[0-9.]+ +[0-9.]+x")
                .containsPattern("\nprecopy +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+ +(met|NOT met)")
                .containsPattern("\npostcopy +[0-9.]+ +[0-9.]+ +- +- +(met|NOT met)")
                .doesNotContain("QEMU: skipped");
    }

    @Test
    void startupRefusesAnUnknownCaseAZeroRepeatAndAMissingQemu() {
        Run unknown = run("bench", "startup", "--cases", "precopy,colo");
        assertThat(unknown.exitCode()).isEqualTo(ExitCodes.USAGE);
        assertThat(unknown.out()).doesNotContain("start to QMP greeting");
        assertThat(run("bench", "startup", "--repeat", "0").exitCode()).isEqualTo(ExitCodes.USAGE);
        assertThat(run("bench", "startup", "--qemu", "/nonexistent/qemu").exitCode()).isEqualTo(ExitCodes.USAGE);
    }

    @Test
    void postcopyMeasuresPageRequestsForTheCheckedBackend() {
        Run r = run("bench", "postcopy", "--ram", "32M");

        assertThat(r.exitCode()).as(r.out()).isZero();
        assertThat(r.lines()).anyMatch(l -> l.startsWith("backend") && l.contains("switch ms") && l.contains("p99 us"));
        // backend, preempt, switch ms, requests, requests the vCPUs sent themselves, ...
        assertThat(r.lines()).anyMatch(l -> l.matches("checked\\s+(true|false)\\s+\\d+\\s+\\d+\\s+\\d+\\s+\\d+.*"));
        // The baseline: every one of its requests answered, alone and beside the background copy.
        for (String which : new String[] {"idle", "loaded"}) {
            String[] row = r.lines().stream().filter(l -> l.startsWith("raw relay, " + which)).findFirst()
                    .orElseThrow(() -> new AssertionError("no raw relay row (" + which + ") in\n" + r.out()))
                    .substring(("raw relay, " + which).length()).trim().split("\\s+");
            assertThat(Long.parseLong(row[1])).as(which + " requests").isEqualTo(4000);
            assertThat(row[2]).as(which + ": no vCPUs in the relay").isEqualTo("-");
            assertThat(Long.parseLong(row[3])).as(which + " p50").isPositive().isLessThanOrEqualTo(Long.parseLong(row[4]));
        }
        // A floor right before every case, and each case's p99 over it at the end of its row.
        long cases = r.lines().stream().filter(l -> l.matches("(checked|userfaultfd)\\s+(true|false)\\b.*")).count();
        assertThat(r.lines().stream().filter(l -> l.startsWith("raw relay, loaded")).count()).isEqualTo(cases);
        assertThat(r.lines()).anyMatch(l -> l.matches("checked\\s+(true|false)(\\s+\\d+){8}\\s+\\d+\\.\\d"));
        assertThat(r.out()).contains("page-request p99 with preempt: ").contains("summary:");
    }

    @Test
    void postcopyRejectsARequestPriorityOutsideSchedFifosRange() {
        Run r = run("bench", "postcopy", "--request-priority", "100");

        assertThat(r.exitCode()).isNotZero();
        assertThat(r.out()).doesNotContain("baseline");
    }

    @Test
    void postcopyRejectsAZeroRepeat() {
        Run r = run("bench", "postcopy", "--repeat", "0");

        assertThat(r.exitCode()).isNotZero();
        assertThat(r.out()).doesNotContain("baseline"); // refused before any measuring (the reason goes to stderr)
    }

    /**
     * {@code bench micro} runs the JMH benchmarks (in this JVM, 100 ms iterations) and prints each
     * beside its class's baseline with a ratio; a baseline says so instead.
     */
    @Test
    void microRunsJmhAndPrintsRatiosToTheBaseline() {
        Run r = run("bench", "micro", "--quick", "--forks", "0", "--include", "ZeroPageBench");
        assertThat(r.exitCode()).as(r.out()).isZero();
        for (String pages : List.of("zero", "last-byte", "first-byte")) {
            assertThat(r.out()).containsPattern("ZeroPageBench\\.scan +pages=" + pages + " +[0-9.]+ us .* [0-9]+\\.[0-9]{2}\n")
                    .containsPattern("ZeroPageBench\\.baseline +pages=" + pages + " +[0-9.]+ us .*\\(baseline\\)");
        }
        assertThat(r.out()).doesNotContain("PageRecordBench");
    }

    @Test
    void microRefusesNegativeForks() {
        assertThat(run("bench", "micro", "--forks", "-1").exitCode()).isEqualTo(ExitCodes.USAGE);
    }

    @Test
    void snapshotLiveAndMappedRamCasesPrintTheirTablesBesideTheirBaselines(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir) {
        Run r = run("bench", "snapshot", "--ram", "16M", "--dir", dir.toString(), "--cases", "live,mapped-ram");

        assertThat(r.exitCode()).as(r.out()).isZero();
        assertThat(r.out()).doesNotContain("save to /dev/null"); // the stream case was not asked for
        assertThat(r.lines()).anyMatch(l -> l.trim().startsWith("--live, checked"));
        String stop = r.lines().stream().map(String::trim).filter(l -> l.startsWith("stop-and-save")).findFirst()
                .orElseThrow(() -> new AssertionError("no stop-and-save row in:\n" + r.out()));
        String[] c = stop.split("\\s+");
        assertThat(Double.parseDouble(c[1])).as("total s").isPositive();
        assertThat(r.out()).contains("goal, no vCPU stall over 20 ms");
        for (String ch : List.of("1 channel ", "2 channels ", "4 channels ")) {
            String row = r.lines().stream().map(String::trim).filter(l -> l.startsWith(ch)).findFirst()
                    .orElseThrow(() -> new AssertionError("no " + ch + " row in:\n" + r.out()));
            String[] v = row.replace(", O_DIRECT", "").split("\\s+");
            for (int k = 2; k < v.length; k++) {
                assertThat(Double.parseDouble(v[k])).as(row).isPositive();
            }
        }
        assertThat(java.nio.file.Files.exists(dir.resolve("livemig-bench-modes.mig"))).as("file removed").isFalse();
    }
}
