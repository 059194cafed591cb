package org.livemig.migration;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.livemig.machine.Machine;

/** The startup warm-up: scratch migrations that complete on their own and give way to a real one. */
class WarmUpTest {
    private static final Duration LONG = Duration.ofSeconds(60);

    private static boolean warmUpThreadAlive() {
        return Thread.getAllStackTraces().keySet().stream()
                .anyMatch(t -> t.getName().equals(WarmUp.THREAD_NAME) && t.isAlive());
    }

    @Test
    void itsScratchMigrationsCompleteAndLeaveNothingRunning() throws Exception {
        WarmUp w = WarmUp.start(4); // random, multifd, zero, postcopy
        assertThat(w.await(LONG.toMillis())).isTrue();
        assertThat(w.failure()).isNull();
        assertThat(w.completed()).isEqualTo(4);
        assertThat(w.rounds()).extracting(WarmUp.Round::kind).containsExactly(
                WarmUp.Kind.RANDOM, WarmUp.Kind.MULTIFD, WarmUp.Kind.ZERO, WarmUp.Kind.POSTCOPY);
        assertThat(w.yielded()).isFalse();
        // Then the postcopy backends' placement paths, checked at least (userfaultfd where allowed).
        assertThat(w.placements()).isNotEmpty().allSatisfy(r ->
                assertThat(r.placed()).as(r.backend()).isEqualTo(org.livemig.memory.postcopy.PlacementWarmUp.DEFAULT_PLACEMENTS));
        assertThat(w.placements().get(0).backend()).isEqualTo("checked");
        await().atMost(LONG).until(() -> !warmUpThreadAlive());
        assertThat(Thread.getAllStackTraces().keySet().stream().map(Thread::getName))
                .noneMatch(n -> n.contains("warm-up-src") || n.contains("warm-up-dst"));
    }

    @Test
    void withAcceleratorsItsRandomAndMultifdRoundsCarryOneOverBothFinalPaths() throws Exception {
        WarmUp w = WarmUp.start(5, true); // random, multifd, zero, postcopy, random
        assertThat(w.await(LONG.toMillis())).isTrue();
        assertThat(w.failure()).isNull();
        assertThat(w.rounds()).hasSize(5);
        for (WarmUp.Round r : w.rounds()) {
            boolean device = r.kind() == WarmUp.Kind.RANDOM || r.kind() == WarmUp.Kind.MULTIFD;
            assertThat(r.deviceBytes()).as(r.kind() + ": accelerator bytes")
                    .isGreaterThanOrEqualTo(device ? 4L << 20 : 0).isLessThanOrEqualTo(device ? Long.MAX_VALUE : 0);
            assertThat(r.deviceFinalOverMultifd()).as(r.kind() + ": final state over multifd")
                    .isEqualTo(r.kind() == WarmUp.Kind.MULTIFD);
        }
        await().atMost(LONG).until(() -> !warmUpThreadAlive());
        assertThat(Thread.getAllStackTraces().keySet().stream().map(Thread::getName))
                .noneMatch(n -> n.startsWith(org.livemig.machine.Accelerator.ENGINE_THREAD_PREFIX + "warm-up")
                        || n.startsWith(LoadThreads.THREAD_PREFIX));
    }

    @Test
    void eachScratchMigrationTakesThePathsItIsThereFor() throws Exception {
        WarmUp w = WarmUp.start(WarmUp.Kind.RANDOM, WarmUp.Kind.ZERO, WarmUp.Kind.POSTCOPY, WarmUp.Kind.MULTIFD);
        assertThat(w.await(LONG.toMillis())).isTrue();
        assertThat(w.failure()).isNull();
        assertThat(w.rounds()).hasSize(4);
        long scratchPages = (16L << 20) / org.livemig.memory.RamBlock.PAGE_SIZE;
        for (WarmUp.Round r : w.rounds()) {
            switch (r.kind()) {
                // Random RAM with zero pages among the others: both record kinds, every time, so
                // that the page paths are never compiled having seen only one of them.
                case RANDOM -> {
                    assertThat(r.normalPages()).as("PAGE records").isGreaterThan(scratchPages / 2);
                    // Every fourth page is zeroed; the guest (ab) writes from 1 MiB on, so the
                    // 64 zeroed pages below it stay zero whatever it gets to first.
                    assertThat(r.zeroPages()).as("ZERO records").isGreaterThanOrEqualTo(64);
                }
                case ZERO -> assertThat(r.zeroPages()).isGreaterThanOrEqualTo(scratchPages);
                case MULTIFD -> assertThat(r.normalPages()).as("pages over multifd").isGreaterThan(scratchPages / 2);
                case POSTCOPY -> {
                    assertThat(r.postcopyBytes()).as("bytes sent in postcopy").isPositive();
                    assertThat(r.zeroPages()).as("ZERO records").isPositive();
                }
            }
        }
    }

    @Test
    void aRealMigrationDuringAScratchPostcopyStillCompletesAndVerifies() throws Exception {
        WarmUp.Kind[] postcopies = new WarmUp.Kind[20];
        java.util.Arrays.fill(postcopies, WarmUp.Kind.POSTCOPY);
        WarmUp w = WarmUp.start(postcopies);
        try (PrecopyTest.Pair p = PrecopyTest.Pair.of(TestMachines.small("ab:2000").withFill(Machine.Fill.RANDOM))) {
            w.giveWayTo(p.srcMig()).giveWayTo(p.dstMig());
            // Caught while in postcopy (20 rounds, so that one of them is).
            await().atMost(LONG).pollInterval(Duration.ofMillis(5)).until(() -> {
                Migration s = w.scratchSource();
                return s != null && s.outgoing() != null && s.outgoing().status() == MigrationStatus.POSTCOPY_ACTIVE;
            });
            Outgoing o = p.migrate(p.listen("tcp:127.0.0.1:0"));
            assertThat(w.await(LONG.toMillis())).isTrue();
            assertThat(w.yielded()).isTrue();
            await().atMost(LONG).until(() -> o.status().isFinal());
            assertThat(o.status()).isEqualTo(MigrationStatus.COMPLETED);
            PrecopyTest.assertVerified(p);
        } finally {
            w.await(LONG.toMillis());
        }
    }

    @Test
    void aRealMigrationMakesItGiveWayAndStillCompletesAndVerifies() throws Exception {
        WarmUp w = WarmUp.start(1000);
        try (PrecopyTest.Pair p = PrecopyTest.Pair.of(TestMachines.small("ab:2000").withFill(Machine.Fill.RANDOM))) {
            w.giveWayTo(p.srcMig()).giveWayTo(p.dstMig());
            await().atMost(LONG).until(() -> w.completed() >= 1);
            Outgoing o = p.migrate(p.listen("tcp:127.0.0.1:0"));
            // It stops within one scratch migration's teardown, long before its 1000 rounds.
            assertThat(w.await(LONG.toMillis())).isTrue();
            assertThat(w.yielded()).isTrue();
            assertThat(w.completed()).isLessThan(1000);
            await().atMost(LONG).until(() -> o.status().isFinal());
            assertThat(o.status()).isEqualTo(MigrationStatus.COMPLETED);
            PrecopyTest.assertVerified(p);
        } finally {
            w.await(LONG.toMillis());
        }
    }
}
