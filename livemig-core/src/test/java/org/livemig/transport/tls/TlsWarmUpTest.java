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
}
