package org.livemig.transport.tls;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/**
 * The TLS warm-up's traffic (headers and pages through MigrationFile) arrives whole, with each
 * kind of credentials and key it warms up for (both ends with certificates, as verify-peer).
 */
class TlsWarmUpTest {

    @Test
    void aRoundOverX509WithRsaKeysMovesEveryPage() throws Exception {
        assertThat(TlsWarmUp.round(TlsWarmUp.x509Sides("RSA", 2048), 64L << 20)).isEqualTo(64L << 20);
    }

    @Test
    void aRoundOverX509WithEcKeysMovesEveryPage() throws Exception {
        assertThat(TlsWarmUp.round(TlsWarmUp.x509Sides("EC", 0), 64L << 20)).isEqualTo(64L << 20);
    }

    @Test
    void aRoundOverPskMovesEveryPage() throws Exception {
        assertThat(TlsWarmUp.round(TlsWarmUp.pskSides(), 64L << 20)).isEqualTo(64L << 20);
    }

    @Test
    void theCompilersThreadsAreFoundAndTheWaitForThemIsBounded() throws Exception {
        org.junit.jupiter.api.Assumptions.assumeTrue(java.nio.file.Files.isDirectory(java.nio.file.Path.of("/proc/self/task")));
        TlsWarmUp.round(TlsWarmUp.pskSides(), 16L << 20); // something compiled
        assertThat(TlsWarmUp.compilerTicks()).isPositive();
        long t0 = System.nanoTime();
        TlsWarmUp.awaitCompilersQuiet();
        assertThat(java.time.Duration.ofNanos(System.nanoTime() - t0)).isLessThan(java.time.Duration.ofSeconds(5));
    }
}
