package org.livemig.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

/** Off a terminal, a long save or load prints a progress line every two seconds; a short one prints none. */
class ProgressDisplayTest {
    @Test
    void aLongTaskPrintsLinesWithItsProgress() {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        PrintStream out = new PrintStream(bytes, true, StandardCharsets.UTF_8);
        AtomicLong done = new AtomicLong(512L << 20);
        try (ProgressDisplay p = ProgressDisplay.start("saving", 1L << 30, done::get, false, out)) {
            await().atMost(Duration.ofSeconds(10)).until(() -> bytes.toString(StandardCharsets.UTF_8).contains("(50%)"));
            done.set(1L << 30);
            await().atMost(Duration.ofSeconds(10)).until(() -> bytes.toString(StandardCharsets.UTF_8).contains("(100%)"));
        }
        assertThat(bytes.toString(StandardCharsets.UTF_8)).contains("saving: 512.0 MiB of 1.00 GiB (50%)");
    }

    @Test
    void aShortTaskPrintsNothing() {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        PrintStream out = new PrintStream(bytes, true, StandardCharsets.UTF_8);
        try (ProgressDisplay p = ProgressDisplay.start("loading", 1L << 20, () -> 1L << 20, false, out)) {
            assertThat(p).isNotNull();
        }
        assertThat(bytes.toString(StandardCharsets.UTF_8)).isEmpty();
    }
}
