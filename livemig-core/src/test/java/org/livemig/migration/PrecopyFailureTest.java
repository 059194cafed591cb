package org.livemig.migration;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.livemig.machine.Machine;
import org.livemig.machine.RunState;
import org.livemig.memory.RamBlock;
import org.livemig.transport.FaultSpec;

/** Failures during an in-process migration: the source survives, the destination reports and cleans up. */
class PrecopyFailureTest {
    private static final Duration LONG = Duration.ofSeconds(60);

    private static String ramHash(Machine m) {
        return StateDigest.ram(m.mainBlock());
    }

    @Test
    void connectionCutLeavesTheSourceRunningWithItsStateIntact() throws Exception {
        Machine.Config cfg = TestMachines.small("idle").withRam(32L << 20).withFill(Machine.Fill.RANDOM);
        try (PrecopyTest.Pair p = PrecopyTest.Pair.of(cfg)) {
            String before = ramHash(p.src());
            p.params(m -> m.maxBandwidth = 0);
            p.srcMig().setFaultInjection(FaultSpec.builder().cut(FaultSpec.Direction.OUT, 5L << 20).build(), FaultSpec.NONE);
            Outgoing o = p.migrate(p.listen("tcp:127.0.0.1:0"));
            await().atMost(LONG).until(() -> o.status().isFinal());
            assertThat(o.status()).isEqualTo(MigrationStatus.FAILED);
            assertThat(o.error()).contains("injected cut");
            assertThat(p.src().runState()).isEqualTo(RunState.RUNNING);
            assertThat(p.src().ram().dirtyLogging()).isFalse();
            assertThat(ramHash(p.src())).isEqualTo(before);
            // The destination saw the stream end mid-RAM: it fails, names where, and cleans up.
            await().atMost(LONG).until(() -> p.dstMig().incoming().status() == MigrationStatus.FAILED);
            assertThat(p.dstMig().incoming().error()).contains("truncated").contains("offset").contains("'ram' instance 0");
            assertThat(p.dstMig().queryMigrate().get("status").asString()).isEqualTo("failed");
        }
    }

    @Test
    void closingBothMachinesUnderARunningMigrationEndsItsThreadsBeforeTheRamGoes() throws Exception {
        Machine.Config cfg = TestMachines.small("idle").withRam(32L << 20).withFill(Machine.Fill.RANDOM);
        PrecopyTest.Pair p = PrecopyTest.Pair.of(cfg);
        boolean closed = false;
        try {
            p.params(m -> m.maxBandwidth = 1L << 20); // 32 MiB at 1 MiB/s: it is still running below
            Outgoing o = p.migrate(p.listen("tcp:127.0.0.1:0"));
            await().atMost(LONG).until(() -> o.ramStats().normalPages.get() > 0
                    && p.dstMig().incoming() != null && p.dstMig().incoming().loadThread() != null);
            Thread load = p.dstMig().incoming().loadThread();
            // No Migration.stop first: closing the machine is enough (as QEMU's cleanup shuts migration down).
            closed = true;
            p.src().close();
            assertThat(o.thread().isAlive()).as("mig/src/main ended before the source's RAM was released").isFalse();
            assertThat(o.status()).isEqualTo(MigrationStatus.CANCELLED);
            assertThat(o.error()).isNull();
            p.dst().close();
            assertThat(load.isAlive()).as("mig/dst/main ended before the destination's RAM was released").isFalse();
        } finally {
            if (!closed) {
                p.close();
            }
        }
    }

    @Test
    void corruptedDeviceSectionIsReportedWithSectionAndOffsetAndANewIncomingMigrationWorks() throws Exception {
        Machine.Config cfg = TestMachines.small("idle").withRam(8L << 20).withBlobSize(1 << 20);
        try (PrecopyTest.Pair p = PrecopyTest.Pair.of(cfg)) {
            p.params(m -> m.maxBandwidth = 0);
            // Zero RAM is a few KiB on the wire, so the device sections start near the offset they
            // have in a snapshot of the same machine; a live stream carries a few more RAM
            // section headers, so the flipped byte lands in one of the device sections.
            long sizeFieldAt = blobSizeFieldOffset(cfg);
            p.srcMig().setFaultInjection(FaultSpec.builder().flip(FaultSpec.Direction.OUT, sizeFieldAt).build(), FaultSpec.NONE);
            Outgoing o = p.migrate(p.listen("tcp:127.0.0.1:0"));
            await().atMost(LONG).until(() -> p.dstMig().incoming().status() == MigrationStatus.FAILED);
            String err = p.dstMig().incoming().error();
            // Wherever the flip lands (a field, a section name, a footer), the error names the
            // byte offset and, once inside a section, the section.
            assertThat(err).containsPattern("at byte offset \\d+");
            await().atMost(LONG).until(() -> o.status().isFinal());
            // Without a return path the source cannot know; with exit-on-error=false the
            // destination cleans up and takes a new incoming migration.
            p.srcMig().setFaultInjection(FaultSpec.NONE, FaultSpec.NONE);
            try (Machine src2 = TestMachines.booted(cfg.withName("src2"), RunState.RUNNING)) {
                Migration m2 = new Migration(src2);
                src2.mainLoop().call(() -> {
                    m2.setParameters(x -> x.maxBandwidth = 0);
                    return null;
                }, 10_000);
                String uri = p.listen("tcp:127.0.0.1:0");
                Outgoing o2 = src2.mainLoop().call(() -> m2.migrate(uri), 10_000);
                await().atMost(LONG).until(() -> o2.status().isFinal());
                assertThat(o2.status()).isEqualTo(MigrationStatus.COMPLETED);
                await().atMost(LONG).until(() -> p.dstMig().incoming().status() == MigrationStatus.COMPLETED);
                assertThat(TestMachines.fingerprint(p.dst()).get("devices"))
                        .isEqualTo(TestMachines.fingerprint(src2).get("devices"));
            }
        }
    }

    /** Offset of the blob device's be32 "size" field in a migration stream of an idle zero machine. */
    private static long blobSizeFieldOffset(Machine.Config cfg) throws Exception {
        try (Machine m = TestMachines.booted(cfg.withName("probe"), RunState.PAUSED)) {
            byte[] stream = m.mainLoop().call(() -> {
                var f = org.livemig.stream.MigrationFile.toMemory();
                SaveVm.saveSnapshot(m, f, new RamStats());
                return f.toByteArray();
            }, 30_000);
            byte[] name = "\u0004blob".getBytes();
            for (int i = 0; i < stream.length - name.length; i++) {
                if (java.util.Arrays.equals(stream, i, i + name.length, name, 0, name.length)) {
                    // name, be32 instance, be32 version, be64 generation, then be32 size
                    return i + name.length + 4 + 4 + 8;
                }
            }
            throw new AssertionError("blob section not found");
        }
    }

    @Test
    void cancelAtAnyPointLeavesTheSourceRunning() throws Exception {
        Machine.Config cfg = TestMachines.small("random-writes:50").withRam(32L << 20);
        for (long cancelAfterMillis : new long[] {0, 50, 300}) {
            try (PrecopyTest.Pair p = PrecopyTest.Pair.of(cfg)) {
                p.params(m -> m.maxBandwidth = 16L << 20);
                Outgoing o = p.migrate(p.listen("tcp:127.0.0.1:0"));
                if (cancelAfterMillis > 0) {
                    await().pollDelay(Duration.ofMillis(cancelAfterMillis)).atMost(LONG).until(() -> true);
                }
                p.srcMig().cancel();
                await().atMost(LONG).until(() -> o.status().isFinal());
                assertThat(o.status()).isIn(MigrationStatus.CANCELLED, MigrationStatus.COMPLETED);
                if (o.status() == MigrationStatus.CANCELLED) {
                    assertThat(p.src().runState()).isEqualTo(RunState.RUNNING);
                    assertThat(p.src().ram().dirtyLogging()).isFalse();
                }
            }
        }
    }

    @Test
    void statusNamesArePublicApi() {
        assertThat(java.util.Arrays.stream(MigrationStatus.values()).map(MigrationStatus::qemuName))
                .containsExactly("none", "setup", "cancelling", "cancelled", "active", "postcopy-active",
                        "postcopy-paused", "postcopy-recover-setup", "postcopy-recover", "completed", "failed",
                        "colo", "pre-switchover", "device", "wait-unplug");
        assertThat(RamBlock.PAGE_SIZE).isEqualTo(4096);
    }
}
