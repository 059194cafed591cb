package org.livemig.cli;

import java.io.PrintStream;
import java.net.ServerSocket;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;
import org.livemig.monitor.QmpClient;
import org.livemig.monitor.QmpJson;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * {@code livemig demo --colo}: a COLO pair of two {@code livemig run} processes driven over QMP as
 * QEMU's COLO is driven: x-colo on both, the initial migration ends in status colo, checkpoints
 * run every x-checkpoint-delay ms; after N of them one side loses its peer (an out-of-band yank)
 * and takes over with x-colo-lost-heartbeat; the survivor is verified (it runs, and its guest's
 * memory holds the A-B property). Prints the checkpoints' count, sizes and pauses, and the time
 * from the heartbeat command to the survivor's guest running.
 */
final class ColoDemo {
    private final PrintStream out;
    private final String survivorName;
    private final long delayMillis;
    private final long checkpoints;
    private final long maxBandwidth;
    private final int multifd;
    private final Duration timeout;

    ColoDemo(PrintStream out, String survivorName, long delayMillis, long checkpoints, long maxBandwidth, int multifd,
            Duration timeout) {
        if (!survivorName.equals("primary") && !survivorName.equals("secondary")) {
            throw new IllegalArgumentException("--colo-failover must be primary or secondary, not '" + survivorName + "'");
        }
        this.out = out;
        this.survivorName = survivorName;
        this.delayMillis = delayMillis;
        this.checkpoints = checkpoints;
        this.maxBandwidth = maxBandwidth;
        this.multifd = multifd;
        this.timeout = timeout;
    }

    /** Runs the pair; returns 0 when the survivor verified. */
    int run(MachineOptions primaryOptions, MachineOptions secondaryOptions, Path dir, java.util.List<String> primaryArgs,
            java.util.List<String> secondaryArgs) throws Exception {
        try (QmpSide primary = QmpSide.start(primaryOptions, false, dir, "primary", primaryArgs);
             QmpSide secondary = QmpSide.start(secondaryOptions, true, dir, "secondary", secondaryArgs)) {
            Map<String, Boolean> caps = new LinkedHashMap<>();
            caps.put("x-colo", true);
            caps.put("events", true);
            if (multifd > 0) {
                caps.put("multifd", true);
            }
            for (QmpSide s : new QmpSide[] {primary, secondary}) {
                s.setCapabilities(caps);
                ObjectNode p = QmpClient.args("x-checkpoint-delay", delayMillis, "max-bandwidth", maxBandwidth);
                if (multifd > 0) {
                    p.put("multifd-channels", multifd);
                }
                s.setParameters(p);
            }
            String uri = "tcp:127.0.0.1:" + freePort();
            secondary.migrateIncoming(uri);
            long t0 = System.nanoTime();
            primary.migrate(uri);
            JsonNode q = awaitStatus(primary, "colo");
            long until = System.nanoTime() + timeout.toNanos();
            // The secondary enters COLO once it has loaded the last of the initial migration.
            while (!secondary.qmp().execute("query-colo-status").path("mode").asString().equals("secondary")
                    && System.nanoTime() < until) {
                Thread.sleep(5);
            }
            out.printf("COLO: initial migration done in %d ms (%s); primary %s, secondary %s%n",
                    (System.nanoTime() - t0) / 1_000_000, q.path("status").asString(),
                    primary.qmp().execute("query-colo-status").path("mode").asString(),
                    secondary.qmp().execute("query-colo-status").path("mode").asString());
            long deadline = System.nanoTime() + timeout.toNanos();
            long seen = -1;
            while (true) {
                JsonNode c = primary.queryMigrate().path("x-colo");
                long n = c.path("checkpoints").asLong();
                if (n != seen) {
                    seen = n;
                    out.printf("checkpoint %d: %d KiB, guest paused %.1f ms%n", n, c.path("last-checkpoint-size").asLong() >> 10,
                            c.path("last-checkpoint-pause-ms").asDouble());
                }
                if (n >= checkpoints) {
                    out.printf("%d checkpoints, guest pause p50 %.1f ms, p99 %.1f ms, %d KiB sent in checkpoints%n", n,
                            c.path("pause-p50-ms").asDouble(), c.path("pause-p99-ms").asDouble(),
                            c.path("transferred").asLong() >> 10);
                    break;
                }
                if (System.nanoTime() > deadline) {
                    out.printf("timed out after %d checkpoints of %d%n", n, checkpoints);
                    return 1;
                }
                Thread.sleep(Math.min(100, Math.max(5, delayMillis / 4)));
            }
            QmpSide survivor = survivorName.equals("primary") ? primary : secondary;
            survivor.executeOob("yank", QmpClient.args("instances",
                    QmpJson.NODES.arrayNode().add(QmpClient.args("type", "migration"))));
            long hb = System.nanoTime();
            survivor.qmp().execute("x-colo-lost-heartbeat");
            while (!survivor.status().equals("running")) {
                if (System.nanoTime() > deadline) {
                    out.println("timed out waiting for the " + survivorName + " to run after the failover");
                    return 1;
                }
                Thread.sleep(1);
            }
            double failoverMs = (System.nanoTime() - hb) / 1e6;
            JsonNode colo = survivor.qmp().execute("query-colo-status");
            out.printf("failover: the %s runs alone %.1f ms after x-colo-lost-heartbeat (query-colo-status %s)%n",
                    survivorName, failoverMs, colo);
            awaitStatus(survivor, "completed");
            Thread.sleep(200); // the survivor's guest goes on for a moment before it is checked
            survivor.stop();
            ObjectNode f = survivor.fingerprint();
            boolean ok = f.path("ab-check").isMissingNode() || f.path("ab-check").path("ok").asBoolean();
            out.printf("survivor verified: %s (A-B property %s)%n", ok, f.path("ab-check"));
            return ok ? 0 : 1;
        }
    }

    private JsonNode awaitStatus(QmpSide side, String want) throws Exception {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            JsonNode q = side.queryMigrate();
            String st = q.path("status").asString();
            if (st.equals(want)) {
                return q;
            }
            if (st.equals("failed") || st.equals("cancelled") || System.nanoTime() > deadline) {
                throw new IllegalStateException("waiting for status " + want + ", the migration is " + q);
            }
            Thread.sleep(20);
        }
    }

    private static int freePort() throws Exception {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }
}
