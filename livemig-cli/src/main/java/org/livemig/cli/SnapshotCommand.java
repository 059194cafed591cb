package org.livemig.cli;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import org.livemig.machine.Machine;
import org.livemig.machine.RunState;
import java.util.List;
import org.livemig.migration.Migration;
import org.livemig.migration.RamStats;
import org.livemig.migration.Snapshots;
import org.livemig.migration.StateDigest;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.ObjectMapper;
import tools.jackson.databind.node.ObjectNode;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code livemig snapshot save|load}: a machine to a file in QEMU's stream format and back. */
@Command(name = "snapshot", mixinStandardHelpOptions = true, description = "Save a machine to a file or load it back.",
        subcommands = {SnapshotCommand.Save.class, SnapshotCommand.Load.class})
final class SnapshotCommand {
    private static final ObjectMapper JSON = new ObjectMapper();

    static Path sidecar(Path file) {
        return file.resolveSibling(file.getFileName() + ".check.json");
    }

    @Command(name = "save", mixinStandardHelpOptions = true,
            description = {"Run a machine briefly, then save it to FILE (plus FILE.check.json, its fingerprint).",
                "Without --live the guest is stopped for the save; with --live (QEMU's background-snapshot) it stops only"
                        + " while its devices are read and its RAM write-protected, and runs on while RAM is saved as it was then.",
                "--mapped-ram writes QEMU 9.0's mapped-ram layout: every page at a fixed place of FILE, written in parallel"
                        + " by --channels threads (with O_DIRECT under --direct-io)."},
            exitCodeListHeading = ExitCodes.HEADING, footer = "",
            exitCodeList = {"0:saved", ExitCodes.USAGE_TEXT + "; also a --ram this host cannot back",
                    "1:the save failed (the error says why; the machine is left as it was)",
                    "3:FILE cannot be written (no such directory, permission)"})
    static final class Save implements Callable<Integer> {
        @Parameters(index = "0", description = "Output file.")
        Path file;

        @Mixin
        MachineOptions machine = new MachineOptions();

        @Option(names = "--run-ms", description = "How long the guest runs before the save (default: ${DEFAULT-VALUE}).",
                defaultValue = "500")
        long runMillis;

        @Option(names = "--live", description = "Save the running guest without stopping it for the save"
                + " (background-snapshot): FILE holds RAM and devices as they were when the save started.")
        boolean live;

        @Option(names = "--write-tracking", description = "With --live, how guest writes to pages not yet saved are caught:"
                + " auto (userfaultfd write-protect where the kernel allows, else checked), checked or userfaultfd"
                + " (default: ${DEFAULT-VALUE}).", defaultValue = "auto")
        String writeTracking;

        @Option(names = "--mapped-ram", description = "QEMU 9.0's mapped-ram layout: each page at a fixed offset of FILE.")
        boolean mappedRam;

        @Option(names = "--channels", description = "With --mapped-ram, threads writing pages in parallel (multifd channels, 1-255).")
        Integer channels;

        @Option(names = "--direct-io", description = "With --mapped-ram --channels, write pages with O_DIRECT (where the"
                + " file system allows it).")
        boolean directIo;

        @Spec
        CommandSpec spec;

        private Snapshots.SaveOptions options() {
            if (!List.of("auto", "checked", "userfaultfd").contains(writeTracking)) {
                throw new ParameterException(spec.commandLine(), "--write-tracking must be auto, checked or userfaultfd, not '"
                        + writeTracking + "'");
            }
            if (!writeTracking.equals("auto") && !live) {
                throw new ParameterException(spec.commandLine(), "--write-tracking applies to --live saves only");
            }
            if (channels != null && !mappedRam) {
                throw new ParameterException(spec.commandLine(), "--channels needs --mapped-ram: its channels write pages at"
                        + " their places in the file");
            }
            if (channels != null && (channels < 1 || channels > 255)) {
                throw new ParameterException(spec.commandLine(), "--channels must be 1 to 255, not " + channels);
            }
            if (directIo && channels == null) {
                throw new ParameterException(spec.commandLine(), "--direct-io needs --mapped-ram and --channels: direct IO"
                        + " is done by mapped-ram's channels, as in QEMU");
            }
            if (live && channels != null) {
                throw new ParameterException(spec.commandLine(), "--live does not go with --channels (QEMU: Background-snapshot"
                        + " is not compatible with multifd)");
            }
            return new Snapshots.SaveOptions(live, mappedRam, channels == null ? 0 : channels, directIo, writeTracking);
        }

        @Override
        public Integer call() throws Exception {
            Snapshots.SaveOptions o = options();
            checkWritable(file);
            Machine.Config cfg = machine.config("snapshot-source");
            try (Machine m = new Machine(cfg)) {
                Migration mig = new Migration(m);
                m.mainLoop().runAndWait(() -> m.boot(RunState.RUNNING));
                Thread.sleep(runMillis); // the guest runs; this is the point of the command, not a wait for a condition
                ObjectNode check = JSON.createObjectNode();
                ObjectNode atStart = JSON.createObjectNode();
                RamStats plainStats = new RamStats();
                Snapshots.SaveResult r;
                try (ProgressDisplay p = ProgressDisplay.start("saving", cfg.ramSize(),
                        () -> pagesDone(o.plain() ? plainStats : stats(mig)))) {
                    r = Snapshots.save(m, mig, file, o, live ? machineAt -> {
                        try {
                            ObjectNode dev = atStart.putObject("devices");
                            StateDigest.devices(machineAt).forEach(dev::put);
                        } catch (java.io.IOException e) {
                            throw new java.io.UncheckedIOException(e);
                        }
                    } : null, plainStats, 3_600_000);
                } catch (java.io.IOException e) {
                    System.err.println("livemig: save to " + file + " failed: " + Main.describe(e));
                    return 1;
                }
                if (live) {
                    // RAM ran on during the save: its state at the start is what FILE holds, not RAM now.
                    ObjectNode fp = check.putObject("fingerprint");
                    fp.set("devices", atStart.get("devices"));
                } else {
                    check.set("fingerprint", m.mainLoop().call(() -> StateDigest.of(m), 600_000));
                }
                ObjectNode c = check.putObject("config");
                c.put("ram", cfg.ramSize());
                c.put("vcpus", cfg.vcpus());
                c.put("workload", cfg.workload());
                c.put("blob-size", cfg.blobSize());
                c.put("seed", cfg.seed());
                ObjectNode fmt = check.putObject("format");
                fmt.put("live", live);
                fmt.put("mapped-ram", mappedRam);
                fmt.put("channels", o.channels());
                fmt.put("direct-io", directIo);
                Files.writeString(sidecar(file), JSON.writerWithDefaultPrettyPrinter().writeValueAsString(check));
                System.out.printf("saved %s: %s of RAM (%d normal, %d zero pages), %s written in %.2f s%n",
                        file, Sizes.human(cfg.ramSize()), r.ram().normalPages.get(), r.ram().zeroPages.get(),
                        Sizes.human(Files.size(file)), r.totalNanos() / 1e9);
                if (live) {
                    System.out.printf("live: the guest was stopped %.1f ms at the start and ran on; %d of its writes waited"
                                    + " for their page to be saved, the longest %.2f ms (write tracking: %s)%n",
                            r.pauseNanos() / 1e6, r.waits(), r.longestWaitNanos() / 1e6, r.writeTracking());
                }
                return 0;
            }
        }

        private static RamStats stats(Migration mig) {
            var o = mig.outgoing();
            return o == null ? null : o.ramStats();
        }
    }

    /** RAM bytes a save or load has dealt with so far: its pages, sent or loaded, zero or not. */
    static long pagesDone(RamStats s) {
        return s == null ? 0 : (s.normalPages.get() + s.zeroPages.get()) * org.livemig.memory.RamBlock.PAGE_SIZE;
    }

    @Command(name = "load", mixinStandardHelpOptions = true,
            description = {"Load FILE into a fresh machine; with --verify check the A-B property and every device's state.",
                "The machine is the one FILE.check.json (written by save) describes; without that file, the options say what"
                        + " machine the snapshot was saved from. Options that contradict FILE.check.json are refused."},
            exitCodeListHeading = ExitCodes.HEADING, footer = "",
            exitCodeList = {"0:loaded (and with --verify: verified)", "1:loaded, but --verify found a difference",
                    ExitCodes.USAGE_TEXT + "; also a --ram this host cannot back",
                    "3:FILE cannot be read (no such file, permission) or is not a snapshot livemig can load"})
    static final class Load implements Callable<Integer> {
        @Parameters(index = "0", description = "Snapshot file.")
        Path file;

        @Option(names = "--ram", description = "Guest RAM the snapshot was saved with (default: from FILE.check.json, else 1G).")
        String ram;

        @Option(names = "--vcpus", description = "vCPUs (default: from FILE.check.json, else 2).")
        Integer vcpus;

        @Option(names = "--workload", description = "The saved guest's workload, which --verify's A-B check needs"
                + " (default: from FILE.check.json, else ab).")
        String workload;

        @Option(names = "--blob-size", description = "Size of the blob device's state (default: from FILE.check.json, else 64K).")
        String blobSize;

        @Option(names = "--seed", description = "Seed of the saved machine (default: from FILE.check.json, else 1).")
        Long seed;

        @Option(names = "--fill", hidden = true, description = "Refused: the snapshot's RAM replaces the machine's.")
        String fill;

        @Option(names = "--verify", description = "Check the loaded machine against the fingerprint saved beside the file.")
        boolean verify;

        @Option(names = "--channels", description = "For a mapped-ram FILE, threads reading pages in parallel (1-255;"
                + " default: the loading thread alone).")
        Integer channels;

        @Option(names = "--direct-io", description = "For a mapped-ram FILE read with --channels, read pages with O_DIRECT.")
        boolean directIo;

        @Spec
        CommandSpec spec;

        @Override
        public Integer call() throws Exception {
            if (fill != null) {
                throw new ParameterException(spec.commandLine(),
                        "--fill does not apply to snapshot load: the snapshot's RAM contents replace the machine's");
            }
            if (channels != null && (channels < 1 || channels > 255)) {
                throw new ParameterException(spec.commandLine(), "--channels must be 1 to 255, not " + channels);
            }
            if (directIo && channels == null) {
                throw new ParameterException(spec.commandLine(), "--direct-io needs --channels: direct IO is done by"
                        + " mapped-ram's channels, as in QEMU");
            }
            checkReadable(file);
            Machine.Config cfg = Machine.Config.defaults().withName("snapshot-destination");
            JsonNode check = null;
            Path side = sidecar(file);
            if (Files.exists(side)) {
                check = JSON.readTree(Files.readString(side));
                JsonNode c = check.get("config");
                cfg = cfg.withRam(c.get("ram").asLong()).withVcpus(c.get("vcpus").asInt())
                        .withWorkload(c.get("workload").asString()).withBlobSize(c.get("blob-size").asInt())
                        .withSeed(c.get("seed").asLong());
            }
            cfg = given(cfg, check != null, side);
            long need = cfg.ramSize();
            HostMemory.read().ifPresent(h -> h.require(need, 1, "the snapshot's RAM (" + Sizes.human(need) + ")"));
            try (Machine m = new Machine(cfg)) {
                m.mainLoop().runAndWait(() -> m.boot(RunState.PAUSED));
                long t0 = System.nanoTime();
                ObjectNode got;
                RamStats stats = new RamStats();
                int readers = channels == null ? 0 : channels;
                try (ProgressDisplay p = ProgressDisplay.start("loading", cfg.ramSize(), () -> pagesDone(stats))) {
                    got = m.mainLoop().call(() -> {
                        Snapshots.load(m, file, readers, directIo, stats);
                        return StateDigest.of(m);
                    }, 3_600_000);
                } catch (java.io.IOException e) {
                    System.err.println("livemig: load of " + file + " failed: " + Main.describe(e));
                    return ExitCodes.FILE;
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
                    boolean ramOk;
                    if (want.has("ram")) {
                        ramOk = want.get("ram").equals(got.get("ram"));
                        System.out.println("RAM: " + (ramOk ? "equal to the saved machine's" : "DIFFERS from the saved machine's"));
                    } else {
                        ramOk = true;
                        System.out.println("RAM: saved live (the guest ran on during the save), so only the A-B check speaks for it");
                    }
                    boolean devOk = want.get("devices").equals(got.get("devices"));
                    System.out.println("devices: " + (devOk ? "all equal to the saved machine's" : "DIFFER: " + got.get("devices")));
                    ok &= ramOk && devOk;
                } else {
                    System.out.println("no " + side.getFileName() + " beside the file: only the A-B check and device post-load checks ran");
                }
                System.out.println(ok ? "verified" : "NOT verified");
                return ok ? 0 : 1;
            }
        }

        /**
         * The options given on the command line, over {@code cfg}: with a FILE.check.json
         * ({@code fromSidecar}) each must agree with it, since the snapshot holds that machine.
         */
        private Machine.Config given(Machine.Config cfg, boolean fromSidecar, Path side) {
            Machine.Config out = cfg;
            if (ram != null) {
                out = agree(out.withRam(Sizes.parse(ram)), cfg.ramSize() != Sizes.parse(ram), fromSidecar, side,
                        "--ram " + ram, Sizes.human(cfg.ramSize()));
            }
            if (vcpus != null) {
                out = agree(out.withVcpus(vcpus), cfg.vcpus() != vcpus, fromSidecar, side, "--vcpus " + vcpus, cfg.vcpus() + " vCPUs");
            }
            if (workload != null) {
                out = agree(out.withWorkload(workload), !cfg.workload().equals(workload), fromSidecar, side,
                        "--workload " + workload, "workload " + cfg.workload());
            }
            if (blobSize != null) {
                long b = Sizes.parse(blobSize);
                out = agree(out.withBlobSize((int) Math.min(Integer.MAX_VALUE, b)), cfg.blobSize() != b, fromSidecar, side,
                        "--blob-size " + blobSize, "blob size " + cfg.blobSize());
            }
            if (seed != null) {
                out = agree(out.withSeed(seed), cfg.seed() != seed, fromSidecar, side, "--seed " + seed, "seed " + cfg.seed());
            }
            return out;
        }

        private Machine.Config agree(Machine.Config withOption, boolean differs, boolean fromSidecar, Path side,
                                     String option, String saved) {
            if (differs && fromSidecar) {
                throw new ParameterException(spec.commandLine(), option + " contradicts the saved machine (" + saved
                        + ", from " + side + "); leave it out: a snapshot loads into the machine it was saved from");
            }
            return withOption;
        }
    }

    /** Refuses, before a machine is built, a FILE that cannot be read, saying why. */
    static void checkReadable(Path file) throws java.io.IOException {
        Path parent = file.toAbsolutePath().getParent();
        if (parent != null && !Files.isDirectory(parent)) {
            throw new java.nio.file.NoSuchFileException(file.toString());
        }
        if (!Files.exists(file)) {
            throw new java.nio.file.NoSuchFileException(file.toString());
        }
        if (Files.isDirectory(file)) {
            throw new java.nio.file.FileSystemException(file.toString(), null, "is a directory, not a snapshot file");
        }
        if (!Files.isReadable(file)) {
            throw new java.nio.file.AccessDeniedException(file.toString());
        }
    }

    /** Refuses, before a machine is built and run, a FILE that cannot be written, saying why. */
    static void checkWritable(Path file) throws java.io.IOException {
        Path parent = file.toAbsolutePath().getParent();
        if (parent != null && !Files.isDirectory(parent)) {
            throw new java.nio.file.NoSuchFileException(file.toString());
        }
        if (Files.isDirectory(file)) {
            throw new java.nio.file.FileSystemException(file.toString(), null, "is a directory");
        }
        if (Files.exists(file) ? !Files.isWritable(file) : parent != null && !Files.isWritable(parent)) {
            throw new java.nio.file.AccessDeniedException(Files.exists(file) ? file.toString() : parent.toString());
        }
    }
}
