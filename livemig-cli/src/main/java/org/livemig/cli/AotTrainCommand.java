package org.livemig.cli;

import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * {@code livemig x-aot-train}: the training run the launcher records Java 25's AOT cache from
 * (classes loaded and linked, method profiles). Small in-process migrations through the paths a
 * machine process takes in a real one: precopy to convergence, then postcopy with demand paging
 * and the preempt channel.
 */
@Command(name = "x-aot-train", hidden = true, description = "Training run for the launcher's AOT cache.")
final class AotTrainCommand implements Callable<Integer> {
    @Override
    public Integer call() {
        CommandLine cl = new CommandLine(new Main());
        int precopy = cl.execute("demo", "--in-process", "--ram", "128M", "--workload", "ab:25000", "--fill", "random",
                "--run-before-ms", "200");
        int postcopy = cl.execute("demo", "--in-process", "--ram", "64M", "--workload", "random-writes:64", "--fill", "random",
                "--max-bandwidth", "32M", "--postcopy", "--run-before-ms", "200");
        return precopy == 0 && postcopy == 0 ? 0 : 1;
    }
}
