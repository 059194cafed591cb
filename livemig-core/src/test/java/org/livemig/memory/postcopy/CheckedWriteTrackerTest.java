package org.livemig.memory.postcopy;

import org.livemig.memory.GuestRam;

class CheckedWriteTrackerTest extends WriteTrackerContractTest {
    @Override
    void assumeSupported() {
        // portable
    }

    @Override
    WriteTracker create(GuestRam ram) {
        return WriteTracker.checked(ram);
    }

    @Override
    String expectedName() {
        return "checked";
    }
}
