package org.livemig.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.logging.Handler;
import java.util.logging.Logger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code --log-level}, {@code -v}/{@code -q} and {@code --log-file} on every command: one line per
 * record with a UTC timestamp, the thread and the level; the backend put back after the command.
 */
class LoggingTest {
    private static final String LINE = "\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z livemig\\[[^\\]]+\\] (ERROR|WARNING|INFO|DEBUG|TRACE): .*";

    @TempDir
    Path dir;

    private List<String> demoLog(String... logOptions) throws Exception {
        Path log = dir.resolve("demo-" + String.join("", logOptions).replaceAll("[^a-z]", "") + ".log");
        List<String> args = new java.util.ArrayList<>(List.of("demo", "--in-process", "--ram", "16M", "--run-before-ms", "100",
                "--log-file", log.toString()));
        args.addAll(List.of(logOptions));
        Cli.Run r = Cli.run(args.toArray(String[]::new));
        assertThat(r.status()).as(r.all()).isZero();
        return Files.exists(log) ? Files.readAllLines(log) : List.of();
    }

    @Test
    void theSwitchoverIsLoggedAtInfoOnOneLineWithItsThreadIntoTheLogFile() throws Exception {
        Handler[] before = Logger.getLogger("").getHandlers();
        List<String> lines = demoLog();
        assertThat(lines).isNotEmpty().allMatch(l -> l.matches(LINE) || l.startsWith("\tat ") || !l.startsWith("20"));
        assertThat(lines).anyMatch(l -> l.matches(LINE) && l.contains(" livemig[mig/src/main] INFO: switchover: downtime "));
        assertThat(Logger.getLogger("").getHandlers()).as("the backend is put back").containsExactly(before);
    }

    @Test
    void quietLeavesInfoOutAndVerboseMovesFromTheGivenLevel() throws Exception {
        assertThat(demoLog("-q")).noneMatch(l -> l.contains(" INFO: "));
        assertThat(demoLog("--log-level", "error", "-v")).noneMatch(l -> l.contains(" INFO: "));
        assertThat(demoLog("--log-level", "warning", "-v")).anyMatch(l -> l.contains(" INFO: switchover: downtime "));
    }

    @Test
    void theOptionsGoBeforeOrAfterTheCommandAndABadOneIsAUsageError() {
        Cli.Run before = Cli.run("--log-level", "loud", "check");
        assertThat(before.status()).isEqualTo(ExitCodes.USAGE);
        assertThat(before.err()).contains("--log-level must be error, warning, info, debug or trace, not 'loud'");
        Cli.Run after = Cli.run("check", "--log-level", "loud");
        assertThat(after.status()).isEqualTo(ExitCodes.USAGE);
        Cli.Run file = Cli.run("check", "--log-file", dir.resolve("no/such/dir/x.log").toString());
        assertThat(file.status()).isEqualTo(ExitCodes.FILE);
        assertThat(file.err()).contains("--log-file " + dir.resolve("no/such/dir/x.log"));
        assertThat(LogSetup.level(null, 2, 0)).isIn("trace", "debug", "info", "warning", "error"); // LIVEMIG_LOG_LEVEL may be set
        assertThat(LogSetup.level("info", 1, 0)).isEqualTo("debug");
        assertThat(LogSetup.level("info", 5, 0)).isEqualTo("trace");
        assertThat(LogSetup.level("info", 0, 2)).isEqualTo("error");
        assertThat(LogSetup.level("WARN", 0, 0)).isEqualTo("warning");
    }
}
