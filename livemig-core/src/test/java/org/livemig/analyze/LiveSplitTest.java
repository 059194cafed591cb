package org.livemig.analyze;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/**
 * A stream read as it arrives splits each device section off at its footer before the vmdesc
 * trailer can describe it. A device's own bytes can look like that footer; what must follow a
 * footer (a section, a command, EOF and the trailer) tells the two apart.
 */
class LiveSplitTest {
    /** Where the first device section's body ("timer", section 0, in pc-16M-paused.mig) starts. */
    private static final int TIMER_BODY = 0x3a59d + 1 + 4 + 1 + 5 + 4 + 4;

    @Test
    void aFooterLookalikeInsideADeviceSectionDoesNotEndIt() throws Exception {
        byte[] s = Fixtures.bytes("pc-16M-paused.mig").clone();
        // cpu_ticks_offset := 7e 00 00 00 00 00 00 00: timer's footer, then what reads as EOF
        byte[] lookalike = {0x7E, 0, 0, 0, 0, 0, 0, 0};
        System.arraycopy(lookalike, 0, s, TIMER_BODY, lookalike.length);
        try (Analysis a = Analyzer.analyze(Fixtures.channel(s), Analyzer.Options.DEFAULT.withoutRam())) {
            assertThat(a.undecoded()).isEmpty();
            String timer = a.state().get("timer (0)").toString();
            assertThat(timer).contains("0x7e00000000000000");
        }
    }
}
