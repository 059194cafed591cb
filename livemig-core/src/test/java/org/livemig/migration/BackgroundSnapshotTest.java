package org.livemig.migration;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assumptions.assumeThat;
import static org.awaitility.Awaitility.await;

import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.livemig.machine.Machine;
import org.livemig.machine.RunState;
import org.livemig.memory.RamBlock;
import org.livemig.memory.postcopy.WriteTracker;
import tools.jackson.databind.node.ObjectNode;

/**
 * background-snapshot: a running guest is saved as it was when the snapshot started, with both
 * write-tracking backends, and loads back with that RAM and that device state.
 */
class BackgroundSnapshotTest {
    private static final Duration LONG = Duration.ofSeconds(60);

    @TempDir
    Path dir;

    private static void assumeBackend(String backend) {
        if (backend.equals("userfaultfd")) {
            var a = WriteTracker.userfaultfdAvailability();
            assumeThat(a.available()).as("userfaultfd write-protect: " + a.reason()).isTrue();
        }
    }

    /** Starts a background snapshot of {@code p}'s source to {@code file}; the fingerprint of the pause lands in {@code atPause}. */
    private static Outgoing snapshot(PrecopyTest.Pair p, String backend, Path file, long bandwidth,
                                     AtomicReference<ObjectNode> atPause) throws Exception {
        p.params(m -> m.maxBandwidth = bandwidth);
        p.src().mainLoop().call(() -> {
            p.srcMig().setWriteTracking(backend);
            p.srcMig().setBackgroundSnapshotObserver(m -> {
                try {
                    atPause.set(StateDigest.of(m));
                } catch (java.io.IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            });
            p.srcMig().setCapability(Capability.BACKGROUND_SNAPSHOT, true);
            return null;
        }, 10_000);
        return p.migrate("file:" + file);
    }

    private static void loadInto(PrecopyTest.Pair p, Path file) throws Exception {
        p.listen("file:" + file);
        await().atMost(LONG).until(() -> p.dstMig().incoming().status().isFinal());
        assertThat(p.dstMig().incoming().status()).as(String.valueOf(p.dstMig().incoming().error()))
                .isEqualTo(MigrationStatus.COMPLETED);
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"checked", "userfaultfd"})
    void aRunningAbGuestIsSavedAsItWasWhenTheSnapshotStarted(String backend) throws Exception {
        assumeBackend(backend);
        Path file = dir.resolve("live.mig");
        AtomicReference<ObjectNode> atPause = new AtomicReference<>();
        try (PrecopyTest.Pair p = PrecopyTest.Pair.of(TestMachines.small("ab").withRam(64L << 20))) {
            long instructionsBefore = p.src().mainLoop().call(() -> {
                p.src().cpuSynchronizeAllStates();
                return p.src().vcpus().getFirst().state().instructions;
            }, 10_000);
            Outgoing o = snapshot(p, backend, file, 48L << 20, atPause);
            await().atMost(LONG).until(() -> o.status().isFinal());
            assertThat(o.status()).as(String.valueOf(o.error())).isEqualTo(MigrationStatus.COMPLETED);
            assertThat(p.src().runState()).as("the guest runs on").isEqualTo(RunState.RUNNING);
            WriteTracker t = o.writeTracker();
            assertThat(t.name()).isEqualTo(backend);
            assertThat(t.waits()).as("the ab guest wrote pages not yet saved").isPositive();
            ObjectNode q = p.src().mainLoop().call(() -> p.srcMig().queryMigrate(), 10_000);
            assertThat(q.get("status").asString()).isEqualTo("completed");
            assertThat(q.get("x-background-snapshot").get("write-tracking").asString()).isEqualTo(backend);
            assertThat(q.get("downtime").asLong()).isLessThan(o.totalTimeMillis());

            ObjectNode start = atPause.get();
            assertThat(start).isNotNull();
            assertThat(start.get("ab-check").get("ok").asBoolean()).isTrue();
            // The guest went on while RAM was saved.
            ObjectNode now = TestMachines.fingerprint(p.src());
            assertThat(now.get("ram")).isNotEqualTo(start.get("ram"));
            long instructionsAfter = p.src().mainLoop().call(() -> {
                p.src().cpuSynchronizeAllStates();
                return p.src().vcpus().getFirst().state().instructions;
            }, 10_000);
            assertThat(instructionsAfter).isGreaterThan(instructionsBefore);

            loadInto(p, file);
            ObjectNode loaded = TestMachines.fingerprint(p.dst());
            assertThat(loaded.get("ram")).as("RAM as it was at the pause").isEqualTo(start.get("ram"));
            assertThat(loaded.get("devices")).as("devices as they were at the pause").isEqualTo(start.get("devices"));
            assertThat(loaded.get("ab-check").get("ok").asBoolean()).as(loaded.toString()).isTrue();
            // The vCPUs' position and the A-B pattern agree: the same instant.
            assertThat(loaded.get("ab-check").get("detail")).isEqualTo(start.get("ab-check").get("detail"));
        }
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"checked", "userfaultfd"})
    void aWriteToAPageNotYetSavedWaitsThenGoesOnAndTheFileHoldsTheOldPage(String backend) throws Exception {
        assumeBackend(backend);
        Path file = dir.resolve("wait.mig");
        try (PrecopyTest.Pair p = PrecopyTest.Pair.of(TestMachines.small("idle").withRam(32L << 20)
                .withFill(Machine.Fill.RANDOM))) {
            RamBlock b = p.src().mainBlock();
            long lastPage = b.pageCount() - 1;
            long off = (lastPage << RamBlock.PAGE_BITS) + 24;
            long old = b.memory().get(ValueLayout.JAVA_LONG, off);
            // 4 MiB/s: the pass takes about 8 s, so the last page is far from saved when the write comes.
            Outgoing o = snapshot(p, backend, file, 4L << 20, new AtomicReference<>());
            await().atMost(LONG).until(() -> o.writeTracker() != null && o.writeTracker().isSaved(b, 0));
            WriteTracker t = o.writeTracker();
            assertThat(t.isSaved(b, lastPage)).isFalse();
            CompletableFuture<Void> write = CompletableFuture.runAsync(() -> p.src().ram().writeLong(b, off, ~old),
                    r -> Thread.ofPlatform().name("CPU 9/test").start(r));
            write.get(LONG.toMillis(), TimeUnit.MILLISECONDS);
            assertThat(o.status()).as("long before the snapshot reached that page").isEqualTo(MigrationStatus.ACTIVE);
            // The page was copied out for the write (it is marked saved right after it is released).
            await().atMost(LONG).until(() -> t.isSaved(b, lastPage));
            assertThat(t.waits()).isEqualTo(1);
            assertThat(p.src().ram().readLong(b, off)).as("no write lost").isEqualTo(~old);
            p.params(m -> m.maxBandwidth = 0);
            await().atMost(LONG).until(() -> o.status().isFinal());
            assertThat(o.status()).as(String.valueOf(o.error())).isEqualTo(MigrationStatus.COMPLETED);
            loadInto(p, file);
            assertThat(p.dst().mainBlock().memory().get(ValueLayout.JAVA_LONG, off)).as("the saved page is the old one")
                    .isEqualTo(old);
        }
    }

    @Test
    void aCancelledSnapshotLetsTheGuestRunAndWriteEverywhere() throws Exception {
        Path file = dir.resolve("cancel.mig");
        try (PrecopyTest.Pair p = PrecopyTest.Pair.of(TestMachines.small("ab").withRam(32L << 20))) {
            Outgoing o = snapshot(p, "auto", file, 1L << 20, new AtomicReference<>());
            await().atMost(LONG).until(() -> o.writeTracker() != null && o.writeTracker().isSaved(p.src().mainBlock(), 0));
            p.srcMig().cancel();
            await().atMost(LONG).until(() -> o.status().isFinal());
            assertThat(o.status()).isEqualTo(MigrationStatus.CANCELLED);
            assertThat(p.src().runState()).isEqualTo(RunState.RUNNING);
            // The guest's writes go through everywhere again: its A-B pass moves over the whole range.
            ObjectNode a = TestMachines.fingerprint(p.src());
            await().atMost(LONG).until(() -> !TestMachines.fingerprint(p.src()).get("ram").equals(a.get("ram")));
            long written = p.src().ram().readLong(p.src().mainBlock(), (30L << 20));
            p.src().ram().writeLong(p.src().mainBlock(), (30L << 20), written + 1);
            assertThat(p.src().ram().readLong(p.src().mainBlock(), (30L << 20))).isEqualTo(written + 1);
        }
    }

    @Test
    void aMachineWithALiveDeviceIsRefusedAndRunsOn() throws Exception {
        Path file = dir.resolve("accelerator.mig");
        try (PrecopyTest.Pair p = PrecopyTest.Pair.of(AcceleratorMigrationTest.withAccelerator("acc0,size=2M,dirty-rate=50",
                16L << 20))) {
            Outgoing o = snapshot(p, "auto", file, 0, new AtomicReference<>());
            await().atMost(LONG).until(() -> o.status().isFinal());
            assertThat(o.status()).isEqualTo(MigrationStatus.FAILED);
            assertThat(o.error()).contains("background-snapshot: device acc0").contains("saves its state iteratively");
            assertThat(p.src().runState()).isEqualTo(RunState.RUNNING);
        }
    }

    @Test
    void capabilitiesAreCheckedAsQemuDoes() throws Exception {
        try (PrecopyTest.Pair p = PrecopyTest.Pair.of(TestMachines.small("idle"))) {
            for (Capability c : new Capability[] {Capability.POSTCOPY_RAM, Capability.RETURN_PATH, Capability.MULTIFD,
                    Capability.PAUSE_BEFORE_SWITCHOVER, Capability.AUTO_CONVERGE, Capability.COMPRESS, Capability.XBZRLE,
                    Capability.X_COLO}) {
                assertThatThrownBy(() -> p.src().mainLoop().call(() -> {
                    p.srcMig().setCapabilities(java.util.Map.of(Capability.BACKGROUND_SNAPSHOT, true, c, true));
                    return null;
                }, 10_000)).hasMessageContaining("Background-snapshot is not compatible with " + c.qemuName());
            }
            // QEMU's order: the first incompatible one in its list is named.
            assertThatThrownBy(() -> p.src().mainLoop().call(() -> {
                p.srcMig().setCapabilities(java.util.Map.of(Capability.BACKGROUND_SNAPSHOT, true, Capability.COMPRESS, true,
                        Capability.AUTO_CONVERGE, true));
                return null;
            }, 10_000)).hasMessageContaining("Background-snapshot is not compatible with auto-converge");
            p.src().mainLoop().call(() -> {
                p.srcMig().setCapabilities(java.util.Map.of(Capability.BACKGROUND_SNAPSHOT, true, Capability.EVENTS, true,
                        Capability.MAPPED_RAM, true));
                return null;
            }, 10_000);
            assertThat(p.srcMig().capabilities()).contains(Capability.BACKGROUND_SNAPSHOT, Capability.MAPPED_RAM);
        }
    }

    @Test
    void aBackgroundSnapshotGoesOverASocketToo() throws Exception {
        AtomicReference<ObjectNode> atPause = new AtomicReference<>();
        try (PrecopyTest.Pair p = PrecopyTest.Pair.of(TestMachines.small("ab").withRam(32L << 20))) {
            p.params(m -> m.maxBandwidth = 0);
            p.src().mainLoop().call(() -> {
                p.srcMig().setBackgroundSnapshotObserver(m -> {
                    try {
                        atPause.set(StateDigest.of(m));
                    } catch (java.io.IOException e) {
                        throw new java.io.UncheckedIOException(e);
                    }
                });
                p.srcMig().setCapability(Capability.BACKGROUND_SNAPSHOT, true);
                return null;
            }, 10_000);
            Outgoing o = p.migrate(p.listen("tcp:127.0.0.1:0"));
            await().atMost(LONG).until(() -> o.status().isFinal() && p.dstMig().incoming().status().isFinal());
            assertThat(o.status()).as(String.valueOf(o.error())).isEqualTo(MigrationStatus.COMPLETED);
            assertThat(p.dstMig().incoming().status()).isEqualTo(MigrationStatus.COMPLETED);
            ObjectNode loaded = TestMachines.fingerprint(p.dst());
            assertThat(loaded.get("ram")).isEqualTo(atPause.get().get("ram"));
            assertThat(loaded.get("devices")).isEqualTo(atPause.get().get("devices"));
            assertThat(p.src().runState()).isEqualTo(RunState.RUNNING);
        }
        assertThat(Files.exists(dir)).isTrue();
    }
}
