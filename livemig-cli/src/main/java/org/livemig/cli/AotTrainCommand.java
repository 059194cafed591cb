package org.livemig.cli;

import java.util.concurrent.Callable;
import org.livemig.migration.WarmUp;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * {@code livemig x-aot-train}: the training run the launcher records Java 25's AOT cache from
 * (classes loaded and linked, method profiles). Small in-process migrations through the paths a
 * machine process takes in a real one: precopy to convergence, then postcopy with demand paging
 * and the preempt channel; then a whole startup warm-up ({@link WarmUp}, with an accelerator), so
 * that every class it loads (multifd, device state, both postcopy backends) is in the cache and
 * loaded at startup, not halfway through a process's life, where loading a second subclass throws
 * away compiled code that had inlined the first.
 */
@Command(name = "x-aot-train", hidden = true, description = "Training run for the launcher's AOT cache.")
final class AotTrainCommand implements Callable<Integer> {
    private static final long WARM_UP_MILLIS = 120_000;

    @Override
    public Integer call() {
        CommandLine cl = new CommandLine(new Main());
        int precopy = cl.execute("demo", "--in-process", "--ram", "128M", "--workload", "ab:25000", "--fill", "random",
                "--run-before-ms", "200");
        int postcopy = cl.execute("demo", "--in-process", "--ram", "64M", "--workload", "random-writes:64", "--fill", "random",
                "--max-bandwidth", "32M", "--postcopy", "--run-before-ms", "200");
        WarmUp warm = WarmUp.start(WarmUp.DEFAULT_ROUNDS, true);
        try {
            if (!warm.await(WARM_UP_MILLIS) || warm.failure() != null) {
                System.err.println("x-aot-train: the warm-up did not complete: " + warm.failure());
                return 1;
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return 1;
        }
        return precopy == 0 && postcopy == 0 ? 0 : 1;
    }
}
