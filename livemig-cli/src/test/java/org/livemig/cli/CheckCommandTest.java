package org.livemig.cli;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** {@code livemig check} on this machine, and with items forced missing. */
class CheckCommandTest {
    @Test
    void onThisMachineEveryItemIsReportedAndJavaIsThere() {
        Cli.Run r = Cli.run("check");
        assertThat(r.status()).as(r.all()).isZero();
        for (String item : CheckCommand.ITEMS) {
            assertThat(r.out()).containsPattern("(?m)^(ok|missing|MISSING) +" + item + " ");
        }
        assertThat(r.out()).containsPattern("(?m)^ok +java +Java " + Runtime.version().feature())
                .contains("everything needed is here");
        // what the host really allows agrees with the checks the engine makes itself
        boolean uffd = org.livemig.memory.postcopy.PostcopyBackend.userfaultfdAvailability().available();
        assertThat(r.out()).containsPattern("(?m)^" + (uffd ? "ok" : "missing") + " +userfaultfd ");
        boolean qemu = org.livemig.testing.HostTools.onPath("qemu-system-x86_64") != null;
        assertThat(r.out()).containsPattern("(?m)^" + (qemu ? "ok" : "missing") + " +qemu ");
    }

    @Test
    void aMissingNeededItemFailsWithWhatToDo() {
        Cli.Run r = Cli.run("check", "--x-pretend-missing", "java");
        assertThat(r.status()).isEqualTo(ExitCodes.FAILED);
        assertThat(r.out()).containsPattern("(?m)^MISSING +java ").contains("-> install Java 25")
                .contains("missing what is needed: java");
    }

    @Test
    void aMissingOptionalItemOnlyInformsUnlessRequired() {
        Cli.Run optional = Cli.run("check", "--x-pretend-missing", "userfaultfd,qemu");
        assertThat(optional.status()).as(optional.out()).isZero();
        assertThat(optional.out()).containsPattern("(?m)^missing +userfaultfd ").contains("vm.unprivileged_userfaultfd")
                .containsPattern("(?m)^missing +qemu ").contains("apt-get install qemu-system-x86");

        Cli.Run required = Cli.run("check", "--require", "qemu", "--x-pretend-missing", "qemu");
        assertThat(required.status()).isEqualTo(ExitCodes.FAILED);
        assertThat(required.out()).containsPattern("(?m)^MISSING +qemu ").contains("missing what is needed: qemu");

        assertThat(Cli.run("check", "--require", "warp-drive").status()).isEqualTo(ExitCodes.USAGE);
    }
}
