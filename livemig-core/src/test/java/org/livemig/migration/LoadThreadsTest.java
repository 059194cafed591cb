package org.livemig.migration;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.time.Duration;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;

/** The load-thread pool started ahead of the switchover: its threads wait idle, take tasks, and end with it. */
class LoadThreadsTest {
    private static Set<Thread> loadThreads() {
        return Thread.getAllStackTraces().keySet().stream().filter(Thread::isAlive)
                .filter(t -> t.getName().startsWith(LoadThreads.THREAD_PREFIX)).collect(Collectors.toSet());
    }

    /** Names of the live load threads not in {@code before} (another test's pool may still be ending). */
    private static Set<String> newLoadThreadNames(Set<Thread> before) {
        return loadThreads().stream().filter(t -> !before.contains(t)).map(Thread::getName).collect(Collectors.toSet());
    }

    @Test
    void startedPoolRunsTasksOnItsThreadsAndEndsThemOnClose() throws Exception {
        Set<Thread> before = loadThreads();
        LoadThreads pool = new LoadThreads(2, why -> {});
        try {
            pool.start();
            pool.start(); // idempotent: still two threads
            assertThat(newLoadThreadNames(before)).containsExactlyInAnyOrder(LoadThreads.THREAD_PREFIX + 0, LoadThreads.THREAD_PREFIX + 1);
            CountDownLatch both = new CountDownLatch(2);
            Set<String> ranOn = java.util.concurrent.ConcurrentHashMap.newKeySet();
            for (int i = 0; i < 2; i++) {
                pool.submit("task " + i, quit -> {
                    ranOn.add(Thread.currentThread().getName());
                    both.countDown();
                    // Both tasks at once: each on a thread of its own, none created for it.
                    assertThat(both.await(10, TimeUnit.SECONDS)).isTrue();
                });
            }
            assertThat(pool.await()).isNull();
            assertThat(ranOn).containsExactlyInAnyOrder(LoadThreads.THREAD_PREFIX + 0, LoadThreads.THREAD_PREFIX + 1);
        } finally {
            pool.close();
        }
        await().atMost(Duration.ofSeconds(10)).until(() -> newLoadThreadNames(before).isEmpty());
        pool.start(); // closed: starts nothing
        assertThat(newLoadThreadNames(before)).isEmpty();
    }
}
