package org.livemig.memory.postcopy;

import static org.assertj.core.api.Assumptions.assumeThat;

import java.io.IOException;
import org.livemig.memory.GuestRam;

/** The contract on the kernel's write-protect mode; skipped where userfaultfd cannot write-protect. */
class UserfaultfdWriteTrackerTest extends WriteTrackerContractTest {
    @Override
    void assumeSupported() {
        PostcopyBackend.Availability a = WriteTracker.userfaultfdAvailability();
        assumeThat(a.available()).as("userfaultfd write-protect: " + a.reason()).isTrue();
    }

    @Override
    WriteTracker create(GuestRam ram) throws IOException {
        return WriteTracker.userfaultfd(ram);
    }

    @Override
    String expectedName() {
        return "userfaultfd";
    }
}
