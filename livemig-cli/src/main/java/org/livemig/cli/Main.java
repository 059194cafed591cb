package org.livemig.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The {@code livemig} command. With no subcommand it runs {@code demo}. */
@Command(name = "livemig", mixinStandardHelpOptions = true, version = "livemig 0.1.0",
        description = "Live migration for the JVM, speaking QEMU's stream format and QMP.",
        subcommands = {CommandLine.HelpCommand.class, AnalyzeCommand.class})
public final class Main implements Runnable {
    @Override
    public void run() {
        CommandLine.usage(this, System.out);
    }

    public static void main(String[] args) {
        System.exit(new CommandLine(new Main()).execute(args));
    }
}
