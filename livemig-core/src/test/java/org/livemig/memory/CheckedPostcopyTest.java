package org.livemig.memory;

import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

class CheckedPostcopyTest extends PostcopyBackendContractTest {
    @Override
    void assumeSupported() {
        // portable
    }

    @Override
    PostcopyBackend create(GuestRam ram) {
        return PostcopyBackend.checked(ram);
    }

    @Override
    String expectedName() {
        return "checked";
    }

    @Test
    void accessorsAreUncheckedUntilListening() {
        // Before LISTEN the destination loads precopy pages into RAM freely: nothing blocks.
        ram.writeLong(block, 0, 1);
        org.assertj.core.api.Assertions.assertThat(ram.readLong(block, 0)).isEqualTo(1);
        assertThat(backend.receivedMap(block).isReceived(0)).isFalse();
    }
}
