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

    /** Starts {@code pool.await()} on a thread of its own; its result (or failure) lands in {@code result}. */
    private static Thread awaitOn(LoadThreads pool, String name, java.util.concurrent.CompletableFuture<String> result) {
        return Thread.ofPlatform().name(name).daemon(true).start(() -> {
            try {
                result.complete(pool.await());
            } catch (Throwable e) {
                result.completeExceptionally(e);
            }
        });
    }

    /** Whether {@code t} is parked in the pool's wait with nothing in hand. */
    private static boolean idleInAwait(Thread t) {
        StackTraceElement[] st = t.getStackTrace();
        boolean inAwait = false;
        for (StackTraceElement e : st) {
            if (e.getClassName().equals(LoadThreads.class.getName()) && e.getMethodName().equals("await")) {
                inAwait = true;
            }
        }
        return inAwait && t.getState() == Thread.State.TIMED_WAITING;
    }

    @Test
    void aHeldLoadKeepsTheWaiterWaitingAndStepsQueuedMeanwhileRunOnTheWaiter() throws Exception {
        LoadThreads pool = new LoadThreads(2, why -> {});
        try {
            pool.start();
            Runnable release = pool.hold();
            assertThat(pool.busy()).isTrue();
            var result = new java.util.concurrent.CompletableFuture<String>();
            Thread waiter = awaitOn(pool, "waiter", result);
            await().atMost(Duration.ofSeconds(10)).until(() -> idleInAwait(waiter));
            Set<String> ranOn = java.util.concurrent.ConcurrentHashMap.newKeySet();
            pool.submitStep("step", quit -> ranOn.add(Thread.currentThread().getName()));
            await().atMost(Duration.ofSeconds(10)).until(() -> !ranOn.isEmpty());
            assertThat(ranOn).containsExactly("waiter");
            // Still held: the waiter goes on waiting until the release.
            await().atMost(Duration.ofSeconds(10)).until(() -> idleInAwait(waiter));
            assertThat(result).isNotDone();
            release.run();
            release.run(); // once only: a second run changes nothing
            assertThat(result.get(10, TimeUnit.SECONDS)).isNull();
            assertThat(pool.busy()).isFalse();
            // With nobody waiting, a step runs on a load thread.
            var on = new java.util.concurrent.CompletableFuture<String>();
            pool.submitStep("later", quit -> on.complete(Thread.currentThread().getName()));
            assertThat(on.get(10, TimeUnit.SECONDS)).startsWith(LoadThreads.THREAD_PREFIX);
            assertThat(pool.await()).isNull();
        } finally {
            pool.close();
        }
    }

    @Test
    void aStepThatFailsOnTheWaiterEndsTheWaitWithItsMessageThoughTheLoadIsStillHeld() throws Exception {
        java.util.List<String> told = new java.util.concurrent.CopyOnWriteArrayList<>();
        LoadThreads pool = new LoadThreads(2, told::add);
        try {
            pool.start();
            pool.hold(); // never released: the failure ends the wait
            var result = new java.util.concurrent.CompletableFuture<String>();
            Thread waiter = awaitOn(pool, "waiter", result);
            await().atMost(Duration.ofSeconds(10)).until(() -> idleInAwait(waiter));
            pool.submitStep("bad packet", quit -> {
                throw new java.io.IOException("packet 3 is damaged");
            });
            assertThat(result.get(10, TimeUnit.SECONDS)).isEqualTo("packet 3 is damaged");
            assertThat(told).containsExactly("packet 3 is damaged");
            assertThat(pool.failure()).isEqualTo("packet 3 is damaged");
        } finally {
            pool.close();
        }
    }

    @Test
    void shutdownEndsTheWaitForAHeldLoad() throws Exception {
        LoadThreads pool = new LoadThreads(1, why -> {});
        try {
            pool.hold();
            var result = new java.util.concurrent.CompletableFuture<String>();
            Thread waiter = awaitOn(pool, "waiter", result);
            await().atMost(Duration.ofSeconds(10)).until(() -> idleInAwait(waiter));
            pool.shutdown();
            assertThat(result.get(10, TimeUnit.SECONDS)).isEqualTo("load threads were stopped");
        } finally {
            pool.close();
        }
    }
}
