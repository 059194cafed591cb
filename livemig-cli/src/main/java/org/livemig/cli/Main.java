package org.livemig.cli;

import picocli.CommandLine.Command;
import picocli.CommandLine;

/** The {@code livemig} command. With no subcommand it runs {@code demo}. */
@Command(name = "livemig", mixinStandardHelpOptions = true, version = "livemig 0.1.0",
        description = "Live migration for the JVM, speaking QEMU's stream format and QMP.",
        subcommands = {
                DemoCommand.class,
                RunCommand.class,
                SnapshotCommand.class,
                BenchCommand.class,
                AnalyzeCommand.class,
                RelayCommand.class,
                QmpClientCommand.class,
                AotTrainCommand.class,
                CommandLine.HelpCommand.class,
        })
public final class Main implements Runnable {
    @Override
    public void run() {
        CommandLine.usage(this, System.out);
    }

    public static void main(String[] args) {
        CommandLine cl = new CommandLine(new Main());
        // Errors are one clear line, not a stack trace.
        cl.setExecutionExceptionHandler((e, cmd, parsed) -> {
            cmd.getErr().println("livemig: " + (e.getMessage() == null ? e.toString() : e.getMessage()));
            return 1;
        });
        // The default job, as the README says: `livemig` alone runs the demo.
        System.exit(cl.execute(args.length == 0 ? new String[] {"demo"} : args));
    }
}
