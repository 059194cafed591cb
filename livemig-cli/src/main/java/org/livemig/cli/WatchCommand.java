package org.livemig.cli;

import java.io.IOException;
import java.io.PrintWriter;
import java.time.Duration;
import java.util.Set;
import java.util.concurrent.Callable;
import org.livemig.monitor.QmpAddress;
import org.livemig.monitor.QmpClient;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;
import tools.jackson.databind.JsonNode;

/**
 * {@code livemig watch SOCKET}: a live view of the migration of the machine behind any QMP
 * monitor, livemig's or a real QEMU's, from {@code query-migrate} alone (as {@code virsh
 * domjobinfo} refreshed, or {@code virsh migrate --verbose}): status, a bar on the RAM sent,
 * throughput, dirty rate, passes, expected downtime and postcopy requests, until the migration
 * ends; then a summary. On a terminal it redraws one line; otherwise it prints a line every
 * {@code --interval} seconds and at each status change.
 */
@Command(name = "watch", mixinStandardHelpOptions = true,
        description = {"Show the migration of the machine behind a QMP monitor (livemig's or QEMU's) as it runs, until it ends,"
                + " then a summary. Waits for a migration to start if none runs yet. Off a terminal (or with --plain) it prints"
                + " progress lines instead of redrawing one.", "  livemig watch /tmp/src.sock"},
        exitCodeListHeading = ExitCodes.HEADING, footer = "",
        exitCodeList = {"0:the migration completed", "1:the migration failed or was cancelled", ExitCodes.USAGE_TEXT,
                "4:the monitor could not be reached, or closed the connection before the migration ended",
                "5:no migration started, or it did not end, within --timeout"})
final class WatchCommand implements Callable<Integer> {
    private static final Set<String> ENDED = Set.of("completed", "failed", "cancelled");

    @Parameters(index = "0", paramLabel = "SOCKET", description = "The monitor: a unix socket path, unix:PATH or tcp:HOST:PORT.")
    String socket;

    @Option(names = "--interval", defaultValue = "0.5", paramLabel = "SECONDS",
            description = "How often query-migrate is asked (default: ${DEFAULT-VALUE}); lines off a terminal come every"
                    + " 4 intervals and at each status change.")
    double intervalSeconds;

    @Option(names = "--timeout", defaultValue = "0", paramLabel = "SECONDS",
            description = "Give up after this long (default: 0, never).")
    long timeoutSeconds;

    @Option(names = "--plain", description = "Plain progress lines even on a terminal.")
    boolean plain;

    @Spec
    CommandSpec spec;

    /** Whether to redraw one line in place (a test sets it). */
    Boolean terminal;

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        if (!(intervalSeconds > 0 && intervalSeconds <= 60)) {
            throw new CommandLine.ParameterException(spec.commandLine(), "--interval must be between 0 and 60 seconds");
        }
        QmpAddress address;
        try {
            address = QmpAddress.parse(socket);
        } catch (IllegalArgumentException e) {
            throw new CommandLine.ParameterException(spec.commandLine(), e.getMessage());
        }
        boolean redraw = !plain && (terminal != null ? terminal : Main.onTerminal());
        long interval = (long) (intervalSeconds * 1000);
        long deadline = timeoutSeconds > 0 ? System.nanoTime() + timeoutSeconds * 1_000_000_000L : Long.MAX_VALUE;
        JsonNode last = null;
        try (QmpClient qmp = QmpClient.connect(address, Duration.ofSeconds(30))) {
            qmp.negotiate();
            String seen = null;
            int polls = 0;
            while (true) {
                JsonNode q;
                try {
                    q = qmp.execute("query-migrate");
                } catch (IOException e) {
                    endLine(out, redraw, last);
                    err.println("livemig watch: the monitor closed the connection" + (last == null ? ""
                            : " (last status: " + last.path("status").asString() + ")") + ": " + e.getMessage());
                    err.flush();
                    return ExitCodes.UNREACHABLE;
                }
                String status = q.path("status").asString("none");
                if (seen == null) {
                    if (status.equals("none")) {
                        out.println("no migration yet; waiting for one to start");
                    }
                    out.flush();
                }
                if (!status.equals("none")) {
                    last = q;
                }
                if (ENDED.contains(status)) {
                    endLine(out, redraw, last);
                    summary(out, q);
                    out.flush();
                    return status.equals("completed") ? ExitCodes.OK : ExitCodes.FAILED;
                }
                if (!status.equals("none")) {
                    if (redraw) {
                        out.print("\r" + bar(q) + " " + progressLine(q) + "\033[K");
                        out.flush();
                    } else if (!status.equals(seen) || polls % 4 == 0) {
                        out.println(progressLine(q));
                        out.flush();
                    }
                }
                seen = status;
                polls++;
                if (System.nanoTime() > deadline) {
                    endLine(out, redraw, last);
                    err.println("livemig watch: " + (last == null ? "no migration started" : "the migration did not end")
                            + " within " + timeoutSeconds + " s");
                    err.flush();
                    return ExitCodes.TIMEOUT;
                }
                Thread.sleep(interval); // polling query-migrate, as virsh domjobinfo does; events are optional in QEMU
            }
        } catch (IOException e) {
            err.println("livemig watch: cannot reach the monitor at " + socket + ": " + e.getMessage());
            err.flush();
            return ExitCodes.UNREACHABLE;
        }
    }

    private static void endLine(PrintWriter out, boolean redraw, JsonNode last) {
        if (redraw && last != null) {
            out.println();
        }
    }

    /** A 30-column bar on the RAM sent (total less remaining). */
    static String bar(JsonNode q) {
        JsonNode ram = q.path("ram");
        long total = ram.path("total").asLong();
        long remaining = ram.path("remaining").asLong();
        int width = 30;
        int filled = total <= 0 ? 0 : (int) Math.round(width * (double) Math.max(0, total - remaining) / total);
        return "[" + "#".repeat(filled) + ".".repeat(width - filled) + "]";
    }

    /**
     * One line of what a query-migrate answer says of a running migration: status, the share of
     * RAM sent, what is left, throughput, dirty rate, passes, expected downtime and (in postcopy)
     * the page requests.
     */
    static String progressLine(JsonNode q) {
        JsonNode ram = q.path("ram");
        String status = q.path("status").asString("none");
        long total = ram.path("total").asLong();
        long remaining = ram.path("remaining").asLong();
        StringBuilder b = new StringBuilder(status);
        if (total > 0) {
            b.append(String.format(": %3d%% of RAM sent (%s of %s left)", Math.round(100.0 * Math.max(0, total - remaining) / total),
                    Sizes.human(remaining), Sizes.human(total)));
        }
        b.append(String.format(", %.0f Mbit/s, dirty syncs %d, dirty %d pages/s", ram.path("mbps").asDouble(),
                ram.path("dirty-sync-count").asLong(), ram.path("dirty-pages-rate").asLong()));
        if (q.has("expected-downtime")) {
            b.append(", expected downtime ").append(q.path("expected-downtime").asLong()).append(" ms");
        }
        if (status.startsWith("postcopy") || ram.path("postcopy-requests").asLong() > 0) {
            b.append(", postcopy requests ").append(ram.path("postcopy-requests").asLong());
        }
        return b.toString();
    }

    /** The lines printed when the migration has ended. */
    static void summary(PrintWriter out, JsonNode q) {
        JsonNode ram = q.path("ram");
        String status = q.path("status").asString();
        out.println("migration " + status + (q.has("error-desc") ? ": " + q.path("error-desc").asString() : ""));
        if (q.has("total-time")) {
            long total = q.path("total-time").asLong();
            long bytes = ram.path("transferred").asLong();
            out.printf("  total time %d ms, setup %d ms, %s%n", total, q.path("setup-time").asLong(),
                    q.has("downtime") ? "downtime " + q.path("downtime").asLong() + " ms" : "no downtime reported");
            // dirty-sync-count counts the sync at setup too (QEMU's and livemig's): each later one ended a pass.
            out.printf("  %s sent (%.0f MB/s), %d passes%n", Sizes.human(bytes), total > 0 ? bytes / 1e3 / total : 0.0,
                    Math.max(0, ram.path("dirty-sync-count").asLong() - 1));
        }
        if (!ram.isMissingNode()) {
            out.printf("  RAM %s: %d normal pages, %d zero pages%s%n", Sizes.human(ram.path("total").asLong()),
                    ram.path("normal").asLong(), ram.path("duplicate").asLong(),
                    ram.path("postcopy-requests").asLong() > 0 ? ", " + ram.path("postcopy-requests").asLong() + " postcopy page requests" : "");
        }
    }
}
