package org.livemig.transport;

import static org.awaitility.Awaitility.await;

import java.time.Duration;
import java.util.concurrent.Callable;
import java.util.concurrent.FutureTask;

/** Named test threads and bounded waits on them. */
final class TestThreads {
    static final Duration BOUND = Duration.ofSeconds(20);

    private TestThreads() {}

    /** A started platform thread running {@code task}, and its result. */
    record Running<T>(Thread thread, FutureTask<T> result) {
        /** Waits (bounded) until the thread is inside a native call: blocked in, or entering, a system call. */
        Running<T> awaitInNative() {
            await().atMost(BOUND).until(() -> {
                StackTraceElement[] st = thread.getStackTrace();
                return result.isDone() || (st.length > 0 && st[0].isNativeMethod());
            });
            return this;
        }

        /** Waits (bounded) for the task to end and returns what it threw, or null. */
        Throwable awaitFailure() throws InterruptedException {
            await().atMost(BOUND).until(result::isDone);
            try {
                result.get();
                return null;
            } catch (java.util.concurrent.ExecutionException e) {
                return e.getCause();
            }
        }

        T awaitResult() throws Exception {
            await().atMost(BOUND).until(result::isDone);
            return result.get();
        }
    }

    static <T> Running<T> start(String name, Callable<T> task) {
        FutureTask<T> f = new FutureTask<>(task);
        Thread t = Thread.ofPlatform().name(name).daemon().start(f);
        return new Running<>(t, f);
    }
}
