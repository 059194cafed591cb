package org.livemig.cli;

import java.io.PrintStream;
import java.util.function.LongSupplier;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;

/**
 * The progress of a long save or load, as the demo shows a migration's: on a terminal a
 * progress bar (progressbar, as the demo's), elsewhere a line every two seconds (none for work
 * that ends sooner). A thread of its own ({@code livemig-progress}) polls {@code done} against
 * {@code total} until {@link #close}.
 */
final class ProgressDisplay implements AutoCloseable {
    private static final long LINE_NANOS = 2_000_000_000L;
    private static final long POLL_MILLIS = 100;

    private final Thread thread;
    private volatile boolean closed;

    private ProgressDisplay(String task, long total, LongSupplier done, boolean bar, PrintStream out) {
        this.thread = Thread.ofPlatform().name("livemig-progress").daemon(true)
                .start(() -> show(task, total, done, bar, out));
    }

    /** Starts showing {@code task}'s progress: {@code done} of {@code total} bytes. */
    static ProgressDisplay start(String task, long total, LongSupplier done) {
        return start(task, total, done, Main.onTerminal(), System.out);
    }

    /** As above, as a bar or as lines on {@code out} (tests). */
    static ProgressDisplay start(String task, long total, LongSupplier done, boolean bar, PrintStream out) {
        return new ProgressDisplay(task, Math.max(1, total), done, bar, out);
    }

    private void show(String task, long total, LongSupplier done, boolean bar, PrintStream out) {
        long start = System.nanoTime();
        long nextLine = start + LINE_NANOS;
        ProgressBar pb = bar ? new ProgressBarBuilder().setTaskName(task).setInitialMax(total)
                .setStyle(ProgressBarStyle.ASCII).setUnit(" MiB", 1 << 20).showSpeed().build() : null;
        try {
            while (!closed) {
                long d = Math.min(total, Math.max(0, done.getAsLong()));
                if (pb != null) {
                    pb.stepTo(d);
                } else if (System.nanoTime() >= nextLine) {
                    double secs = (System.nanoTime() - start) / 1e9;
                    out.printf("%s: %s of %s (%d%%), %.1f s%n", task, Sizes.human(d), Sizes.human(total),
                            d * 100 / total, secs);
                    out.flush();
                    nextLine += LINE_NANOS;
                }
                try {
                    Thread.sleep(POLL_MILLIS); // a display's refresh interval, not a wait for a condition
                } catch (InterruptedException e) {
                    return;
                }
            }
            if (pb != null) {
                pb.stepTo(Math.min(total, Math.max(0, done.getAsLong())));
            }
        } finally {
            if (pb != null) {
                pb.close();
            }
        }
    }

    @Override
    public void close() {
        closed = true;
        try {
            thread.join(2_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
