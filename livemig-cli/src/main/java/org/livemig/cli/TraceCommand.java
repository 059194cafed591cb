package org.livemig.cli;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.Callable;
import jdk.jfr.consumer.RecordedEvent;
import jdk.jfr.consumer.RecordingFile;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/**
 * {@code livemig trace FILE.jfr}: reads a recording made with {@code run --trace} (or any JFR file
 * with livemig's events) and prints a timeline and a summary: the statuses each side went
 * through, the passes, the switchover's downtime by phase, the postcopy page requests as a
 * histogram, multifd packets per channel, COLO checkpoints, and QMP commands; so that nobody
 * needs {@code jfr print} to read one.
 */
@Command(name = "trace", mixinStandardHelpOptions = true,
        description = {"Print a timeline and a summary of a migration trace recorded with `livemig run --trace FILE.jfr`."},
        exitCodeListHeading = ExitCodes.HEADING, footer = "",
        exitCodeList = {"0:printed", "1:the file holds no livemig events", ExitCodes.USAGE_TEXT,
                "3:the file is missing or not a JFR recording"})
public final class TraceCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Parameters(index = "0", paramLabel = "FILE.jfr", description = "The recording.")
    Path file;

    @Option(names = "--summary-only", description = "Leave the timeline out.")
    boolean summaryOnly;

    @Option(names = "--qmp", description = "Show every QMP command in the timeline (only their summary by default).")
    boolean qmpInTimeline;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        List<RecordedEvent> events = new ArrayList<>();
        if (!java.nio.file.Files.isRegularFile(file)) {
            err.println("livemig trace: no such file: " + file);
            return ExitCodes.FILE;
        }
        try {
            for (RecordedEvent e : RecordingFile.readAllEvents(file)) {
                if (e.getEventType().getName().startsWith("livemig.")) {
                    events.add(e);
                }
            }
        } catch (IOException e) {
            err.println("livemig trace: " + file + ": not a Flight Recorder file (" + e.getMessage() + ")");
            return ExitCodes.FILE;
        }
        if (events.isEmpty()) {
            err.println("livemig trace: " + file + " holds no livemig events (record with `livemig run --trace FILE.jfr`)");
            return 1;
        }
        events.sort((a, b) -> a.getStartTime().compareTo(b.getStartTime()));
        Instant t0 = events.get(0).getStartTime();
        if (!summaryOnly) {
            out.println("timeline (ms from the first event):");
            for (RecordedEvent e : events) {
                String line = describe(e);
                if (line != null && (qmpInTimeline || !e.getEventType().getName().equals("livemig.QmpCommand"))) {
                    out.printf("%10.3f  %s%n", Duration.between(t0, e.getStartTime()).toNanos() / 1e6, line);
                }
            }
            out.println();
        }
        summary(out, events);
        out.flush();
        return 0;
    }

    /** One timeline line, or null for events only the summary shows. */
    private static String describe(RecordedEvent e) {
        return switch (e.getEventType().getName()) {
            case "livemig.MigrationStatus" -> e.getString("side") + " " + e.getString("from") + " -> " + e.getString("to");
            case "livemig.Pass" -> String.format("pass %d ended: %s sent in %.1f ms (%s/s), %d pages dirtied, %s pending",
                    e.getLong("pass"), Sizes.human(e.getLong("bytesSent")), e.getLong("passNanos") / 1e6,
                    Sizes.human(e.getLong("bandwidth")), e.getLong("pagesDirtied"), Sizes.human(e.getLong("pendingBytes")));
            case "livemig.Switchover" -> String.format("switchover: downtime %.1f ms", e.getLong("downtimeNanos") / 1e6);
            case "livemig.ColoCheckpoint" -> String.format("COLO %s checkpoint %d: %s, guest paused %.1f ms",
                    e.getString("side"), e.getLong("number"), Sizes.human(e.getLong("bytes")), e.getLong("pause") / 1e6);
            case "livemig.QmpCommand" -> String.format("QMP %s%s: %.3f ms (waited %.3f ms)%s", e.getString("command"),
                    e.getBoolean("oob") ? " (oob)" : "", e.getDuration().toNanos() / 1e6, e.getLong("wait") / 1e6,
                    e.getBoolean("error") ? " error" : "");
            default -> null; // page requests and multifd packets: too many for a timeline, see the summary
        };
    }

    private static void summary(PrintWriter out, List<RecordedEvent> events) {
        out.println("summary:");
        Map<String, List<String>> statuses = new TreeMap<>();
        long passes = 0;
        long passBytes = 0;
        List<Long> requests = new ArrayList<>();
        Map<Integer, long[]> multifd = new TreeMap<>();
        Map<String, List<Long>> colo = new TreeMap<>();
        Map<String, List<Long>> qmp = new TreeMap<>();
        long qmpMaxWait = 0;
        for (RecordedEvent e : events) {
            switch (e.getEventType().getName()) {
                case "livemig.MigrationStatus" -> statuses.computeIfAbsent(e.getString("side"), k -> new ArrayList<>())
                        .add(e.getString("to"));
                case "livemig.Pass" -> {
                    passes++;
                    passBytes += e.getLong("bytesSent");
                }
                case "livemig.Switchover" -> out.printf("  switchover: downtime %.1f ms = stop %.1f + devices %.1f + RAM %.1f"
                                + " + rest %.1f + acknowledgement %.1f ms (%s pending, estimate %s/s)%n",
                        e.getLong("downtimeNanos") / 1e6, e.getLong("stopNanos") / 1e6, e.getLong("devicesNanos") / 1e6,
                        e.getLong("ramNanos") / 1e6, e.getLong("flushNanos") / 1e6, e.getLong("ackNanos") / 1e6,
                        Sizes.human(e.getLong("pendingBytes")), Sizes.human(e.getLong("bandwidth")));
                case "livemig.PageRequest" -> requests.add(e.getLong("latency"));
                case "livemig.MultifdBatch" -> {
                    long[] c = multifd.computeIfAbsent(e.getInt("channel"), k -> new long[3]);
                    c[0]++;
                    c[1] += e.getInt("pages");
                    c[2] += e.getLong("bytes");
                }
                case "livemig.ColoCheckpoint" -> colo.computeIfAbsent(e.getString("side"), k -> new ArrayList<>())
                        .add(e.getLong("pause"));
                case "livemig.QmpCommand" -> {
                    qmp.computeIfAbsent(e.getString("command"), k -> new ArrayList<>()).add(e.getDuration().toNanos());
                    qmpMaxWait = Math.max(qmpMaxWait, e.getLong("wait"));
                }
                default -> { }
            }
        }
        statuses.forEach((side, list) -> out.println("  " + side + ": " + String.join(" -> ", list)));
        if (passes > 0) {
            out.printf("  precopy passes: %d, %s sent in them%n", passes, Sizes.human(passBytes));
        }
        if (!requests.isEmpty()) {
            long[] l = requests.stream().mapToLong(Long::longValue).sorted().toArray();
            out.printf("  postcopy page requests: %d, fault to placed p50 %s, p90 %s, p99 %s, max %s%n", l.length,
                    micros(q(l, 0.5)), micros(q(l, 0.9)), micros(q(l, 0.99)), micros(l[l.length - 1]));
            out.println("  histogram (fault to placed):");
            long[] bounds = {100_000, 250_000, 500_000, 1_000_000, 2_000_000, 5_000_000, 10_000_000, 50_000_000, Long.MAX_VALUE};
            int from = 0;
            long lower = 0;
            for (long b : bounds) {
                int to = from;
                while (to < l.length && l[to] < b) {
                    to++;
                }
                if (to > from) {
                    out.printf("    %9s - %-9s %6d %s%n", micros(lower), b == Long.MAX_VALUE ? "" : micros(b), to - from,
                            "#".repeat((int) Math.max(1, Math.round(40.0 * (to - from) / l.length))));
                }
                from = to;
                lower = b;
            }
        }
        multifd.forEach((ch, c) -> out.printf("  multifd channel %d: %d packets, %d pages, %s%n", ch, c[0], c[1],
                Sizes.human(c[2])));
        colo.forEach((side, list) -> {
            long[] l = list.stream().mapToLong(Long::longValue).sorted().toArray();
            out.printf("  COLO %s: %d checkpoints, guest paused p50 %.1f ms, p99 %.1f ms, max %.1f ms%n", side, l.length,
                    q(l, 0.5) / 1e6, q(l, 0.99) / 1e6, l[l.length - 1] / 1e6);
        });
        if (!qmp.isEmpty()) {
            long total = qmp.values().stream().mapToLong(List::size).sum();
            out.printf("  QMP: %d commands, longest wait for the main loop %.3f ms%n", total, qmpMaxWait / 1e6);
            qmp.forEach((name, list) -> {
                long[] l = list.stream().mapToLong(Long::longValue).sorted().toArray();
                out.printf("    %-28s %5d  p50 %.3f ms  max %.3f ms%n", name, l.length, q(l, 0.5) / 1e6, l[l.length - 1] / 1e6);
            });
        }
    }

    private static long q(long[] sorted, double q) {
        return sorted[Math.max(0, Math.min(sorted.length - 1, (int) Math.ceil(q * sorted.length) - 1))];
    }

    private static String micros(long nanos) {
        return nanos >= 1_000_000 ? String.format("%.1f ms", nanos / 1e6) : String.format("%d us", nanos / 1000);
    }

    static String[] eventNames() {
        return Arrays.copyOf(TraceRecording.EVENTS, TraceRecording.EVENTS.length);
    }
}
