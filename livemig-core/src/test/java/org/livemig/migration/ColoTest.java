package org.livemig.migration;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.io.ByteArrayOutputStream;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.livemig.machine.Machine;
import org.livemig.machine.RunState;
import org.livemig.migration.colo.ColoPrimary;
import org.livemig.migration.colo.ColoSecondary;
import org.livemig.migration.colo.ColoState;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * COLO between two machines in one JVM: the initial migration ends in status colo, checkpoints
 * keep the secondary equal to the primary, outputs are compared, and either side fails over.
 * QEMU's COLO cases ({plain, multifd} x {primary, secondary} failover x {idle, during a
 * checkpoint}) are here; {@code monitor}'s and the CLI's tests drive the same over QMP.
 */
class ColoTest {
    private static final Duration LONG = Duration.ofSeconds(60);

    /** A primary and a secondary with x-colo, the secondary's guest started by COLO. */
    static final class ColoPair implements AutoCloseable {
        final PrecopyTest.Pair p;
        final List<String> exits = new CopyOnWriteArrayList<>();
        final ByteArrayOutputStream primaryOutput = new ByteArrayOutputStream();
        final ByteArrayOutputStream secondaryOutput = new ByteArrayOutputStream();
        final Map<Long, ObjectNode> primaryPrints = new ConcurrentHashMap<>();
        final Map<Long, ObjectNode> secondaryPrints = new ConcurrentHashMap<>();
        Outgoing outgoing;

        ColoPair(String workload, boolean multifd, long delayMillis) throws Exception {
            p = PrecopyTest.Pair.of(TestMachines.small(workload).withRam(32L << 20));
            p.src().setSerialOutput(b -> {
                synchronized (primaryOutput) {
                    primaryOutput.write(b);
                }
            });
            p.dst().setSerialOutput(b -> {
                synchronized (secondaryOutput) {
                    secondaryOutput.write(b);
                }
            });
            for (Migration m : List.of(p.srcMig(), p.dstMig())) {
                String side = m == p.srcMig() ? "primary" : "secondary";
                m.coloState().addListener((mode, reason) -> exits.add(side + ":" + mode.qemuName() + ":" + reason.qemuName()));
                m.machine().mainLoop().call(() -> {
                    m.setCapability(Capability.X_COLO, true);
                    if (multifd) {
                        m.setCapability(Capability.MULTIFD, true);
                    }
                    return null;
                }, 10_000);
            }
            p.params(m -> {
                m.maxBandwidth = 0;
                m.xCheckpointDelay = delayMillis;
            });
        }

        /** Migrates and waits until COLO runs on both sides; fingerprints are taken at every checkpoint. */
        ColoPair start() throws Exception {
            return start(p.listen("tcp:127.0.0.1:0"));
        }

        /** As {@link #start()}, migrating to {@code uri} (a tee in front of the secondary, say). */
        ColoPair start(String uri) throws Exception {
            outgoing = p.migrate(uri);
            await().atMost(LONG).until(() -> outgoing.colo() != null && p.dstMig().incoming().colo() != null
                    || outgoing.status().isFinal());
            assertThat(outgoing.status()).as(String.valueOf(outgoing.error())).isEqualTo(MigrationStatus.COLO);
            ColoPrimary pc = outgoing.colo();
            ColoSecondary sc = p.dstMig().incoming().colo();
            pc.setCheckpointHook(k -> primaryPrints.put(k, fingerprintHolding(p.src(), true)));
            sc.setCheckpointHook(k -> secondaryPrints.put(k, fingerprintHolding(p.dst(), true)));
            return this;
        }

        void awaitCheckpoints(long n) {
            await().atMost(LONG).until(() -> secondary().stats().checkpoints() >= n && primary().stats().checkpoints() >= n);
        }

        ColoPrimary primary() {
            return outgoing.colo();
        }

        ColoSecondary secondary() {
            return p.dstMig().incoming().colo();
        }

        void heartbeatLost(Migration m) throws Exception {
            m.machine().mainLoop().call(() -> {
                m.coloLostHeartbeat();
                return null;
            }, 10_000);
        }

        @Override
        public void close() throws Exception {
            p.close();
        }
    }

    /** A fingerprint taken inside a checkpoint hook (which holds the BQL on either side). */
    private static ObjectNode fingerprintHolding(Machine m, boolean bqlHeld) {
        try {
            return m.bql().callWithHeld(bqlHeld, () -> StateDigest.of(m));
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    /** Workload steps the guest's first vCPU has retired. */
    static long instructions(Machine m) throws Exception {
        return m.mainLoop().call(() -> {
            m.cpuSynchronizeAllStates();
            return m.vcpus().get(0).state().instructions;
        }, 10_000);
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource({"plain, false", "multifd, true"})
    void checkpointsKeepTheSecondaryEqualToThePrimary(String name, boolean multifd) throws Exception {
        try (ColoPair c = new ColoPair("ab:20000", multifd, 100).start()) {
            c.awaitCheckpoints(3);
            // Between checkpoints both guests run (during one, each is in run state colo for a moment).
            await().atMost(LONG).until(() -> c.p.src().runState() == RunState.RUNNING);
            await().atMost(LONG).until(() -> c.p.dst().runState() == RunState.RUNNING);
            for (long k = 1; k <= 3; k++) {
                long kk = k;
                await().atMost(LONG).until(() -> c.primaryPrints.containsKey(kk) && c.secondaryPrints.containsKey(kk));
                ObjectNode pf = c.primaryPrints.get(k);
                ObjectNode sf = c.secondaryPrints.get(k);
                assertThat(sf.get("ram")).as("RAM at checkpoint %d", k).isEqualTo(pf.get("ram"));
                assertThat(sf.get("devices")).as("devices at checkpoint %d", k).isEqualTo(pf.get("devices"));
            }
            assertThat(c.p.srcMig().coloState().mode()).isEqualTo(ColoState.Mode.PRIMARY);
            assertThat(c.p.dstMig().coloState().mode()).isEqualTo(ColoState.Mode.SECONDARY);
            JsonNode q = c.p.srcMig().queryMigrate();
            assertThat(q.get("status").asString()).isEqualTo("colo");
            assertThat(q.get("x-colo").get("checkpoints").asLong()).isGreaterThanOrEqualTo(3);
        }
    }

    @Test
    void secondaryFailoverAfterAYankKeepsItsGuestRunningWithTheAbProperty() throws Exception {
        try (ColoPair c = new ColoPair("ab:20000", false, 100).start()) {
            c.awaitCheckpoints(3);
            c.p.dstMig().incoming().shutdown(); // yank
            await().atMost(LONG).until(() -> c.exits.contains("secondary:secondary:error"));
            c.heartbeatLost(c.p.dstMig());
            await().atMost(LONG).until(() -> c.p.dstMig().incoming().status() == MigrationStatus.COMPLETED
                    && c.p.dst().runState() == RunState.RUNNING);
            assertThat(c.p.dstMig().coloState().mode()).isEqualTo(ColoState.Mode.NONE);
            assertThat(c.p.dstMig().coloState().lastMode()).isEqualTo(ColoState.Mode.SECONDARY);
            assertThat(c.p.dstMig().coloState().reason()).isEqualTo(ColoState.ExitReason.REQUEST);
            long before = instructions(c.p.dst());
            await().atMost(LONG).until(() -> instructions(c.p.dst()) > before);
            c.p.dst().mainLoop().runAndWait(() -> c.p.dst().vmStop(RunState.PAUSED));
            ObjectNode f = TestMachines.fingerprint(c.p.dst());
            assertThat(f.get("ab-check").get("ok").asBoolean()).as(f.toString()).isTrue();
        }
    }

    @Test
    void primaryFailoverLeavesThePrimaryRunningAlone() throws Exception {
        try (ColoPair c = new ColoPair("ab:20000", false, 100).start()) {
            c.awaitCheckpoints(3);
            c.heartbeatLost(c.p.srcMig());
            await().atMost(LONG).until(() -> c.outgoing.status() == MigrationStatus.COMPLETED);
            await().atMost(LONG).until(() -> c.exits.contains("primary:primary:request"));
            assertThat(c.p.src().runState()).isEqualTo(RunState.RUNNING);
            assertThat(c.p.srcMig().coloState().lastMode()).isEqualTo(ColoState.Mode.PRIMARY);
        }
    }

    @Test
    void equalOutputIsReleasedAsTheSecondaryMatchesItWithoutExtraCheckpoints() throws Exception {
        try (ColoPair c = new ColoPair("ab:20000,print", false, 600_000).start()) {
            // No checkpoint is due for 10 minutes: what is released is what the secondary matched.
            await().atMost(LONG).until(() -> c.primary().outputCounts()[0] >= 5);
            long[] counts = c.primary().outputCounts();
            assertThat(counts[2]).as("divergences").isZero();
            assertThat(c.primary().stats().checkpoints()).isZero();
            String out;
            synchronized (c.primaryOutput) {
                out = c.primaryOutput.toString(java.nio.charset.StandardCharsets.ISO_8859_1);
            }
            // The primary's 'A' went out before COLO, to the output it had then.
            assertThat(out).matches("A?B+");
        }
    }

    @Test
    void closingThePrimaryMachineEndsItsColoThreadWithoutWaitingForTheNextCheckpoint() throws Exception {
        ColoPair c = new ColoPair("ab:20000", false, 600_000).start();
        Outgoing o = c.outgoing;
        c.close();
        // No checkpoint is due for 10 minutes; the machine is gone, so the COLO loop must end now.
        assertThat(o.join(10_000)).as("mig/src/main ended after the machine closed").isTrue();
    }

    @Test
    void divergingOutputTriggersACheckpointAndReleasesThePrimarysOutput() throws Exception {
        try (ColoPair c = new ColoPair("ab:20000,print-clock", false, 600_000).start()) {
            // Each side writes the digit of its own clock after its 'B': they differ within a few
            // passes, and a checkpoint follows at once although none is due for 10 minutes.
            await().atMost(Duration.ofSeconds(20)).until(() -> c.primary().stats().checkpoints() >= 2);
            assertThat(c.primary().outputCounts()[2]).as("divergences").isPositive();
            String out;
            synchronized (c.primaryOutput) {
                out = c.primaryOutput.toString(java.nio.charset.StandardCharsets.ISO_8859_1);
            }
            // Released output is the primary's: 'B' and a digit per pass (its 'A' went out before
            // COLO); the two vCPUs' writes may interleave, byte by byte, as on a real UART.
            assertThat(out).matches("A?[B0-9]+");
            long bs = out.chars().filter(ch -> ch == 'B').count();
            long digits = out.chars().filter(Character::isDigit).count();
            assertThat(bs - digits).as(out).isBetween(0L, 2L);
            String secondaryOut;
            synchronized (c.secondaryOutput) {
                secondaryOut = c.secondaryOutput.toString(java.nio.charset.StandardCharsets.ISO_8859_1);
            }
            assertThat(secondaryOut).as("the secondary's output never reaches its real output while COLO runs").isEmpty();
        }
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource({"CUT_AFTER_RAM", "CORRUPT_DEVICE_STATE"})
    void aSpoiledCheckpointNeverReachesTheSecondarysGuestAndItFailsOverCleanly(ColoPrimary.TestFault fault) throws Exception {
        try (ColoPair c = new ColoPair("ab:20000", false, 100).start()) {
            c.awaitCheckpoints(2);
            long k = c.secondary().stats().checkpoints() + 2;
            c.primary().injectFault(k, fault);
            await().atMost(LONG).until(() -> c.exits.stream().anyMatch(e -> e.startsWith("secondary:")));
            assertThat(c.exits).contains("secondary:secondary:error");
            assertThat(c.secondary().stats().checkpoints()).as("the spoiled checkpoint was not applied").isEqualTo(k - 1);
            c.heartbeatLost(c.p.dstMig());
            await().atMost(LONG).until(() -> c.p.dstMig().incoming().status() == MigrationStatus.COMPLETED
                    && c.p.dst().runState() == RunState.RUNNING);
            long before = instructions(c.p.dst());
            await().atMost(LONG).until(() -> instructions(c.p.dst()) > before);
            c.p.dst().mainLoop().runAndWait(() -> c.p.dst().vmStop(RunState.PAUSED));
            ObjectNode f = TestMachines.fingerprint(c.p.dst());
            assertThat(f.get("ab-check").get("ok").asBoolean()).as(f.toString()).isTrue();
        }
    }

    @Test
    void aPrimaryFailoverDuringACheckpointLeavesThePrimaryRunning() throws Exception {
        try (ColoPair c = new ColoPair("ab:20000", false, 100).start()) {
            c.awaitCheckpoints(2);
            long k = c.primary().stats().checkpoints() + 1;
            // Asked for inside the first checkpoint from k on that reaches the hook (k may be
            // past it already when the hook is set), with the primary's guest stopped for it.
            java.util.concurrent.atomic.AtomicBoolean asked = new java.util.concurrent.atomic.AtomicBoolean();
            c.primary().setCheckpointHook(n -> {
                if (n >= k && asked.compareAndSet(false, true)) {
                    try {
                        c.p.srcMig().coloLostHeartbeat();
                    } catch (MigrationException e) {
                        throw new IllegalStateException(e);
                    }
                }
            });
            await().atMost(LONG).until(() -> c.outgoing.status() == MigrationStatus.COMPLETED);
            await().atMost(LONG).until(() -> c.p.src().runState() == RunState.RUNNING);
            assertThat(c.exits).contains("primary:primary:request");
            long before = instructions(c.p.src());
            await().atMost(LONG).until(() -> instructions(c.p.src()) > before);
        }
    }

    @Test
    void livemigsColoStreamIsReadByTheAnalyzerCheckpointByCheckpoint() throws Exception {
        try (ColoPair c = new ColoPair("ab:20000", false, 100)) {
            String target = c.p.listen("tcp:127.0.0.1:0");
            try (org.livemig.testing.TcpTee tee = new org.livemig.testing.TcpTee(
                    Integer.parseInt(target.substring(target.lastIndexOf(':') + 1)))) {
                c.start(tee.uri());
                c.awaitCheckpoints(3);
                c.heartbeatLost(c.p.srcMig());
                await().atMost(LONG).until(() -> c.outgoing.status() == MigrationStatus.COMPLETED);
                byte[] stream = tee.recorded();
                // The stream may end inside the checkpoint the failover cut: read what is whole.
                int cut = stream.length;
                try (var a = org.livemig.analyze.Analyzer.analyze(stream, org.livemig.analyze.Analyzer.Options.DEFAULT.withoutRam())) {
                    assertThat(a.colo()).hasSizeGreaterThanOrEqualTo(3);
                    assertThat(a.colo().get(0).deviceSections()).isEqualTo(6); // timer, 2 cpus, serial, blob, globalstate
                    // A checkpoint's device may carry a subsection its initial copy did not (the serial
                    // port's fifo_timeout, say): the trailer never described it, so that section is
                    // carried as bytes, framed and named; every other one is decoded.
                    assertThat(a.undecoded()).allSatisfy(u -> assertThat(u.reason()).contains("unknown subsection"));
                    assertThat(a.commands()).extracting(org.livemig.analyze.StreamEvents.Command::name).contains("ENABLE_COLO");
                } catch (org.livemig.stream.StreamFormatException e) {
                    assertThat(e.getMessage()).as("only a cut at the end").contains("truncated");
                    assertThat(cut).isPositive();
                }
            }
        }
    }
}
