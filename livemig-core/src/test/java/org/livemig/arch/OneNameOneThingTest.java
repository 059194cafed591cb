package org.livemig.arch;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;
import org.livemig.memory.RamBlock;
import org.livemig.stream.QemuStream;

/**
 * Facts that two layers must each state because the package rules keep them apart: this pins
 * them to one value.
 */
class OneNameOneThingTest {
    @Test
    void theGuestPageIsTheStreamsTargetPage() {
        assertThat(RamBlock.PAGE_SIZE).isEqualTo(QemuStream.TARGET_PAGE_SIZE);
        assertThat(RamBlock.PAGE_BITS).isEqualTo(QemuStream.TARGET_PAGE_BITS);
    }
}
