package org.livemig.migration;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.livemig.machine.Machine;
import org.livemig.machine.RunState;
import tools.jackson.databind.node.ObjectNode;

/**
 * The switchover-ack capability (QEMU 8.1): the source switches over only after the
 * destination's SWITCHOVER_ACK, which the destination sends once every device that needs to
 * has approved (an accelerator does when its first pass, its initial data, is loaded), or at
 * once when none needs to.
 */
class SwitchoverAckTest {
    private static final Duration LONG = Duration.ofSeconds(60);

    private static void caps(Machine m, Migration mig, Capability... caps) throws Exception {
        m.mainLoop().call(() -> {
            for (Capability c : caps) {
                mig.setCapability(c, true);
            }
            return null;
        }, 10_000);
    }

    private static long syncs(Outgoing o) {
        return o.ramStats().dirtySyncCount.get();
    }

    @Test
    void itNeedsTheReturnPathWithQemusWords() throws Exception {
        Machine m = TestMachines.booted(TestMachines.small("idle"), RunState.RUNNING);
        try {
            Migration mig = new Migration(m);
            assertThatThrownBy(() -> m.mainLoop().call(() -> {
                mig.setCapability(Capability.SWITCHOVER_ACK, true);
                return null;
            }, 10_000)).hasMessageContaining("Capability 'switchover-ack' requires capability 'return-path'");
            assertThat(mig.capabilities()).doesNotContain(Capability.SWITCHOVER_ACK);
            caps(m, mig, Capability.RETURN_PATH, Capability.SWITCHOVER_ACK);
            assertThat(mig.capabilities()).contains(Capability.SWITCHOVER_ACK);
        } finally {
            m.close();
        }
    }

    @Test
    void theSourceSwitchesOverOnlyAfterTheDestinationsAck() throws Exception {
        Machine.Config cfg = AcceleratorMigrationTest.withAccelerator("acc0,size=8M,dirty-rate=16", 16L << 20);
        try (PrecopyTest.Pair p = PrecopyTest.Pair.of(cfg)) {
            p.params(m -> m.maxBandwidth = 0);
            caps(p.src(), p.srcMig(), Capability.RETURN_PATH, Capability.SWITCHOVER_ACK);
            caps(p.dst(), p.dstMig(), Capability.RETURN_PATH, Capability.SWITCHOVER_ACK);
            // The destination's device holds its approval, as one still loading its initial data would.
            AcceleratorHandlers dstDevice = AcceleratorHandlers.of(p.dst(), "acc0");
            dstDevice.holdSwitchoverApproval(true);
            Outgoing o = p.migrate(p.listen("tcp:127.0.0.1:0"));
            // Ready to switch over (what is left fits the downtime limit), it waits, and says so.
            await().atMost(LONG).until(() -> "waiting".equals(o.switchoverAckState()));
            ObjectNode q = p.srcMig().queryMigrate();
            assertThat(q.get("x-switchover-ack").asString()).isEqualTo("waiting");
            assertThat(q.get("status").asString()).isEqualTo("active");
            // ...and keeps iterating meanwhile: bitmap syncs go on, the guest runs.
            long before = syncs(o);
            await().atMost(LONG).until(() -> syncs(o) >= before + 5);
            assertThat(o.status()).isEqualTo(MigrationStatus.ACTIVE);
            assertThat(p.src().runState()).isEqualTo(RunState.RUNNING);
            assertThat(p.dstMig().incoming().switchoverAckSent()).isFalse();
            assertThat(p.dstMig().queryMigrate().get("x-switchover-ack").asString()).isEqualTo("pending");
            // The device approves: SWITCHOVER_ACK goes, and only then the source switches over.
            dstDevice.holdSwitchoverApproval(false);
            await().atMost(LONG).until(() -> o.status().isFinal());
            assertThat(o.status()).as(String.valueOf(o.error())).isEqualTo(MigrationStatus.COMPLETED);
            assertThat(o.switchoverAckState()).isEqualTo("acked");
            assertThat(p.dstMig().incoming().switchoverAckSent()).isTrue();
            PrecopyTest.assertVerified(p);
        }
    }

    @Test
    void aDestinationWithNothingToApproveAcksAtOnce() throws Exception {
        try (PrecopyTest.Pair p = PrecopyTest.Pair.of(TestMachines.small("ab:20000").withRam(16L << 20))) {
            p.params(m -> m.maxBandwidth = 0);
            caps(p.src(), p.srcMig(), Capability.RETURN_PATH, Capability.SWITCHOVER_ACK);
            caps(p.dst(), p.dstMig(), Capability.RETURN_PATH, Capability.SWITCHOVER_ACK);
            Outgoing o = p.migrate(p.listen("tcp:127.0.0.1:0"));
            await().atMost(LONG).until(() -> o.status().isFinal());
            assertThat(o.status()).as(String.valueOf(o.error())).isEqualTo(MigrationStatus.COMPLETED);
            assertThat(o.switchoverAckState()).isEqualTo("acked");
            PrecopyTest.assertVerified(p);
        }
    }

    @Test
    void aDestinationThatNeverAcksKeepsTheSourceIteratingAndCancelStillWorks() throws Exception {
        // The destination lacks the capability, so no SWITCHOVER_ACK ever comes (as with QEMU).
        try (PrecopyTest.Pair p = PrecopyTest.Pair.of(TestMachines.small("ab:20000").withRam(16L << 20))) {
            p.params(m -> m.maxBandwidth = 0);
            caps(p.src(), p.srcMig(), Capability.RETURN_PATH, Capability.SWITCHOVER_ACK);
            Outgoing o = p.migrate(p.listen("tcp:127.0.0.1:0"));
            await().atMost(LONG).until(() -> "waiting".equals(o.switchoverAckState()));
            long syncs = syncs(o);
            await().atMost(LONG).until(() -> syncs(o) >= syncs + 10);
            assertThat(o.status()).isEqualTo(MigrationStatus.ACTIVE);
            assertThat(p.src().runState()).isEqualTo(RunState.RUNNING);
            assertThat(p.srcMig().queryMigrate().get("x-switchover-ack").asString()).isEqualTo("waiting");
            p.srcMig().cancel();
            await().atMost(LONG).until(() -> o.status().isFinal());
            assertThat(o.status()).isEqualTo(MigrationStatus.CANCELLED);
            assertThat(p.src().runState()).isEqualTo(RunState.RUNNING);
            assertThat(p.src().ram().dirtyLogging()).isFalse();
            await().atMost(LONG).until(() -> p.dstMig().incoming().status().isFinal());
            assertThat(p.dstMig().incoming().status()).isEqualTo(MigrationStatus.FAILED);
        }
    }

    @Test
    void aDestinationWithoutTheCapabilityRefusesADevicesInitialDataMarkerAndTheSourceKeepsRunning() throws Exception {
        Machine.Config cfg = AcceleratorMigrationTest.withAccelerator("acc0,size=4M,dirty-rate=8", 16L << 20);
        try (PrecopyTest.Pair p = PrecopyTest.Pair.of(cfg)) {
            p.params(m -> m.maxBandwidth = 0);
            caps(p.src(), p.srcMig(), Capability.RETURN_PATH, Capability.SWITCHOVER_ACK);
            Outgoing o = p.migrate(p.listen("tcp:127.0.0.1:0"));
            await().atMost(LONG).until(() -> o.status().isFinal());
            assertThat(o.status()).isEqualTo(MigrationStatus.FAILED);
            assertThat(p.src().runState()).isEqualTo(RunState.RUNNING);
            await().atMost(LONG).until(() -> p.dstMig().incoming().status().isFinal());
            assertThat(p.dstMig().incoming().error())
                    .contains("acc0/accel: Received INIT_DATA_SENT but switchover ack is not used");
        }
    }
}
