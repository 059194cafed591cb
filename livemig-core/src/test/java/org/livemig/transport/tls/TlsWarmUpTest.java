package org.livemig.transport.tls;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** The TLS warm-up's traffic (headers and pages through MigrationFile) arrives whole, with each kind of credentials. */
class TlsWarmUpTest {

    @Test
    void aRoundOverX509MovesEveryPage() throws Exception {
        assertThat(TlsWarmUp.run(true)).isEqualTo(128L << 20);
    }

    @Test
    void aRoundOverPskMovesEveryPage() throws Exception {
        assertThat(TlsWarmUp.run(false)).isEqualTo(128L << 20);
    }
}
