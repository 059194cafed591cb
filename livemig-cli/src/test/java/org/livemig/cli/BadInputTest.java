package org.livemig.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.OptionalLong;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.livemig.bench.ChildMachine;

/**
 * Bad input as a new user gives it (issue 18, part 3): each gets a clear error naming what was
 * wrong, before anything expensive happens, or behaves sensibly.
 */
class BadInputTest {
    @TempDir
    Path dir;

    @Test
    void aRamTheHostCannotBackIsRefusedBeforeAnyIsTouched() {
        long t0 = System.nanoTime();
        Cli.Run demo = Cli.run("demo", "--ram", "1T");
        assertThat(demo.status()).isEqualTo(ExitCodes.USAGE);
        assertThat(demo.err()).contains("--ram 1T").contains("2 machines of 1.00 TiB each").contains("available of")
                .contains("MemAvailable").doesNotContain("Exception");
        assertThat(demo.out()).doesNotContain("starting");
        assertThat(System.nanoTime() - t0).as("refused at once").isLessThan(5_000_000_000L);
        Cli.Run run = Cli.run("run", "--ram", "1T", "--no-warm-up");
        assertThat(run.status()).isEqualTo(ExitCodes.USAGE);
        assertThat(run.err()).contains("a machine of 1.00 TiB cannot be backed by this host");
    }

    @Test
    void hostMemoryIsTheSmallestOfAvailableCommitAndCgroup() {
        String meminfo = "MemTotal:       24683784 kB\nMemFree:        23847188 kB\nMemAvailable:   20000000 kB\n"
                + "CommitLimit:    12341892 kB\nCommitted_AS:    2341892 kB\n";
        assertThat(HostMemory.of(meminfo, "0", OptionalLong.empty()).availableBytes()).isEqualTo(20_000_000L * 1024);
        HostMemory strict = HostMemory.of(meminfo, "2", OptionalLong.empty());
        assertThat(strict.availableBytes()).isEqualTo(10_000_000L * 1024);
        assertThat(strict.why()).contains("commit limit");
        HostMemory cgroup = HostMemory.of(meminfo, "0", OptionalLong.of(1L << 30));
        assertThat(cgroup.availableBytes()).isEqualTo(1L << 30);
        assertThat(cgroup.why()).contains("cgroup");
        try {
            cgroup.require(1L << 30, 2, "--ram 1G");
            throw new AssertionError("two 1 GiB machines accepted in a 1 GiB cgroup");
        } catch (IllegalArgumentException e) {
            assertThat(e.getMessage()).startsWith("--ram 1G: 2 machines of 1.00 GiB each (2.00 GiB) cannot be backed");
        }
        cgroup.require(512L << 20, 2, "--ram 512M");
    }

    @Test
    void aChildKilledByASignalIsReportedAsSuch() {
        assertThat(ChildMachine.describeExit(137)).isEqualTo(
                "was killed by signal 9 (SIGKILL; the kernel's OOM killer sends it when memory runs out: see dmesg)");
        assertThat(ChildMachine.describeExit(143)).isEqualTo("was killed by signal 15 (SIGTERM)");
        assertThat(ChildMachine.describeExit(1)).isEqualTo("exited with status 1");
    }

    @Test
    void aDemoSideWhoseProcessIsKilledSaysSo() throws Exception {
        MachineOptions m = new MachineOptions();
        m.ram = "16M";
        m.vcpus = 1;
        m.workload = "idle";
        m.fill = "zero";
        m.blobSize = "4K";
        m.seed = 1;
        try (QmpSide side = QmpSide.start(m, false, dir, "victim")) {
            side.process().destroyForcibly(); // SIGKILL, as the OOM killer sends
            try {
                side.queryMigrate();
                throw new AssertionError("a dead side answered");
            } catch (java.io.IOException e) {
                assertThat(e.getMessage()).startsWith("the victim process was killed by signal 9 (SIGKILL");
            }
        }
    }

    @Test
    void snapshotFileErrorsNameTheirCause() throws Exception {
        Cli.Run noFile = Cli.run("snapshot", "load", dir.resolve("none.mig").toString());
        assertThat(noFile.status()).isEqualTo(ExitCodes.FILE);
        assertThat(noFile.err().strip()).isEqualTo("livemig: no such file: " + dir.resolve("none.mig"));

        Cli.Run noDir = Cli.run("snapshot", "save", dir.resolve("nodir/x.mig").toString(), "--ram", "16M");
        assertThat(noDir.status()).isEqualTo(ExitCodes.FILE);
        assertThat(noDir.err().strip()).isEqualTo("livemig: no such directory: " + dir.resolve("nodir"));

        Cli.Run loadFromNoDir = Cli.run("snapshot", "load", dir.resolve("nodir/x.mig").toString());
        assertThat(loadFromNoDir.err().strip()).isEqualTo("livemig: no such directory: " + dir.resolve("nodir"));

        Cli.Run aDirectory = Cli.run("snapshot", "load", dir.toString());
        assertThat(aDirectory.status()).isEqualTo(ExitCodes.FILE);
        assertThat(aDirectory.err()).contains("is a directory");

        // Permission: root reads and writes anything, so the message is checked as the command builds it.
        assertThat(Main.describe(new AccessDeniedException("/srv/x.mig"))).isEqualTo("permission denied: /srv/x.mig");
        assertThat(Main.exitCode(new AccessDeniedException("/srv/x.mig"))).isEqualTo(ExitCodes.FILE);
        assertThat(Main.describe(new NoSuchFileException(dir.resolve("a.mig").toString()))).isEqualTo("no such file: " + dir.resolve("a.mig"));
        if (!"root".equals(System.getProperty("user.name"))) {
            Path locked = Files.createDirectory(dir.resolve("locked"));
            Files.setPosixFilePermissions(locked, java.nio.file.attribute.PosixFilePermissions.fromString("r-x------"));
            Cli.Run denied = Cli.run("snapshot", "save", locked.resolve("x.mig").toString(), "--ram", "16M");
            assertThat(denied.status()).isEqualTo(ExitCodes.FILE);
            assertThat(denied.err().strip()).isEqualTo("livemig: permission denied: " + locked);
        }
    }

    @Test
    void snapshotLoadRefusesOptionsThatDoNotApplyAndUsesThoseThatDo() throws Exception {
        Path f = dir.resolve("s.mig");
        Cli.Run save = Cli.run("snapshot", "save", f.toString(), "--ram", "16M", "--workload", "ab", "--run-ms", "100");
        assertThat(save.status()).as(save.all()).isZero();

        Cli.Run fill = Cli.run("snapshot", "load", f.toString(), "--fill", "random");
        assertThat(fill.status()).isEqualTo(ExitCodes.USAGE);
        assertThat(fill.err()).contains("--fill does not apply to snapshot load");

        Cli.Run bigger = Cli.run("snapshot", "load", f.toString(), "--ram", "2G");
        assertThat(bigger.status()).isEqualTo(ExitCodes.USAGE);
        assertThat(bigger.err()).contains("--ram 2G contradicts the saved machine (16.0 MiB, from " + f + ".check.json)");
        for (String[] wrong : new String[][] {{"--workload", "idle"}, {"--seed", "7"}, {"--vcpus", "1"}}) {
            Cli.Run r = Cli.run("snapshot", "load", f.toString(), wrong[0], wrong[1]);
            assertThat(r.status()).as(String.join(" ", wrong)).isEqualTo(ExitCodes.USAGE);
            assertThat(r.err()).contains(wrong[0] + " " + wrong[1] + " contradicts the saved machine");
        }

        // Options that agree are accepted; without the fingerprint file they say what machine it was.
        Cli.Run same = Cli.run("snapshot", "load", f.toString(), "--ram", "16M", "--verify");
        assertThat(same.status()).as(same.all()).isZero();
        assertThat(same.out()).contains("verified");
        Files.delete(SnapshotCommand.sidecar(f));
        Cli.Run described = Cli.run("snapshot", "load", f.toString(), "--ram", "16M", "--workload", "ab", "--verify");
        assertThat(described.status()).as(described.all()).isZero();
        assertThat(described.out()).contains("A-B check: ok");
        Cli.Run wrongSize = Cli.run("snapshot", "load", f.toString(), "--ram", "32M");
        assertThat(wrongSize.status()).as(wrongSize.all()).isNotZero();
        assertThat(wrongSize.all()).doesNotContain("\tat ");
    }

    @Test
    void aHugeBandwidthMigratesAndAZeroOneDoes() {
        for (String bw : new String[] {"100G", "0", "9223372036854775807"}) {
            Cli.Run r = Cli.run("demo", "--in-process", "--ram", "32M", "--max-bandwidth", bw, "--json", "--run-before-ms", "100",
                    "--timeout", "60");
            assertThat(r.status()).as(bw + ": " + r.all()).isZero();
            assertThat(r.out()).contains("\"verified\":true");
        }
    }

    @Test
    void aDemoThatTimesOutSaysWhatItSawAndWhatMayHelp() {
        Cli.Run r = Cli.run("demo", "--ram", "64M", "--workload", "random-writes:200", "--max-bandwidth", "8M", "--timeout", "3",
                "--run-before-ms", "100");
        assertThat(r.status()).as(r.all()).isEqualTo(ExitCodes.TIMEOUT);
        assertThat(r.out()).contains("migration did not converge within 3 s and was cancelled")
                .containsPattern("saw: status \\S+ after \\d+ passes, .* still to send, guest dirtying \\d+ pages/s")
                .contains("--auto-converge").contains("a higher --max-bandwidth (now 8M/s)")
                .containsPattern("(?m)^active: +\\d+% of RAM sent") // progress lines off a terminal
                .doesNotContain("-1 ms").doesNotContain("connection reset").doesNotContain("\033[");
        assertThat(r.all()).doesNotContainIgnoringCase("connection reset").doesNotContain("Exception");
    }
}
