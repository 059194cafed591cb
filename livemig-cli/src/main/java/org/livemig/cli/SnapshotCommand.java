package org.livemig.cli;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import org.livemig.machine.Machine;
import org.livemig.machine.RunState;
import org.livemig.migration.RamStats;
import org.livemig.migration.Snapshots;
import org.livemig.migration.StateDigest;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.ObjectMapper;
import tools.jackson.databind.node.ObjectNode;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code livemig snapshot save|load}: a machine to a file in QEMU's stream format and back. */
@Command(name = "snapshot", description = "Save a machine to a file or load it back.",
        subcommands = {SnapshotCommand.Save.class, SnapshotCommand.Load.class})
final class SnapshotCommand {
    private static final ObjectMapper JSON = new ObjectMapper();

    static Path sidecar(Path file) {
        return file.resolveSibling(file.getFileName() + ".check.json");
    }

    @Command(name = "save", mixinStandardHelpOptions = true,
            description = "Run a machine briefly, stop it and save it to FILE (plus FILE.check.json, its fingerprint).")
    static final class Save implements Callable<Integer> {
        @Parameters(index = "0", description = "Output file.")
        Path file;

        @Mixin
        MachineOptions machine = new MachineOptions();

        @Option(names = "--run-ms", description = "How long the guest runs before the save (default: ${DEFAULT-VALUE}).",
                defaultValue = "500")
        long runMillis;

        @Override
        public Integer call() throws Exception {
            Machine.Config cfg = machine.config("snapshot-source");
            try (Machine m = new Machine(cfg)) {
                m.mainLoop().runAndWait(() -> m.boot(RunState.RUNNING));
                Thread.sleep(runMillis); // the guest runs; this is the point of the command, not a wait for a condition
                long t0 = System.nanoTime();
                ObjectNode check = JSON.createObjectNode();
                RamStats stats = m.mainLoop().call(() -> {
                    RamStats s = Snapshots.save(m, file);
                    check.set("fingerprint", StateDigest.of(m));
                    return s;
                }, 600_000);
                double secs = (System.nanoTime() - t0) / 1e9;
                ObjectNode c = check.putObject("config");
                c.put("ram", cfg.ramSize());
                c.put("vcpus", cfg.vcpus());
                c.put("workload", cfg.workload());
                c.put("blob-size", cfg.blobSize());
                c.put("seed", cfg.seed());
                Files.writeString(sidecar(file), JSON.writerWithDefaultPrettyPrinter().writeValueAsString(check));
                System.out.printf("saved %s: %s of RAM (%d normal, %d zero pages), %s written in %.2f s%n",
                        file, Sizes.human(cfg.ramSize()), stats.normalPages.get(), stats.zeroPages.get(),
                        Sizes.human(Files.size(file)), secs);
                return 0;
            }
        }
    }

    @Command(name = "load", mixinStandardHelpOptions = true,
            description = "Load FILE into a fresh machine; with --verify check the A-B property and every device's state.")
    static final class Load implements Callable<Integer> {
        @Parameters(index = "0", description = "Snapshot file.")
        Path file;

        @Mixin
        MachineOptions machine = new MachineOptions();

        @Option(names = "--verify", description = "Check the loaded machine against the fingerprint saved beside the file.")
        boolean verify;

        @Override
        public Integer call() throws Exception {
            Machine.Config cfg = machine.config("snapshot-destination");
            JsonNode check = null;
            Path side = sidecar(file);
            if (Files.exists(side)) {
                check = JSON.readTree(Files.readString(side));
                JsonNode c = check.get("config");
                cfg = cfg.withRam(c.get("ram").asLong()).withVcpus(c.get("vcpus").asInt())
                        .withWorkload(c.get("workload").asString()).withBlobSize(c.get("blob-size").asInt())
                        .withSeed(c.get("seed").asLong());
            }
            try (Machine m = new Machine(cfg)) {
                m.mainLoop().runAndWait(() -> m.boot(RunState.PAUSED));
                long t0 = System.nanoTime();
                ObjectNode got;
                try {
                    got = m.mainLoop().call(() -> {
                        Snapshots.load(m, file);
                        return StateDigest.of(m);
                    }, 600_000);
                } catch (java.io.IOException e) {
                    System.err.println("livemig: load of " + file + " failed: " + e.getMessage());
                    return 1;
                }
                double secs = (System.nanoTime() - t0) / 1e9;
                System.out.printf("loaded %s in %.2f s; machine is %s%n", file, secs, m.runState().qemuName());
                if (!verify) {
                    return 0;
                }
                boolean ok = true;
                JsonNode ab = got.get("ab-check");
                if (ab != null) {
                    System.out.println("A-B check: " + (ab.get("ok").asBoolean() ? "ok" : "FAILED") + " (" + ab.get("detail").asString() + ")");
                    ok &= ab.get("ok").asBoolean();
                }
                if (check != null) {
                    JsonNode want = check.get("fingerprint");
                    boolean ramOk = want.get("ram").equals(got.get("ram"));
                    boolean devOk = want.get("devices").equals(got.get("devices"));
                    System.out.println("RAM: " + (ramOk ? "equal to the saved machine's" : "DIFFERS from the saved machine's"));
                    System.out.println("devices: " + (devOk ? "all equal to the saved machine's" : "DIFFER: " + got.get("devices")));
                    ok &= ramOk && devOk;
                } else {
                    System.out.println("no " + side.getFileName() + " beside the file: only the A-B check and device post-load checks ran");
                }
                System.out.println(ok ? "verified" : "NOT verified");
                return ok ? 0 : 1;
            }
        }
    }
}
