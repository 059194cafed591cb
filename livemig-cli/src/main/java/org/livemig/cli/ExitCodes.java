package org.livemig.cli;

/**
 * The exit statuses of every {@code livemig} command. Each means one thing, whichever command
 * returns it; a command's {@code --help} lists the ones it can return. A {@code livemig run}
 * killed by a signal exits as the shell reports it, 128 + the signal's number.
 */
final class ExitCodes {
    private ExitCodes() {}

    static final int OK = 0;
    /** The command ran and what it was asked to do did not succeed. */
    static final int FAILED = 1;
    /** picocli's usage status. */
    static final int USAGE = 2;
    static final int FILE = 3;
    static final int UNREACHABLE = 4;
    static final int TIMEOUT = 5;
    static final int NOT_DECODED = 6;

    static final String HEADING = "%nExit status:%n";
    static final String OK_TEXT = "0:done";
    static final String USAGE_TEXT = "2:bad command line (unknown option, bad value, options that do not go together)";
    static final String FILE_TEXT = "3:a file or stream could not be read or written, or is not what it should be"
            + " (no such file or directory, permission, malformed stream)";
    static final String UNREACHABLE_TEXT = "4:a monitor or migration peer could not be reached";
    static final String TIMEOUT_TEXT = "5:gave up waiting (--timeout)";
    static final String NOT_DECODED_TEXT = "6:the migration was relayed whole, but livemig could not decode all of it";
}
