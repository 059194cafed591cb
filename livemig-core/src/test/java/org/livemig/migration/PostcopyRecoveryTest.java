package org.livemig.migration;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.stream.Stream;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;
import org.livemig.machine.Machine;
import org.livemig.machine.RunState;
import org.livemig.memory.postcopy.PostcopyBackend;
import org.livemig.transport.FaultSpec;
import tools.jackson.databind.node.ObjectNode;

/**
 * Postcopy recovery: a channel that breaks while the guest runs on the destination pauses both
 * sides (postcopy-paused) instead of failing; migrate-recover and a resumed migrate on a new
 * address exchange RECV_BITMAP and RESUME_ACK, and the migration completes with every page the
 * destination guest did not write since the switch equal to the source's.
 */
class PostcopyRecoveryTest {
    private static final Duration LONG = Duration.ofSeconds(90);

    /** Where the channel breaks. */
    enum Cut {
        /** The source's main stream, in the middle of the background pages. */
        MAIN_STREAM,
        /** The destination's return path, after some page requests. */
        RETURN_PATH,
        /** migrate-pause on the source. */
        SOURCE_PAUSE,
        /** migrate-pause on the destination. */
        DESTINATION_PAUSE
    }

    /** Statuses one side went through, in order. */
    static final class Statuses implements MigrationEvents {
        final List<MigrationStatus> seen = new CopyOnWriteArrayList<>();

        @Override
        public void statusChanged(MigrationStatus status) {
            seen.add(status);
        }

        @Override
        public void pass(long pass) {}

        long count(MigrationStatus s) {
            return seen.stream().filter(x -> x == s).count();
        }
    }

    record Run(PrecopyTest.Pair p, Statuses src, Statuses dst, Outgoing out) {}

    private static void assumeBackend(String backend) {
        if (backend.equals("userfaultfd")) {
            PostcopyBackend.Availability a = PostcopyBackend.userfaultfdAvailability();
            Assumptions.assumeTrue(a.available(), "userfaultfd unavailable: " + a.reason());
        }
    }

    static Stream<Arguments> backendsAndCuts() {
        return Stream.of("checked", "userfaultfd")
                .flatMap(b -> Stream.of(Cut.values()).map(c -> Arguments.of(b, c)));
    }

    /**
     * A running guest writing random pages slowly (so that most pages stay as the source sent
     * them, and can be checked), 16 MiB of random RAM, postcopy started at once, background
     * pages at 4 MiB/s: postcopy lasts about four seconds and the guest asks for pages.
     */
    private static Run start(String backend, boolean preempt, FaultSpec srcFaults, FaultSpec dstFaults) throws Exception {
        return start(backend, preempt, srcFaults, dstFaults, p -> { });
    }

    /** As above, {@code setup} seeing both machines before the migration starts (TLS objects and parameters). */
    static Run start(String backend, boolean preempt, FaultSpec srcFaults, FaultSpec dstFaults,
            ThrowingConsumer<PrecopyTest.Pair> setup) throws Exception {
        Machine.Config cfg = TestMachines.small("random-writes:2").withRam(16L << 20).withFill(Machine.Fill.RANDOM);
        PrecopyTest.Pair p = PrecopyTest.Pair.of(cfg);
        Statuses src = new Statuses();
        Statuses dst = new Statuses();
        p.srcMig().addListener(src);
        p.dstMig().addListener(dst);
        p.dstMig().setPostcopyBackend(backend);
        p.dstMig().setAutostart(true);
        if (preempt) {
            p.cap(Capability.POSTCOPY_PREEMPT);
            p.dst().mainLoop().call(() -> {
                p.dstMig().setCapability(Capability.POSTCOPY_PREEMPT, true);
                return null;
            }, 10_000);
        }
        p.params(m -> {
            m.maxBandwidth = 8L << 20;
            m.maxPostcopyBandwidth = 4L << 20;
        });
        p.cap(Capability.POSTCOPY_RAM);
        p.srcMig().setFaultInjection(srcFaults, FaultSpec.NONE);
        p.dstMig().setFaultInjection(FaultSpec.NONE, dstFaults);
        setup.accept(p);
        Outgoing o = p.migrate(p.listen("tcp:127.0.0.1:0"));
        await().atMost(LONG).until(() -> o.status() == MigrationStatus.ACTIVE || o.status().isFinal());
        p.src().mainLoop().call(() -> {
            p.srcMig().startPostcopy();
            return null;
        }, 10_000);
        return new Run(p, src, dst, o);
    }

    /** Waits until both sides have paused {@code times} times in all and are paused now. */
    /** A setup step that may throw. */
    interface ThrowingConsumer<T> {
        void accept(T t) throws Exception;
    }

    static void awaitBothPaused(Run r, int times) {
        await().atMost(LONG).until(() -> r.src.count(MigrationStatus.POSTCOPY_PAUSED) >= times
                && r.dst.count(MigrationStatus.POSTCOPY_PAUSED) >= times
                && r.out.status() == MigrationStatus.POSTCOPY_PAUSED
                && r.p.dstMig().incoming().status() == MigrationStatus.POSTCOPY_PAUSED);
    }

    /** migrate-recover on a new port, then migrate resume=true to it. */
    static void recover(Run r) throws Exception {
        String uri = r.p.dstMig().incoming().boundAddress().uri();
        r.p.dstMig().recover("tcp:127.0.0.1:0");
        await().atMost(LONG).until(() -> !r.p.dstMig().incoming().boundAddress().uri().equals(uri));
        String next = r.p.dstMig().incoming().boundAddress().uri();
        r.p.src().mainLoop().call(() -> r.p.srcMig().resume(next), 10_000);
    }

    static void awaitCompletedAndVerify(Run r) throws Exception {
        await().atMost(LONG).until(() -> r.out.status().isFinal());
        assertThat(r.out.status()).as(String.valueOf(r.out.error())).isEqualTo(MigrationStatus.COMPLETED);
        Incoming in = r.p.dstMig().incoming();
        await().atMost(LONG).until(() -> in.status().isFinal());
        assertThat(in.status()).as(String.valueOf(in.error())).isEqualTo(MigrationStatus.COMPLETED);
        assertThat(r.p.dst().runState()).isEqualTo(RunState.RUNNING);
        assertThat(r.p.src().runState()).isEqualTo(RunState.POSTMIGRATE);
        r.p.dst().mainLoop().runAndWait(() -> r.p.dst().vmStop(RunState.PAUSED));
        ObjectNode ps = r.p.src().mainLoop().call(() -> StateDigest.pages(r.p.src()), 60_000);
        ObjectNode pd = r.p.dst().mainLoop().call(() -> StateDigest.pages(r.p.dst()), 60_000);
        long checked = 0;
        for (var block : r.p.src().ram().blocks()) {
            String hs = ps.get("page-hashes").get(block.name()).asString();
            String hd = pd.get("page-hashes").get(block.name()).asString();
            java.util.BitSet written = java.util.BitSet.valueOf(java.util.HexFormat.of()
                    .parseHex(pd.get("written-here").get(block.name()).asString()));
            for (int page = 0; page < block.pageCount(); page++) {
                if (!written.get(page)) {
                    assertThat(hd.substring(page * 16, page * 16 + 16))
                            .as("block %s page %d (not written on the destination)", block.name(), page)
                            .isEqualTo(hs.substring(page * 16, page * 16 + 16));
                    checked++;
                }
            }
        }
        // The guest writes slowly: most pages are still the source's and were checked.
        assertThat(checked).isGreaterThan(r.p.src().ram().totalSize() / 4096 / 4);
    }

    static void assertWentThrough(Statuses s, int pauses) {
        // Listeners run just after the status changes, on the thread that changed it.
        await().atMost(LONG).until(() -> !s.seen.isEmpty() && s.seen.getLast().isFinal());
        assertThat(s.count(MigrationStatus.POSTCOPY_PAUSED)).isEqualTo(pauses);
        assertThat(s.count(MigrationStatus.POSTCOPY_RECOVER)).isEqualTo(pauses);
        assertThat(s.seen.getLast()).isEqualTo(MigrationStatus.COMPLETED);
        assertThat(s.seen).doesNotContain(MigrationStatus.FAILED);
    }

    @ParameterizedTest(name = "{0}, {1}")
    @MethodSource("backendsAndCuts")
    void cutPausesBothSidesAndRecoveryCompletes(String backend, Cut cut) throws Exception {
        assumeBackend(backend);
        FaultSpec srcFaults = cut == Cut.MAIN_STREAM
                ? FaultSpec.builder().cut(FaultSpec.Direction.OUT, 3L << 20).build() : FaultSpec.NONE;
        // Return path: PONGs are 8 bytes, page requests 16 to 26; 400 bytes is a few dozen requests in.
        FaultSpec dstFaults = cut == Cut.RETURN_PATH
                ? FaultSpec.builder().cut(FaultSpec.Direction.OUT, 400).build() : FaultSpec.NONE;
        Run r = start(backend, false, srcFaults, dstFaults);
        try (PrecopyTest.Pair p = r.p) {
            if (cut == Cut.SOURCE_PAUSE || cut == Cut.DESTINATION_PAUSE) {
                await().atMost(LONG).until(() -> p.dstMig().incoming().status() == MigrationStatus.POSTCOPY_ACTIVE
                        && r.out.status() == MigrationStatus.POSTCOPY_ACTIVE);
                (cut == Cut.SOURCE_PAUSE ? p.srcMig() : p.dstMig()).pause();
            }
            awaitBothPaused(r, 1);
            assertThat(p.src().runState()).isNotEqualTo(RunState.RUNNING);
            p.srcMig().setFaultInjection(FaultSpec.NONE, FaultSpec.NONE);
            p.dstMig().setFaultInjection(FaultSpec.NONE, FaultSpec.NONE);
            recover(r);
            awaitCompletedAndVerify(r);
            assertWentThrough(r.src, 1);
            assertWentThrough(r.dst, 1);
            assertThat(r.out.ramStats().postcopyRequests.get()).isPositive();
        }
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"checked", "userfaultfd"})
    void secondCutDuringRecoveryPausesAgainAndTheNextRecoveryCompletes(String backend) throws Exception {
        assumeBackend(backend);
        Run r = start(backend, false, FaultSpec.builder().cut(FaultSpec.Direction.OUT, 3L << 20).build(), FaultSpec.NONE);
        try (PrecopyTest.Pair p = r.p) {
            awaitBothPaused(r, 1);
            // The recovery channel breaks in the middle of the destination's received bitmap.
            p.srcMig().setFaultInjection(FaultSpec.builder().cut(FaultSpec.Direction.IN, 100).build(), FaultSpec.NONE);
            recover(r);
            awaitBothPaused(r, 2);
            p.srcMig().setFaultInjection(FaultSpec.NONE, FaultSpec.NONE);
            recover(r);
            awaitCompletedAndVerify(r);
            assertWentThrough(r.src, 2);
            assertWentThrough(r.dst, 2);
        }
    }

    @Test
    void preemptChannelIsReconnectedOnRecovery() throws Exception {
        Run r = start("checked", true, FaultSpec.builder().cut(FaultSpec.Direction.OUT, 3L << 20).build(), FaultSpec.NONE);
        try (PrecopyTest.Pair p = r.p) {
            awaitBothPaused(r, 1);
            p.srcMig().setFaultInjection(FaultSpec.NONE, FaultSpec.NONE);
            recover(r);
            awaitCompletedAndVerify(r);
            assertWentThrough(r.src, 1);
            assertThat(p.dstMig().incoming().hasPreemptChannel()).isTrue();
        }
    }

    @Test
    void recoveryCommandsAnswerAsQemuOutsideAPausedPostcopy() throws Exception {
        Run r = start("checked", false, FaultSpec.NONE, FaultSpec.NONE);
        try (PrecopyTest.Pair p = r.p) {
            await().atMost(LONG).until(() -> r.out.status() == MigrationStatus.POSTCOPY_ACTIVE || r.out.status().isFinal());
            assertThatThrownBy(() -> p.dstMig().recover("tcp:127.0.0.1:0"))
                    .hasMessage("Migrate recover can only be run when postcopy is paused.");
            assertThatThrownBy(() -> p.src().mainLoop().call(() -> p.srcMig().resume("tcp:127.0.0.1:1"), 10_000))
                    .hasMessageContaining("Cannot resume if there is no paused migration");
            await().atMost(LONG).until(() -> r.out.status().isFinal());
            assertThatThrownBy(() -> p.srcMig().pause())
                    .hasMessage("migrate-pause is currently only supported during postcopy-active state");
        }
    }

    @Test
    void cancelWhilePausedEndsTheMigrationAndTheSourceNeverRunsTheGuestAgain() throws Exception {
        Run r = start("checked", false, FaultSpec.builder().cut(FaultSpec.Direction.OUT, 3L << 20).build(), FaultSpec.NONE);
        try (PrecopyTest.Pair p = r.p) {
            awaitBothPaused(r, 1);
            p.srcMig().cancel();
            await().atMost(LONG).until(() -> r.out.status().isFinal());
            assertThat(r.out.status()).isEqualTo(MigrationStatus.CANCELLED);
            assertThat(p.src().runState()).isEqualTo(RunState.PAUSED);
            // The destination keeps its guest and stays paused, ready for a recovery.
            assertThat(p.dstMig().incoming().status()).isEqualTo(MigrationStatus.POSTCOPY_PAUSED);
        }
    }
}
