package org.livemig.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code livemig snapshot save --live} and {@code --mapped-ram [--channels N] [--direct-io]}: each
 * file loads back with {@code snapshot load --verify} (A-B check, devices of the moment the save
 * started; RAM too when the guest was stopped) and reads with {@code analyze}; options that do
 * not go together are refused naming the option.
 */
class SnapshotCommandTest {
    @TempDir
    Path dir;

    @Test
    void aLiveSaveLoadsBackWithTheAbPropertyAndTheDevicesOfItsStart() {
        Path f = dir.resolve("live.mig");
        Cli.Run save = Cli.run("snapshot", "save", f.toString(), "--ram", "32M", "--workload", "ab", "--run-ms", "200", "--live");
        assertThat(save.status()).as(save.all()).isZero();
        assertThat(save.out()).contains("live: the guest was stopped").contains("write tracking:");
        Cli.Run load = Cli.run("snapshot", "load", f.toString(), "--verify");
        assertThat(load.status()).as(load.all()).isZero();
        assertThat(load.out()).contains("A-B check: ok").contains("RAM: saved live").contains("devices: all equal")
                .contains("verified");
        assertThat(load.out()).doesNotContain("NOT verified");
    }

    @Test
    void aMappedRamSaveOverChannelsLoadsBackAndAnalyzes() {
        Path f = dir.resolve("mapped.mig");
        Cli.Run save = Cli.run("snapshot", "save", f.toString(), "--ram", "32M", "--workload", "ab", "--run-ms", "100",
                "--mapped-ram", "--channels", "2");
        assertThat(save.status()).as(save.all()).isZero();
        Cli.Run load = Cli.run("snapshot", "load", f.toString(), "--channels", "2", "--verify");
        assertThat(load.status()).as(load.all()).isZero();
        assertThat(load.out()).contains("RAM: equal to the saved machine's").contains("A-B check: ok");
        Cli.Run single = Cli.run("snapshot", "load", f.toString(), "--verify");
        assertThat(single.status()).as(single.all()).isZero();
        Cli.Run analyze = Cli.run("analyze", f.toString());
        assertThat(analyze.status()).as(analyze.all()).isZero();
        assertThat(analyze.out()).contains("mapped-ram").contains("pages in file");
    }

    @Test
    void aLiveMappedRamSaveLoadsBack() {
        Path f = dir.resolve("live-mapped.mig");
        Cli.Run save = Cli.run("snapshot", "save", f.toString(), "--ram", "32M", "--workload", "ab", "--run-ms", "100",
                "--live", "--mapped-ram", "--write-tracking", "checked");
        assertThat(save.status()).as(save.all()).isZero();
        assertThat(save.out()).contains("write tracking: checked");
        Cli.Run load = Cli.run("snapshot", "load", f.toString(), "--verify");
        assertThat(load.status()).as(load.all()).isZero();
        assertThat(load.out()).contains("A-B check: ok").contains("verified");
    }

    @Test
    void optionsThatDoNotGoTogetherAreRefused() {
        String f = dir.resolve("x.mig").toString();
        String[][] cases = {
                {"--channels", "2"}, {"--channels needs --mapped-ram"},
                {"--mapped-ram", "--direct-io"}, {"--direct-io needs --mapped-ram and --channels"},
                {"--live", "--mapped-ram", "--channels", "2"}, {"--live does not go with --channels"},
                {"--mapped-ram", "--channels", "0"}, {"--channels must be 1 to 255, not 0"},
                {"--write-tracking", "checked"}, {"--write-tracking applies to --live saves only"},
                {"--live", "--write-tracking", "fast"}, {"--write-tracking must be auto, checked or userfaultfd, not 'fast'"},
        };
        for (int i = 0; i < cases.length; i += 2) {
            String[] args = new String[cases[i].length + 5];
            System.arraycopy(new String[] {"snapshot", "save", f, "--ram", "16M"}, 0, args, 0, 5);
            System.arraycopy(cases[i], 0, args, 5, cases[i].length);
            Cli.Run r = Cli.run(args);
            assertThat(r.status()).as(String.join(" ", cases[i])).isEqualTo(ExitCodes.USAGE);
            assertThat(r.err()).as(String.join(" ", cases[i])).contains(cases[i + 1][0]);
        }
        Cli.Run load = Cli.run("snapshot", "load", f, "--direct-io");
        assertThat(load.status()).isEqualTo(ExitCodes.USAGE);
        assertThat(load.err()).contains("--direct-io needs --channels");
    }
}
