package org.livemig.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import jdk.jfr.Recording;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import tools.jackson.databind.ObjectMapper;
import tools.jackson.databind.node.ObjectNode;

/**
 * {@code run --trace FILE.jfr} records each side's trace events and {@code livemig trace} reads
 * them back as a timeline and a summary; {@code run --serial file:PATH} writes the guest's serial
 * output, which goes on on the destination after the migration.
 */
class TraceCommandTest {
    private static final Duration LONG = Duration.ofSeconds(120);

    @TempDir
    Path dir;

    private static MachineOptions machine(String workload, String fill) {
        MachineOptions m = new MachineOptions();
        m.ram = "32M";
        m.vcpus = 1;
        m.workload = workload;
        m.fill = fill;
        m.blobSize = "64K";
        m.seed = 7;
        return m;
    }

    @Test
    void aPostcopyMigrationsTraceOnEitherSideReadsBackAsATimelineAndASummary() throws Exception {
        Path srcTrace = dir.resolve("src.jfr");
        Path dstTrace = dir.resolve("dst.jfr");
        Path srcSerial = dir.resolve("src.serial");
        Path dstSerial = dir.resolve("dst.serial");
        try (QmpSide src = QmpSide.start(machine("ab:20000,print", "random"), false, dir, "src",
                     List.of("--no-warm-up", "--trace", srcTrace.toString(), "--serial", "file:" + srcSerial));
             QmpSide dst = QmpSide.start(machine("ab:20000,print", "zero"), true, dir, "dst",
                     List.of("--no-warm-up", "--trace", dstTrace.toString(), "--serial", "file:" + dstSerial))) {
            await().atMost(LONG).until(() -> Files.exists(srcSerial) && Files.readString(srcSerial).startsWith("AB"));
            src.setCapabilities(Map.of("postcopy-ram", true, "events", true));
            dst.setCapabilities(Map.of("postcopy-ram", true));
            ObjectNode p = new ObjectMapper().createObjectNode();
            p.put("max-bandwidth", 8L << 20); // one pass takes seconds: postcopy starts with most pages still to come
            src.setParameters(p);
            String uri = dst.migrateIncoming("unix:" + dir.resolve("mig.sock"));
            src.migrate(uri);
            assertThat(src.awaitFirstPass(LONG)).isTrue(); // a pass, then postcopy for the pages dirtied since
            src.startPostcopy();
            await().atMost(LONG).until(() -> src.queryMigrate().path("status").asString().equals("completed"));
            await().atMost(LONG).until(() -> dst.queryMigrate().path("status").asString().equals("completed"));
            // The guest, started on the destination at the switch to postcopy, goes on writing to the destination's serial port where it left off.
            await().atMost(LONG).until(() -> Files.exists(dstSerial) && Files.readString(dstSerial).contains("B"));
        }
        assertThat(Files.readString(dstSerial)).doesNotContain("A"); // it greeted once, on the source
        await().atMost(LONG).until(() -> Files.size(srcTrace) > 0 && Files.size(dstTrace) > 0);

        Cli.Run s = Cli.run("trace", srcTrace.toString());
        assertThat(s.status()).as(s.all()).isZero();
        assertThat(s.out())
                .contains("timeline (ms from the first event):")
                .contains("source none -> setup", "source setup -> active", "source active -> postcopy-active",
                        "source postcopy-active -> completed")
                .containsPattern("pass 2 ended: .* sent in") // the first pass over RAM ends at dirty sync 2, as QEMU counts
                .containsPattern("QMP: \\d+ commands")
                .containsPattern("migrate +1 ")
                .containsPattern("migrate-start-postcopy +1 ");
        Cli.Run d = Cli.run("trace", dstTrace.toString());
        assertThat(d.status()).as(d.all()).isZero();
        assertThat(d.out())
                .contains("destination none -> setup", "destination active -> postcopy-active",
                        "destination postcopy-active -> completed")
                .containsPattern("postcopy page requests: [1-9]\\d*, fault to placed p50")
                .contains("histogram (fault to placed):");
        Cli.Run summary = Cli.run("trace", "--summary-only", dstTrace.toString());
        assertThat(summary.out()).doesNotContain("timeline").contains("summary:");
    }

    /**
     * The rest of the event types, from a COLO pair over two multifd channels ({@code demo --trace}):
     * the switchover into COLO, each side's checkpoints, each side's multifd packets.
     */
    @Test
    void aColoPairOverMultifdTracesItsCheckpointsAndPacketsOnEitherSide() throws Exception {
        Path traces = dir.resolve("traces");
        Cli.Run demo = Cli.run("demo", "--colo", "--multifd", "2", "--ram", "32M", "--checkpoints", "3",
                "--checkpoint-delay", "100", "--trace", traces.toString());
        assertThat(demo.status()).as(demo.all()).isZero();
        assertThat(demo.err()).contains("primary's trace: livemig trace " + traces.resolve("primary.jfr"));
        Cli.Run p = Cli.run("trace", traces.resolve("primary.jfr").toString());
        assertThat(p.status()).as(p.all()).isZero();
        assertThat(p.out())
                .contains("source device -> colo")
                .containsPattern("switchover: downtime [0-9.]+ ms = stop")
                .containsPattern("COLO primary checkpoint 1: .*, guest paused [0-9.]+ ms")
                .containsPattern("COLO primary: [3-9]\\d* checkpoints|COLO primary: \\d{2,} checkpoints")
                .containsPattern("multifd channel 0: [1-9]\\d* packets, \\d+ pages")
                .containsPattern("multifd channel 1: [1-9]\\d* packets");
        Cli.Run s = Cli.run("trace", traces.resolve("secondary.jfr").toString());
        assertThat(s.status()).as(s.all()).isZero();
        assertThat(s.out())
                .contains("destination active -> colo")
                .containsPattern("COLO secondary checkpoint 1: ")
                .containsPattern("multifd channel 0: [1-9]\\d* packets, [1-9]\\d* pages");
    }

    @Test
    void aMissingFileANonRecordingAndARecordingWithoutLivemigEventsAreTold() throws Exception {
        Cli.Run missing = Cli.run("trace", dir.resolve("nope.jfr").toString());
        assertThat(missing.status()).isEqualTo(ExitCodes.FILE);
        assertThat(missing.err()).contains("no such file: " + dir.resolve("nope.jfr"));

        Path text = Files.writeString(dir.resolve("text.jfr"), "not a recording\n");
        Cli.Run notJfr = Cli.run("trace", text.toString());
        assertThat(notJfr.status()).isEqualTo(ExitCodes.FILE);
        assertThat(notJfr.err()).contains(text + ": not a Flight Recorder file");

        Path empty = dir.resolve("empty.jfr");
        try (Recording r = new Recording()) {
            r.enable("jdk.CPULoad");
            r.start();
            r.stop();
            r.dump(empty);
        }
        Cli.Run none = Cli.run("trace", empty.toString());
        assertThat(none.status()).isEqualTo(1);
        assertThat(none.err()).contains("holds no livemig events");
    }

    @Test
    void aBadSerialSpecIsAUsageError() {
        Cli.Run r = Cli.run("run", "--ram", "16M", "--no-warm-up", "--serial", "pty", "--qmp", "unix:" + dir.resolve("q.sock"));
        assertThat(r.status()).isEqualTo(ExitCodes.USAGE);
        assertThat(r.err()).contains("--serial takes file:PATH, stdio or none, not 'pty'");
    }
}
