package org.livemig.memory;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

class ThreadSchedulingTest {
    /** Runs {@code body} on a fresh thread, so that the test's own thread keeps its scheduling. */
    private static <T> T onNewThread(java.util.function.Supplier<T> body) throws Exception {
        CompletableFuture<T> f = new CompletableFuture<>();
        Thread.ofPlatform().start(() -> {
            try {
                f.complete(body.get());
            } catch (Throwable e) {
                f.completeExceptionally(e);
            }
        });
        return f.get(10, TimeUnit.SECONDS);
    }

    @Test
    void aThreadEitherRunsInFifoAfterwardsOrIsToldWhyNot() throws Exception {
        String[] result = onNewThread(() -> {
            boolean before = ThreadScheduling.isFifo();
            String why = ThreadScheduling.useFifo(5);
            return new String[] {String.valueOf(before), why, String.valueOf(ThreadScheduling.isFifo())};
        });
        assertThat(result[0]).as("a new thread starts in normal scheduling").isEqualTo("false");
        if (result[1] == null) {
            assertThat(result[2]).isEqualTo("true");
        } else {
            assertThat(result[1]).contains("sched_setscheduler(SCHED_FIFO, 5)");
            assertThat(result[2]).isEqualTo("false");
        }
        assertThat(ThreadScheduling.isFifo()).as("other threads are unchanged").isFalse();
    }

    @Test
    void prioritiesOutsideTheRangeAreRefused() {
        assertThatThrownBy(() -> ThreadScheduling.useFifo(0)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> ThreadScheduling.useFifo(100)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("1 to 99");
    }
}
