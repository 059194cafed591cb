package org.livemig.cli;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;
import org.livemig.machine.Machine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.ObjectMapper;
import tools.jackson.databind.node.ObjectNode;

/**
 * {@code livemig demo}: migrates a running machine live and proves its memory and device state
 * arrived. By default the source and destination are two {@code livemig run} processes driven
 * over QMP, exactly as a user drives QEMU; {@code --in-process} runs both machines in this JVM.
 */
@Command(name = "demo", mixinStandardHelpOptions = true,
        description = "Migrate a running machine live and verify what arrived.",
        exitCodeListHeading = ExitCodes.HEADING, footer = "",
        exitCodeList = {"0:the migration completed and the destination verified",
                "1:the migration failed, what arrived did not verify, or a machine process died (how: in the message)",
                ExitCodes.USAGE_TEXT + "; also a --ram this host cannot back",
                "5:the migration did not converge within --timeout (cancelled; the hint says what may help)"})
public final class DemoCommand implements Callable<Integer> {
    private static final ObjectMapper JSON = new ObjectMapper();

    @Mixin
    MachineOptions machine = new MachineOptions();

    @Option(names = "--in-process", description = "Run source and destination in this JVM.")
    boolean inProcess;

    @Option(names = "--transport", description = "tcp | unix (default: ${DEFAULT-VALUE}).", defaultValue = "tcp")
    String transport;

    @Option(names = "--max-bandwidth", description = "Bytes/s, e.g. 1G (0: unlimited; default: ${DEFAULT-VALUE}).",
            defaultValue = "0")
    String maxBandwidth;

    @Option(names = "--downtime-limit", description = "Milliseconds (default: ${DEFAULT-VALUE}).", defaultValue = "300")
    long downtimeLimit;

    @Option(names = "--auto-converge", description = "Throttle the vCPUs when the guest dirties memory too fast.")
    boolean autoConverge;

    @Option(names = "--run-before-ms", description = "How long the guest runs before the migration starts (default: ${DEFAULT-VALUE}).",
            defaultValue = "500")
    long runBefore;

    @Option(names = "--timeout", description = "Give up after this many seconds (default: ${DEFAULT-VALUE}).", defaultValue = "300")
    long timeoutSeconds;

    @Option(names = "--postcopy", description = "Switch to postcopy after the first precopy pass: the guest moves first and pulls its pages.")
    boolean postcopy;

    @Option(names = "--postcopy-backend", defaultValue = "auto",
            description = "Destination's demand paging: auto | checked | userfaultfd (default: ${DEFAULT-VALUE}).")
    String postcopyBackend;

    @Option(names = "--postcopy-pause", description = {"With --postcopy: once postcopy runs, break its channel with migrate-pause,",
            "then recover it on a new address (migrate-recover, migrate resume=true), as after a network failure."})
    boolean postcopyPause;

    @Option(names = "--multifd", paramLabel = "N", defaultValue = "0",
            description = "Send pages over N multifd channels besides the main one (capability multifd, multifd-channels N; 0: off, the default).")
    int multifd;

    @Option(names = "--switchover-ack", description = {"Capability switchover-ack (with return-path) on both sides: the source switches",
            "over only once the destination's devices have loaded their initial data (QEMU 8.1)."})
    boolean switchoverAck;

    @Option(names = "--trace", paramLabel = "DIR",
            description = "Record each process's trace events (as `run --trace`) into DIR/<side>.jfr; read them with `livemig trace`.")
    Path traceDir;

    /** {@code --trace FILE} for the side called {@code name}, or nothing. */
    private java.util.List<String> traceArgs(String name) throws java.io.IOException {
        if (traceDir == null) {
            return java.util.List.of();
        }
        Files.createDirectories(traceDir);
        return java.util.List.of("--trace", traceDir.resolve(name + ".jfr").toAbsolutePath().toString());
    }

    /** After the run: where the traces are. */
    private void sayWhereTracesAre(String... sides) {
        if (traceDir != null) {
            for (String side : sides) {
                System.err.println("livemig demo: " + side + "'s trace: livemig trace " + traceDir.resolve(side + ".jfr"));
            }
        }
    }

    @Option(names = "--json", description = "Print one JSON object: source and destination query-migrate, verified, checks.")
    boolean json;

    @Option(names = "--colo", description = {"COLO: after the initial migration the two processes go on as a primary and a",
            "secondary with checkpoints; then one side fails over and is verified."})
    boolean colo;

    @Option(names = "--colo-failover", paramLabel = "SIDE", defaultValue = "secondary",
            description = "With --colo: which side survives, primary | secondary (default: ${DEFAULT-VALUE}).")
    String coloFailover;

    @Option(names = "--checkpoint-delay", paramLabel = "MS", defaultValue = "200",
            description = "With --colo: x-checkpoint-delay, ms between checkpoints (default: ${DEFAULT-VALUE}).")
    long checkpointDelay;

    @Option(names = "--checkpoints", paramLabel = "N", defaultValue = "5",
            description = "With --colo: checkpoints before the failover (default: ${DEFAULT-VALUE}).")
    long checkpoints;

    @Override
    public Integer call() throws Exception {
        if (colo) {
            return runColo();
        }
        if (!transport.equals("tcp") && !transport.equals("unix")) {
            throw new IllegalArgumentException("--transport must be tcp or unix, not '" + transport + "'");
        }
        Sizes.parse(maxBandwidth);
        machine.requireHostMemory(2); // a source and a destination
        Machine.Config src = machine.configUnchecked("source");
        Machine.Config dst = src.withName("destination").withFill(Machine.Fill.ZERO).withSeed(src.seed() + 7919);
        Path tmp = Files.createTempDirectory("livemig-demo");
        // A postcopy destination runs its guest as soon as it has the device state, so that its
        // vCPUs fault on missing pages; a precopy one waits (-S) to be verified before it runs.
        boolean autostart = postcopy;
        java.util.List<String> dstArgs = new java.util.ArrayList<>(java.util.List.of("--postcopy-backend", postcopyBackend));
        if (!autostart) {
            dstArgs.add("-S");
        }
        if (inProcess && traceDir != null) {
            throw new IllegalArgumentException("--trace records the two processes: not with --in-process");
        }
        dstArgs.addAll(traceArgs("destination"));
        if (!json) {
            System.out.printf("starting the source and the destination (%s, %s of RAM each; a machine allocates and fills its RAM first)%n",
                    inProcess ? "in this JVM" : "two `livemig run` processes", Sizes.human(src.ramSize()));
            System.out.flush();
        }
        try (DemoSide source = inProcess ? new InProcessSide(src, false, true, "auto") : QmpSide.start(machine, false, tmp, "source", traceArgs("source"));
             DemoSide destination = inProcess ? new InProcessSide(dst, true, autostart, postcopyBackend)
                     : QmpSide.start(destinationOptions(), true, tmp, "destination", dstArgs)) {
            return run(source, destination, tmp);
        } finally {
            sayWhereTracesAre("source", "destination");
            try (var s = Files.list(tmp)) {
                s.forEach(p -> p.toFile().delete());
            }
            Files.deleteIfExists(tmp);
        }
    }

    /** {@code --colo}: a COLO pair of two processes, a failover, the survivor verified. */
    private int runColo() throws Exception {
        if (inProcess || postcopy) {
            throw new IllegalArgumentException("--colo runs two livemig run processes, and not with --postcopy");
        }
        Path tmp = Files.createTempDirectory("livemig-demo");
        try {
            MachineOptions secondary = destinationOptions();
            return new ColoDemo(System.out, coloFailover, checkpointDelay, checkpoints, Sizes.parse(maxBandwidth), multifd,
                    java.time.Duration.ofSeconds(timeoutSeconds)).run(machine, secondary, tmp, traceArgs("primary"),
                    traceArgs("secondary"));
        } finally {
            sayWhereTracesAre("primary", "secondary");
            try (var s = Files.list(tmp)) {
                s.forEach(p -> p.toFile().delete());
            }
            Files.deleteIfExists(tmp);
        }
    }

    private MachineOptions destinationOptions() {
        MachineOptions d = new MachineOptions();
        d.ram = machine.ram;
        d.vcpus = machine.vcpus;
        d.workload = machine.workload;
        d.fill = "zero";
        d.blobSize = machine.blobSize;
        d.seed = machine.seed + 7919;
        d.devices = new java.util.ArrayList<>(machine.devices);
        return d;
    }

    private int run(DemoSide source, DemoSide destination, Path tmp) throws Exception {
        String listen = switch (transport) {
            case "tcp" -> "tcp:127.0.0.1:" + (inProcess ? 0 : freePort());
            case "unix" -> "unix:" + tmp.resolve("migration.sock");
            default -> throw new IllegalArgumentException("--transport must be tcp or unix, not '" + transport + "'");
        };
        Map<String, Boolean> caps = new LinkedHashMap<>();
        caps.put("events", true);
        caps.put("auto-converge", autoConverge);
        caps.put("postcopy-ram", postcopy);
        Map<String, Boolean> dstCaps = new LinkedHashMap<>(Map.of("events", true));
        if (postcopy) {
            dstCaps.put("postcopy-ram", true);
        }
        if (multifd > 0) {
            // As with QEMU, both sides need the capability and the same channel count.
            caps.put("multifd", true);
            dstCaps.put("multifd", true);
            ObjectNode channels = JSON.createObjectNode().put("multifd-channels", multifd);
            destination.setParameters(channels);
        }
        if (switchoverAck) {
            for (Map<String, Boolean> c : java.util.List.of(caps, dstCaps)) {
                c.put("return-path", true);
                c.put("switchover-ack", true);
            }
        }
        source.setCapabilities(caps);
        destination.setCapabilities(dstCaps);
        ObjectNode params = JSON.createObjectNode();
        params.put("max-bandwidth", Sizes.parse(maxBandwidth));
        params.put("downtime-limit", downtimeLimit);
        if (multifd > 0) {
            params.put("multifd-channels", multifd);
        }
        source.setParameters(params);

        String uri = destination.migrateIncoming(listen);
        Thread.sleep(runBefore); // let the guest run and dirty memory before the migration starts
        source.migrate(uri);
        if (postcopy) {
            // As the help says: the switch follows the end of the first precopy pass (its
            // MIGRATION_PASS event), not a poll that may come before the pass or after another.
            if (!source.awaitFirstPass(java.time.Duration.ofSeconds(timeoutSeconds))) {
                throw new java.util.concurrent.TimeoutException("the first precopy pass did not end within " + timeoutSeconds
                        + " s; try a higher --max-bandwidth or a longer --timeout");
            }
            source.startPostcopy();
            if (postcopyPause) {
                pauseAndRecover(source, destination, tmp);
            }
        }

        ObjectNode last = waitForEnd(source);
        if (timedOut) {
            return timedOut(last);
        }
        String status = last.path("status").asString();
        ObjectNode dstInfo = waitForDestination(destination, status);

        Map<String, Object> checks = new LinkedHashMap<>();
        boolean verified = false;
        if (postcopy && "completed".equals(status) && "completed".equals(dstInfo.path("status").asString())) {
            verified = verifyPostcopy(source, destination, checks);
        } else if ("completed".equals(status) && "completed".equals(dstInfo.path("status").asString())) {
            ObjectNode fs = source.fingerprint();
            ObjectNode fd = destination.fingerprint();
            boolean ramOk = fs.get("ram").equals(fd.get("ram"));
            boolean devOk = fs.get("devices").equals(fd.get("devices"));
            JsonNode ab = fd.get("ab-check");
            boolean abOk = ab == null || ab.get("ok").asBoolean();
            checks.put("ram-equal", ramOk);
            checks.put("devices-equal", devOk);
            if (ab != null) {
                checks.put("ab-check", ab.get("ok").asBoolean());
                checks.put("ab-detail", ab.get("detail").asString());
            }
            if (!devOk) {
                checks.put("source-devices", fs.get("devices"));
                checks.put("destination-devices", fd.get("devices"));
            }
            checks.put("source-run-state", source.status());
            destination.cont();
            checks.put("destination-run-state", destination.status());
            verified = ramOk && devOk && abOk && "running".equals(destination.status());
        } else {
            checks.put("error", last.path("error-desc").asString(dstInfo.path("error-desc").asString("")));
        }

        if (json) {
            ObjectNode out = JSON.createObjectNode();
            out.set("source", last);
            out.set("destination", dstInfo);
            out.put("verified", verified);
            out.set("checks", JSON.valueToTree(checks));
            System.out.println(JSON.writeValueAsString(out));
        } else {
            printSummary(last, verified, checks);
        }
        return "completed".equals(status) && verified ? 0 : 1;
    }

    /**
     * A postcopy destination's guest has run since the switch, so its RAM and devices moved on.
     * What must hold: every page it has not written since it started equals the source's page at
     * the switch, and an A-B guest's pattern is intact.
     */
    private boolean verifyPostcopy(DemoSide source, DemoSide destination, Map<String, Object> checks) throws Exception {
        checks.put("destination-ran-during-postcopy", destination.status().equals("running"));
        if (postcopyPause) {
            checks.put("postcopy-paused-and-recovered", recovered);
        }
        destination.stop();
        ObjectNode fs = source.fingerprint(true);
        ObjectNode fd = destination.fingerprint(true);
        long compared = 0;
        long differing = 0;
        long writtenHere = 0;
        for (var it = fs.get("page-hashes").properties().iterator(); it.hasNext(); ) {
            var e = it.next();
            String hs = e.getValue().asString();
            String hd = fd.get("page-hashes").path(e.getKey()).asString("");
            java.util.BitSet written = java.util.BitSet.valueOf(java.util.HexFormat.of()
                    .parseHex(fd.path("written-here").path(e.getKey()).asString("")));
            for (int p = 0; p * 16 < hs.length(); p++) {
                if (written.get(p)) {
                    writtenHere++;
                    continue;
                }
                compared++;
                if (hd.length() < (p + 1) * 16 || !hs.regionMatches(p * 16, hd, p * 16, 16)) {
                    differing++;
                }
            }
        }
        checks.put("pages-compared", compared);
        checks.put("pages-written-by-destination-guest", writtenHere);
        checks.put("pages-differing", differing);
        JsonNode ab = fd.get("ab-check");
        boolean abOk = ab == null || ab.get("ok").asBoolean();
        if (ab != null) {
            checks.put("ab-check", ab.get("ok").asBoolean());
            checks.put("ab-detail", ab.get("detail").asString());
        }
        destination.cont();
        checks.put("destination-run-state", destination.status());
        return differing == 0 && compared > 0 && abOk && "running".equals(destination.status()) && (!postcopyPause || recovered);
    }

    /**
     * Breaks the postcopy channel once both sides run postcopy (migrate-pause on the source),
     * waits for both to pause, and recovers on a new address: migrate-recover on the
     * destination, migrate with resume=true on the source.
     */
    private void pauseAndRecover(DemoSide source, DemoSide destination, Path tmp) throws Exception {
        long deadline = System.nanoTime() + timeoutSeconds * 1_000_000_000L;
        while (!(status(source).equals("postcopy-active") && status(destination).equals("postcopy-active"))) {
            if (status(source).equals("completed") || status(source).equals("failed") || System.nanoTime() > deadline) {
                throw new IllegalStateException("postcopy never ran on both sides to be paused (source "
                        + status(source) + ", destination " + status(destination) + ")");
            }
            Thread.sleep(10); // polling query-migrate, as a QMP client does
        }
        source.pausePostcopy();
        while (!(status(source).equals("postcopy-paused") && status(destination).equals("postcopy-paused"))) {
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("postcopy did not pause on both sides (source " + status(source)
                        + ", destination " + status(destination) + ")");
            }
            Thread.sleep(10);
        }
        String listen = switch (transport) {
            case "unix" -> "unix:" + tmp.resolve("recover.sock");
            default -> "tcp:127.0.0.1:" + (inProcess ? 0 : freePort());
        };
        if (!json) {
            System.out.println("postcopy paused on both sides; recovering on " + listen);
        }
        source.resume(destination.recover(listen));
        recovered = true;
    }

    private boolean recovered;

    private static String status(DemoSide side) throws Exception {
        return side.queryMigrate().path("status").asString();
    }

    /** A loopback port free right now, for a child destination to listen on. */
    private static int freePort() throws java.io.IOException {
        try (java.net.ServerSocket s = new java.net.ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }

    /** Set when {@link #waitForEnd} gave up at {@code --timeout} and cancelled the migration. */
    private boolean timedOut;

    /** Seconds between two progress lines when the output is not a terminal. */
    private static final long PROGRESS_LINE_NANOS = 2_000_000_000L;

    /**
     * Polls the source's query-migrate until the migration ends or {@code --timeout} passes (then
     * cancels it and sets {@link #timedOut}). Shows a progress bar on a terminal, and a progress
     * line every two seconds otherwise (not with --json).
     */
    private ObjectNode waitForEnd(DemoSide source) throws Exception {
        long deadline = System.nanoTime() + timeoutSeconds * 1_000_000_000L;
        boolean bar = !json && Main.onTerminal();
        boolean lines = !json && !bar;
        long nextLine = System.nanoTime() + PROGRESS_LINE_NANOS;
        ProgressBar pb = bar ? new ProgressBarBuilder().setTaskName("migrating").setInitialMax(1)
                .setStyle(ProgressBarStyle.ASCII).setUnit(" MiB", 1 << 20).showSpeed().build() : null;
        try {
            while (true) {
                ObjectNode q = source.queryMigrate();
                String s = q.path("status").asString();
                if (pb != null && q.has("ram")) {
                    JsonNode ram = q.get("ram");
                    pb.maxHint(Math.max(1, ram.path("total").asLong()));
                    long done = ram.path("total").asLong() - ram.path("remaining").asLong();
                    pb.stepTo(Math.max(0, done));
                    pb.setExtraMessage(String.format(" sent %s, pass %d, dirty %d pages/s, expected downtime %d ms",
                            Sizes.human(ram.path("transferred").asLong()), ram.path("dirty-sync-count").asLong(),
                            ram.path("dirty-pages-rate").asLong(), q.path("expected-downtime").asLong(0)));
                }
                if (s.equals("completed") || s.equals("failed") || s.equals("cancelled")) {
                    return q;
                }
                if (lines && System.nanoTime() >= nextLine) {
                    System.out.println(WatchCommand.progressLine(q));
                    System.out.flush();
                    nextLine += PROGRESS_LINE_NANOS;
                }
                if (System.nanoTime() > deadline) {
                    timedOut = true;
                    source.cancel();
                    return q; // what it saw last, before the cancel
                }
                Thread.sleep(100); // polling interval of query-migrate, as a QMP client polls
            }
        } finally {
            if (pb != null) {
                pb.close();
            }
        }
    }

    /**
     * The migration did not end within --timeout and was cancelled: says so with what it saw
     * and what would help. The destination is not asked (it may have exited on the cancel).
     */
    private int timedOut(ObjectNode last) {
        JsonNode ram = last.path("ram");
        // QEMU's dirty-sync-count counts the sync at setup too: each later one ended a pass.
        long passes = Math.max(0, ram.path("dirty-sync-count").asLong() - 1);
        long dirtyPages = ram.path("dirty-pages-rate").asLong();
        long dirtyBytes = dirtyPages * ram.path("page-size").asLong(4096);
        double mbps = ram.path("mbps").asDouble();
        String saw = String.format("status %s after %d passes, %s of %s still to send, guest dirtying %d pages/s (%s/s),"
                        + " link %.0f Mbit/s", last.path("status").asString(), passes, Sizes.human(ram.path("remaining").asLong()),
                Sizes.human(ram.path("total").asLong()), dirtyPages, Sizes.human(dirtyBytes), mbps);
        String hint = "the guest dirties memory about as fast as it is sent: try --auto-converge (throttles the vCPUs), a higher"
                + " --max-bandwidth" + (Sizes.parse(maxBandwidth) == 0 ? "" : " (now " + maxBandwidth + "/s)")
                + ", --postcopy, or a longer --timeout";
        if (json) {
            ObjectNode out = JSON.createObjectNode();
            out.set("source", last);
            out.put("verified", false);
            out.put("timed-out", true);
            out.put("error", "did not converge within " + timeoutSeconds + " s; cancelled");
            out.put("hint", hint);
            System.out.println(JSON.writeValueAsString(out));
        } else {
            System.out.println("migration did not converge within " + timeoutSeconds + " s and was cancelled");
            System.out.println("  saw: " + saw);
            System.out.println("  hint: " + hint);
            System.out.println("NOT verified");
        }
        return ExitCodes.TIMEOUT;
    }

    /**
     * The destination's query-migrate once it has finished. Only a completed source is worth
     * waiting for (the destination may still be applying what it received); otherwise the
     * destination's current answer is returned at once.
     */
    private ObjectNode waitForDestination(DemoSide destination, String sourceStatus) throws Exception {
        long deadline = System.nanoTime() + 60_000_000_000L;
        while (true) {
            ObjectNode q = destination.queryMigrate();
            String s = q.path("status").asString();
            boolean finished = s.equals("completed") || s.equals("failed");
            if (finished || !sourceStatus.equals("completed") || System.nanoTime() > deadline) {
                return q;
            }
            Thread.sleep(20); // polling query-migrate, as a QMP client does
        }
    }

    private void printSummary(ObjectNode q, boolean verified, Map<String, Object> checks) {
        String status = q.path("status").asString();
        System.out.println("migration " + status);
        if (q.has("ram")) {
            JsonNode ram = q.get("ram");
            long total = q.path("total-time").asLong();
            long bytes = ram.path("transferred").asLong();
            System.out.printf("  RAM %s (%d normal, %d zero pages), %s on the wire in %d ms (%.0f MB/s)%n",
                    Sizes.human(ram.path("total").asLong()), ram.path("normal").asLong(), ram.path("duplicate").asLong(),
                    Sizes.human(bytes), total, total > 0 ? bytes / 1e3 / total : 0.0);
            if (ram.path("multifd-bytes").asLong() > 0) {
                System.out.printf("  multifd: %s of it on %d channels%n", Sizes.human(ram.path("multifd-bytes").asLong()), multifd);
            }
            System.out.printf("  passes %d, %s, setup %d ms%n", Math.max(0, ram.path("dirty-sync-count").asLong() - 1),
                    q.has("downtime") ? "downtime " + q.path("downtime").asLong() + " ms (limit " + downtimeLimit + " ms)"
                            : "the guest did not stop", q.path("setup-time").asLong());
        }
        checks.forEach((k, v) -> {
            if (!(v instanceof JsonNode)) {
                System.out.println("  " + k + ": " + v);
            }
        });
        System.out.println(!verified ? "NOT verified"
                : postcopy ? "verified: every page the destination's guest has not written since the switch equals the source's"
                : "verified: the destination holds the source's memory and device state");
    }
}
