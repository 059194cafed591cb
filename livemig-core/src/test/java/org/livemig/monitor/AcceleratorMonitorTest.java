package org.livemig.monitor;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.livemig.machine.Accelerator;
import org.livemig.machine.Machine;
import org.livemig.machine.RunState;
import org.livemig.migration.Migration;
import org.livemig.migration.StateDigest;
import org.livemig.transport.FaultSpec;
import tools.jackson.databind.JsonNode;

/**
 * The seed's open item (the BQL held across IO), closed for devices: the destination loads a
 * 256 MiB accelerator's state with no BQL held while the bytes arrive, so its monitor answers
 * while the connection stalls in the middle of that state.
 */
class AcceleratorMonitorTest {
    private static final Duration LONG = Duration.ofSeconds(120);
    private static final long STALL_MILLIS = 3_000;

    @TempDir
    Path dir;

    @Test
    void theMonitorAnswersWhileA256MiBDeviceStateArrivesOverAStalledConnection() throws Exception {
        Machine.Config cfg = Machine.Config.defaults().withRam(16L << 20).withVcpus(1).withWorkload("idle")
                .withBlobSize(4096).withAccelerators(List.of(Accelerator.Spec.parse("acc0,size=256M,dirty-rate=0")));
        Machine src = new Machine(cfg.withName("src"));
        Machine dst = new Machine(cfg.withName("dst").withSeed(77));
        QmpServer server = null;
        QmpClient qmp = null;
        try {
            for (Machine m : List.of(src, dst)) {
                m.setExitHandler(status -> {
                    throw new IllegalStateException("exit(" + status + ") requested");
                });
            }
            src.mainLoop().runAndWait(() -> src.boot(RunState.RUNNING));
            dst.mainLoop().runAndWait(() -> dst.boot(RunState.INMIGRATE));
            Migration srcMig = new Migration(src);
            Migration dstMig = new Migration(dst);
            dstMig.setAutostart(false);
            server = QmpServer.builder(MachineMonitor.host(dst)).build();
            RunStateCommands.register(server, MachineMonitor.vm(dst, "dst"));
            MigrationCommands.register(server, dstMig);
            String sock = "unix:" + dir.resolve("dst.qmp");
            server.listen(sock);
            qmp = QmpClient.connect(sock);
            qmp.negotiate();
            // RAM is zero (a few KiB of ZERO records): byte 96 MiB is inside the device's state.
            dstMig.setFaultInjection(FaultSpec.NONE,
                    FaultSpec.parse("stall:ms=" + STALL_MILLIS + ",after=96m,dir=in"));
            src.mainLoop().call(() -> {
                srcMig.setParameters(p -> p.maxBandwidth = 0);
                return null;
            }, 10_000);
            qmp.execute("migrate-incoming", QmpClient.args("uri", "tcp:127.0.0.1:0", "exit-on-error", false));
            String uri = dstMig.incoming().boundAddress().uri();
            src.mainLoop().call(() -> srcMig.migrate(uri), 10_000);
            // The stall: mig/dst/main waits for bytes inside the device's section.
            await().atMost(LONG).until(() -> dstMig.incoming().loadThread() != null
                    && inStall(dstMig.incoming().loadThread()));
            long worst = 0;
            int answers = 0;
            while (inStall(dstMig.incoming().loadThread())) {
                long t0 = System.nanoTime();
                JsonNode st = qmp.execute("query-status");
                JsonNode q = qmp.execute("query-migrate");
                worst = Math.max(worst, System.nanoTime() - t0);
                assertThat(st.get("status").asString()).isEqualTo("inmigrate");
                assertThat(q.get("status").asString()).isEqualTo("active");
                answers++;
            }
            // With the BQL held across the stalled read, not one answer would come before it ended.
            assertThat(answers).as("answers during the stall").isGreaterThan(10);
            assertThat(worst / 1_000_000).as("slowest pair of answers, ms (a busy shared machine may pause a thread)")
                    .isLessThan(STALL_MILLIS / 2);
            QmpClient c = qmp;
            await().atMost(LONG).until(() -> c.execute("query-migrate").get("status").asString().equals("completed"));
            String want = StateDigest.hash(src.devices().accelerators().getFirst().memory());
            assertThat(StateDigest.hash(dst.devices().accelerators().getFirst().memory())).isEqualTo(want);
        } finally {
            if (qmp != null) {
                qmp.close();
            }
            if (server != null) {
                server.close();
            }
            src.close();
            dst.close();
        }
    }

    /** Whether {@code t} (mig/dst/main) is parked in the injected stall, reading the accelerator's section. */
    private static boolean inStall(Thread t) {
        boolean stall = false;
        boolean device = false;
        for (StackTraceElement e : t.getStackTrace()) {
            stall |= e.getClassName().startsWith("org.livemig.transport.FaultInjectingConnection")
                    && e.getMethodName().equals("park");
            device |= e.getClassName().equals("org.livemig.migration.AcceleratorHandlers");
        }
        return stall && device;
    }
}
