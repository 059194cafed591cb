package org.livemig.memory.postcopy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import java.time.Duration;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.RepeatedTest;
import org.junit.jupiter.api.RepetitionInfo;
import org.junit.jupiter.api.Test;

class ReceivedMapTest {

    @Test
    void marksAndCounts() {
        ReceivedMap m = new ReceivedMap(130);
        assertThat(m.pages()).isEqualTo(130);
        assertThat(m.isReceived(5)).isFalse();
        assertThat(m.markReceived(5)).isTrue();
        assertThat(m.markReceived(5)).isFalse();
        assertThat(m.isReceived(5)).isTrue();
        assertThat(m.markReceived(60, 10)).isEqualTo(10);
        assertThat(m.markReceived(65, 10)).isEqualTo(5);
        assertThat(m.receivedCount()).isEqualTo(16);
        assertThat(m.missingCount()).isEqualTo(114);
        assertThat(m.nextMissing(0)).isEqualTo(0);
        assertThat(m.nextMissing(5)).isEqualTo(6);
        assertThat(m.nextMissing(60)).isEqualTo(75);
        assertThat(m.nextReceived(6)).isEqualTo(60);
        assertThat(m.nextReceived(75)).isEqualTo(-1);
        assertThat(m.clear(64, 66)).isEqualTo(11);
        assertThat(m.nextMissing(60)).isEqualTo(64);
        assertThat(m.isComplete()).isFalse();
        m.markReceived(0, 130);
        assertThat(m.isComplete()).isTrue();
        assertThat(m.nextMissing(0)).isEqualTo(-1);
        assertThatThrownBy(() -> m.isReceived(130)).isInstanceOf(IndexOutOfBoundsException.class);
        assertThatThrownBy(() -> m.markReceived(-1)).isInstanceOf(IndexOutOfBoundsException.class);
        assertThatThrownBy(() -> m.markReceived(129, 2)).isInstanceOf(IndexOutOfBoundsException.class);
    }

    @Test
    void wordsAreTheRecvBitmapLayout() {
        ReceivedMap m = new ReceivedMap(100);
        m.markReceived(0);
        m.markReceived(63);
        m.markReceived(64);
        m.markReceived(99);
        long[] w = m.toWords();
        assertThat(w).containsExactly(1L | (1L << 63), 1L | (1L << 35));
        assertThat(ReceivedMap.bitmapBytes(100)).isEqualTo(16);
        assertThat(ReceivedMap.bitmapBytes(64)).isEqualTo(8);
        assertThat(ReceivedMap.bitmapBytes(0)).isEqualTo(0);
        // QEMU: round_up(div_round_up(pages, 8), 8)
        for (long pages : new long[] {1, 7, 8, 63, 64, 65, 4096, 4097}) {
            assertThat(ReceivedMap.bitmapBytes(pages)).isEqualTo((((pages + 7) / 8) + 7) / 8 * 8);
        }
    }

    /** Random operations against a BitSet model. */
    @RepeatedTest(50)
    void behavesLikeABitSet(RepetitionInfo rep) {
        long seed = 0x4EC0 + rep.getCurrentRepetition();
        SplittableRandom r = new SplittableRandom(seed);
        int pages = 1 + r.nextInt(700);
        ReceivedMap m = new ReceivedMap(pages);
        BitSet model = new BitSet(pages);
        for (int i = 0; i < 300; i++) {
            int a = r.nextInt(pages);
            int n = r.nextInt(pages - a + 1);
            switch (r.nextInt(4)) {
                case 0 -> {
                    assertThat(m.markReceived(a)).as("seed %d", seed).isEqualTo(!model.get(a));
                    model.set(a);
                }
                case 1 -> {
                    long newly = n - model.get(a, a + n).cardinality();
                    assertThat(m.markReceived(a, n)).as("seed %d", seed).isEqualTo(newly);
                    model.set(a, a + n);
                }
                case 2 -> {
                    assertThat(m.clear(a, n)).as("seed %d", seed).isEqualTo(model.get(a, a + n).cardinality());
                    model.clear(a, a + n);
                }
                default -> {
                    int from = r.nextInt(pages + 2);
                    int wantMissing = model.nextClearBit(from);
                    assertThat(m.nextMissing(from)).as("seed %d", seed).isEqualTo(wantMissing >= pages ? -1 : wantMissing);
                    int wantReceived = from >= pages ? -1 : model.nextSetBit(from);
                    assertThat(m.nextReceived(from)).as("seed %d", seed).isEqualTo(wantReceived);
                }
            }
            long[] w = m.toWords();
            assertThat(w).as("seed %d", seed).isEqualTo(java.util.Arrays.copyOf(model.toLongArray(), w.length));
            assertThat(m.receivedCount()).as("seed %d", seed).isEqualTo(model.cardinality());
        }
    }

    @Test
    void awaitTimesOutWhenNothingArrives() throws InterruptedException {
        ReceivedMap m = new ReceivedMap(8);
        assertThat(m.awaitReceived(3, 20, TimeUnit.MILLISECONDS)).isFalse();
        assertThat(m.waitingThreads()).isZero();
        m.markReceived(3);
        assertThat(m.awaitReceived(3, 0, TimeUnit.MILLISECONDS)).isTrue();
    }

    @Test
    void markingWakesEveryWaiterOfThatPageOnly() throws Exception {
        ReceivedMap m = new ReceivedMap(16);
        List<CompletableFuture<Boolean>> onFive = new ArrayList<>();
        CountDownLatch started = new CountDownLatch(5);
        for (int i = 0; i < 4; i++) {
            onFive.add(waiter(m, 5, started));
        }
        CompletableFuture<Boolean> onSix = waiter(m, 6, started);
        started.await(10, TimeUnit.SECONDS);
        await().atMost(Duration.ofSeconds(10)).until(() -> m.waitingThreads() == 5);
        m.markReceived(5);
        for (CompletableFuture<Boolean> f : onFive) {
            assertThat(f.get(10, TimeUnit.SECONDS)).isTrue();
        }
        assertThat(onSix).isNotDone();
        m.markReceived(4, 4);
        assertThat(onSix.get(10, TimeUnit.SECONDS)).isTrue();
    }

    @Test
    void wakeAllReleasesWaitersWithThePageStillMissing() throws Exception {
        ReceivedMap m = new ReceivedMap(4);
        CountDownLatch started = new CountDownLatch(1);
        CompletableFuture<Boolean> f = waiter(m, 2, started);
        started.await(10, TimeUnit.SECONDS);
        await().atMost(Duration.ofSeconds(10)).until(() -> m.waitingThreads() == 1);
        m.wakeAllWaiters();
        assertThat(f.get(10, TimeUnit.SECONDS)).isFalse();
    }

    /** Racing markers and waiters: no waiter misses its page (each would otherwise time out after 60 s). */
    @RepeatedTest(5)
    void noLostWakeups(RepetitionInfo rep) throws Exception {
        long seed = 0x1057 + rep.getCurrentRepetition();
        int pages = 2000;
        ReceivedMap m = new ReceivedMap(pages);
        List<Thread> threads = new ArrayList<>();
        List<Throwable> failures = java.util.Collections.synchronizedList(new ArrayList<>());
        for (int t = 0; t < 4; t++) {
            SplittableRandom r = new SplittableRandom(seed * 31 + t);
            threads.add(Thread.ofPlatform().name("waiter-" + t).start(() -> {
                try {
                    for (int i = 0; i < 500; i++) {
                        long p = r.nextInt(pages);
                        if (!m.awaitReceived(p, 60, TimeUnit.SECONDS)) {
                            failures.add(new AssertionError("seed " + seed + ": page " + p + " never seen"));
                            return;
                        }
                    }
                } catch (InterruptedException e) {
                    failures.add(e);
                }
            }));
        }
        SplittableRandom r = new SplittableRandom(seed);
        int[] order = java.util.stream.IntStream.range(0, pages).toArray();
        for (int i = pages - 1; i > 0; i--) {
            int j = r.nextInt(i + 1);
            int x = order[i];
            order[i] = order[j];
            order[j] = x;
        }
        for (int p : order) {
            m.markReceived(p);
        }
        for (Thread t : threads) {
            t.join(TimeUnit.SECONDS.toMillis(90));
            assertThat(t.isAlive()).as("seed %d", seed).isFalse();
        }
        assertThat(failures).as("seed %d", seed).isEmpty();
    }

    private static CompletableFuture<Boolean> waiter(ReceivedMap m, long page, CountDownLatch started) {
        CompletableFuture<Boolean> f = new CompletableFuture<>();
        Thread.ofPlatform().daemon().name("waiter-" + page).start(() -> {
            started.countDown();
            try {
                f.complete(m.awaitReceived(page, 30, TimeUnit.SECONDS));
            } catch (Throwable t) {
                f.completeExceptionally(t);
            }
        });
        return f;
    }
}
