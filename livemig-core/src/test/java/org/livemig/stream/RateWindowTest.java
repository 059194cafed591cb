package org.livemig.stream;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.nio.channels.Channels;
import org.junit.jupiter.api.Test;

/** The rate limiter's window budget at the edges of QMP's size range. */
class RateWindowTest {
    @Test
    void theWindowAllowanceNeverOverflowsNorDropsToNothing() {
        assertThat(MigrationFile.windowAllowance(1)).isEqualTo(1);
        assertThat(MigrationFile.windowAllowance(10)).isEqualTo(1);
        assertThat(MigrationFile.windowAllowance(128L << 20)).isEqualTo((128L << 20) / 10);
        // 100 GiB/s times the window's 10^8 ns overflowed a long, and the budget stayed 0 for ever.
        assertThat(MigrationFile.windowAllowance(107374182400L)).isEqualTo(10737418240L);
        assertThat(MigrationFile.windowAllowance(Long.MAX_VALUE)).isEqualTo(Long.MAX_VALUE / 10);
    }

    @Test
    void aHugeLimitLeavesABudgetAndAnUnsignedOneIsNoLimit() {
        MigrationFile f = MigrationFile.forWriting(Channels.newChannel(new ByteArrayOutputStream()));
        f.setRateLimit(107374182400L);
        assertThat(f.rateLimitExceeded()).isFalse();
        assertThat(f.rateBudgetBytes()).isEqualTo(10737418240L);
        f.setRateLimit(-1); // 2^64-1 read unsigned, as QMP sends it
        assertThat(f.rateBudgetBytes()).isEqualTo(Long.MAX_VALUE);
        f.setRateLimit(1);
        assertThat(f.rateBudgetBytes()).isEqualTo(1);
    }
}
