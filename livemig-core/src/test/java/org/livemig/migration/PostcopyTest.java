package org.livemig.migration;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.time.Duration;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.livemig.machine.Machine;
import org.livemig.machine.RunState;
import org.livemig.memory.postcopy.PostcopyBackend;
import org.livemig.memory.RamBlock;
import tools.jackson.databind.node.ObjectNode;

/** Postcopy in one JVM: a guest that precopy cannot converge moves first and pulls its pages. */
class PostcopyTest {
    private static final Duration LONG = Duration.ofSeconds(90);

    private static void assumeBackend(String backend) {
        if (backend.equals("userfaultfd")) {
            PostcopyBackend.Availability a = PostcopyBackend.userfaultfdAvailability();
            Assumptions.assumeTrue(a.available(), "userfaultfd unavailable: " + a.reason());
        }
    }

    private static PrecopyTest.Pair start(Machine.Config cfg, String backend, boolean autostart) throws Exception {
        return start(cfg, backend, autostart, false);
    }

    private static PrecopyTest.Pair start(Machine.Config cfg, String backend, boolean autostart, boolean preempt)
            throws Exception {
        PrecopyTest.Pair p = PrecopyTest.Pair.of(cfg);
        if (preempt) {
            p.cap(Capability.POSTCOPY_PREEMPT);
            p.dst().mainLoop().call(() -> {
                p.dstMig().setCapability(Capability.POSTCOPY_PREEMPT, true);
                return null;
            }, 10_000);
        }
        p.dstMig().setPostcopyBackend(backend);
        p.dstMig().setAutostart(autostart);
        p.params(m -> m.maxBandwidth = 8L << 20);
        p.cap(Capability.POSTCOPY_RAM);
        return p;
    }

    /** Migrates, switches to postcopy after {@code passes} precopy passes, and waits for both sides to complete. */
    private static Outgoing switchAfterPassesAndComplete(PrecopyTest.Pair p, int passes) throws Exception {
        return switchAfterPassesAndComplete(p, passes, o -> { });
    }

    /** As above, {@code started} seeing the outgoing migration before the switch is asked for. */
    private static Outgoing switchAfterPassesAndComplete(PrecopyTest.Pair p, int passes,
                                                         java.util.function.Consumer<Outgoing> started) throws Exception {
        Outgoing o = p.migrate(p.listen("tcp:127.0.0.1:0"));
        started.accept(o);
        await().atMost(LONG).until(() -> o.passes() >= passes);
        p.src().mainLoop().call(() -> {
            p.srcMig().startPostcopy();
            return null;
        }, 10_000);
        await().atMost(LONG).until(() -> o.status().isFinal());
        assertThat(o.status()).as(String.valueOf(o.error())).isEqualTo(MigrationStatus.COMPLETED);
        await().atMost(LONG).until(() -> p.dstMig().incoming().status().isFinal());
        assertThat(p.dstMig().incoming().status()).as(String.valueOf(p.dstMig().incoming().error()))
                .isEqualTo(MigrationStatus.COMPLETED);
        return o;
    }

    @org.junit.jupiter.api.Test
    void startPostcopyIsRefusedBeforeAMigrationAndHarmlessOnceItFinished() throws Exception {
        try (PrecopyTest.Pair p = start(TestMachines.small("idle").withRam(8L << 20), "checked", false)) {
            assertThat(org.assertj.core.api.Assertions.catchThrowable(() -> p.src().mainLoop().call(() -> {
                p.srcMig().startPostcopy();
                return null;
            }, 10_000))).hasMessageContaining("Postcopy must be started after migration has been started");
            p.params(m -> m.maxBandwidth = 0);
            Outgoing o = p.migrate(p.listen("tcp:127.0.0.1:0"));
            await().atMost(LONG).until(() -> o.status().isFinal());
            assertThat(o.status()).isEqualTo(MigrationStatus.COMPLETED);
            // A client cannot know precopy just finished: as QEMU, that is not an error.
            p.src().mainLoop().call(() -> {
                p.srcMig().startPostcopy();
                return null;
            }, 10_000);
            assertThat(o.status()).isEqualTo(MigrationStatus.COMPLETED);
        }
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"checked", "userfaultfd"})
    void pausedDestinationReceivesEveryPageAndDevice(String backend) throws Exception {
        assumeBackend(backend);
        // Random contents make the first pass a real one (16 MiB at 8 MiB/s), after which the
        // guest has dirtied everything again: precopy cannot finish before the switch.
        try (PrecopyTest.Pair p = start(TestMachines.small("random-writes:100").withRam(16L << 20)
                .withFill(Machine.Fill.RANDOM), backend, false)) {
            Outgoing o = switchAfterPassesAndComplete(p, 1);
            ObjectNode fs = TestMachines.fingerprint(p.src());
            ObjectNode fd = TestMachines.fingerprint(p.dst());
            assertThat(fd.get("ram")).isEqualTo(fs.get("ram"));
            assertThat(fd.get("devices")).isEqualTo(fs.get("devices"));
            assertThat(p.srcMig().queryMigrate().get("ram").get("postcopy-bytes").asLong()).isPositive();
            assertThat(p.src().runState()).isEqualTo(RunState.POSTMIGRATE);
        }
    }

    /**
     * With no page requests (a paused guest) the background stream alone finishes postcopy, also
     * under a max-postcopy-bandwidth smaller than the writer's buffer per rate window.
     */
    @org.junit.jupiter.api.Test
    void aLowPostcopyBandwidthLimitStillFinishesWithoutRequests() throws Exception {
        try (PrecopyTest.Pair p = start(TestMachines.small("random-writes:100").withRam(8L << 20)
                .withFill(Machine.Fill.RANDOM), "checked", false)) {
            p.params(m -> m.maxPostcopyBandwidth = 4L << 20);
            Outgoing o = switchAfterPassesAndComplete(p, 1);
            assertThat(o.ramStats().postcopyRequests.get()).isZero();
            assertThat(TestMachines.fingerprint(p.dst()).get("ram")).isEqualTo(TestMachines.fingerprint(p.src()).get("ram"));
        }
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"checked", "userfaultfd"})
    void runningDestinationPullsPagesOnDemandAndKeepsTheAbProperty(String backend) throws Exception {
        assumeBackend(backend);
        // ab at 25,000 pages/s dirties ~100 MB/s against 8 MiB/s of bandwidth: it never converges.
        try (PrecopyTest.Pair p = start(TestMachines.small("ab:25000").withRam(32L << 20), backend, true)) {
            // Background pages trickle (4 MiB/s) so that the running guest must ask for the pages it touches.
            p.params(m -> m.maxPostcopyBandwidth = 4L << 20);
            Outgoing o = switchAfterPassesAndComplete(p, 2);
            assertThat(p.dstMig().incoming().postcopyBackendName()).isEqualTo(backend);
            assertThat(o.ramStats().postcopyRequests.get()).isPositive();
            assertThat(p.dst().runState()).isEqualTo(RunState.RUNNING);
            p.dst().mainLoop().runAndWait(() -> p.dst().vmStop(RunState.PAUSED));
            ObjectNode fd = TestMachines.fingerprint(p.dst());
            assertThat(fd.get("ab-check").get("ok").asBoolean()).as(fd.toString()).isTrue();
        }
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"checked", "userfaultfd"})
    void preemptChannelCarriesRequestedPages(String backend) throws Exception {
        assumeBackend(backend);
        try (PrecopyTest.Pair p = start(TestMachines.small("ab:25000").withRam(32L << 20), backend, true, true)) {
            p.params(m -> m.maxPostcopyBandwidth = 4L << 20);
            // The preempt channel is connected before the guest stops, not inside the switch's pause.
            var connectedAtSwitch = new java.util.concurrent.atomic.AtomicReference<Boolean>();
            Outgoing o = switchAfterPassesAndComplete(p, 2, out -> out.statusMachine().addListener((from, to) -> {
                if (to == MigrationStatus.POSTCOPY_ACTIVE) {
                    connectedAtSwitch.compareAndSet(null, out.hasPreemptConnection());
                }
            }));
            assertThat(connectedAtSwitch.get()).as("preempt channel connected when the guest stopped").isTrue();
            assertThat(o.realTimeRequestThreads()).as("no real-time threads unless asked for").isZero();
            assertThat(p.dstMig().incoming().realTimeRequestThreads()).isZero();
            assertThat(o.ramStats().postcopyRequests.get()).isPositive();
            assertThat(p.dstMig().incoming().postcopyFaultLatencies()).isNotEmpty();
            assertThat(p.dstMig().incoming().hasPreemptChannel()).isTrue();
            p.dst().mainLoop().runAndWait(() -> p.dst().vmStop(RunState.PAUSED));
            ObjectNode fd = TestMachines.fingerprint(p.dst());
            assertThat(fd.get("ab-check").get("ok").asBoolean()).as(fd.toString()).isTrue();
        }
    }

    /**
     * The checked backend's vCPUs ask for their own pages, sparing a wakeup of mig/dst/fault; a
     * thread holding the BQL (a device touching guest RAM) never does socket IO, so its faults
     * go through mig/dst/fault. Both get their pages.
     */
    @org.junit.jupiter.api.Test
    void checkedGuestThreadsAskForTheirOwnPagesExceptUnderTheBql() throws Exception {
        try (PrecopyTest.Pair p = start(TestMachines.small("random-writes:100").withRam(16L << 20)
                .withFill(Machine.Fill.RANDOM), "checked", false)) {
            p.params(m -> m.maxPostcopyBandwidth = 2L << 20);
            Outgoing o = p.migrate(p.listen("tcp:127.0.0.1:0"));
            await().atMost(LONG).until(() -> o.passes() >= 1);
            p.src().mainLoop().call(() -> {
                p.srcMig().startPostcopy();
                return null;
            }, 10_000);
            Incoming in = p.dstMig().incoming();
            await().atMost(LONG).until(() -> in.status() == MigrationStatus.POSTCOPY_ACTIVE || in.status().isFinal());
            assertThat(in.status()).isEqualTo(MigrationStatus.POSTCOPY_ACTIVE);
            PostcopyBackend backend = in.postcopyBackend();
            RamBlock b = p.dst().ram().blocks().stream().max(java.util.Comparator.comparingLong(RamBlock::usedLength))
                    .orElseThrow();

            await().atMost(LONG).until(() -> {
                p.dst().mainLoop().call(() -> readLastMissingPage(p.dst(), backend, b), 30_000);
                return in.postcopyRequestSenders()[1] >= 1;
            });
            assertThat(in.postcopyRequestSenders()[0]).as("requests sent by a thread holding the BQL").isZero();

            await().atMost(LONG).until(() -> {
                readLastMissingPage(p.dst(), backend, b);
                return in.postcopyRequestSenders()[0] >= 1;
            });

            await().atMost(LONG).until(() -> o.status().isFinal() && in.status().isFinal());
            assertThat(o.status()).as(String.valueOf(o.error())).isEqualTo(MigrationStatus.COMPLETED);
            assertThat(in.status()).as(String.valueOf(in.error())).isEqualTo(MigrationStatus.COMPLETED);
            assertThat(TestMachines.fingerprint(p.dst()).get("ram")).isEqualTo(TestMachines.fingerprint(p.src()).get("ram"));
        }
    }

    /** Reads the last page of {@code b} not yet received, as a guest would; the page index, or -1 when none is missing. */
    private static long readLastMissingPage(Machine m, PostcopyBackend backend, RamBlock b) {
        for (long page = b.pageCount() - 1; page >= 0; page--) {
            if (!backend.receivedMap(b).isReceived(page)) {
                m.ram().readLong(b, page << RamBlock.PAGE_BITS);
                return page;
            }
        }
        return -1;
    }

    /**
     * With a request priority, mig/src/rp_thr, mig/dst/fault and mig/dst/preempt run in
     * SCHED_FIFO where the process may (root in CI), and the migration is the same either way.
     */
    @org.junit.jupiter.api.Test
    void requestThreadsRunRealTimeWhenAskedAndAllowed() throws Exception {
        java.util.concurrent.CompletableFuture<String> probe = new java.util.concurrent.CompletableFuture<>();
        Thread.ofPlatform().start(() -> probe.complete(org.livemig.memory.ThreadScheduling.useFifo(1)));
        boolean allowed = probe.get(10, java.util.concurrent.TimeUnit.SECONDS) == null;
        try (PrecopyTest.Pair p = start(TestMachines.small("ab:25000").withRam(16L << 20), "checked", true, true)) {
            p.params(m -> m.maxPostcopyBandwidth = 4L << 20);
            p.srcMig().setPostcopyRequestPriority(10);
            p.dstMig().setPostcopyRequestPriority(10);
            Outgoing o = switchAfterPassesAndComplete(p, 2);
            assertThat(o.realTimeRequestThreads()).as("mig/src/rp_thr (allowed: %s)", allowed).isEqualTo(allowed ? 1 : 0);
            assertThat(p.dstMig().incoming().realTimeRequestThreads()).as("mig/dst/fault and mig/dst/preempt")
                    .isEqualTo(allowed ? 2 : 0);
            p.dst().mainLoop().runAndWait(() -> p.dst().vmStop(RunState.PAUSED));
            ObjectNode fd = TestMachines.fingerprint(p.dst());
            assertThat(fd.get("ab-check").get("ok").asBoolean()).as(fd.toString()).isTrue();
        }
        try (Machine m = new Machine(TestMachines.small("idle").withRam(1L << 20))) {
            Migration mig = new Migration(m);
            for (int bad : new int[] {-1, 100}) {
                assertThat(org.assertj.core.api.Assertions.catchThrowable(() -> mig.setPostcopyRequestPriority(bad)))
                        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("0 (off) to 99");
            }
        }
    }
}
