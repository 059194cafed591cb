package org.livemig.migration;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.locks.LockSupport;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.livemig.machine.Accelerator;
import org.livemig.machine.Machine;
import org.livemig.machine.RunState;
import org.livemig.migration.multifd.MultifdReceiver;
import org.livemig.migration.multifd.MultifdSender;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * Machines with an accelerator (the iterative device) migrating live while the guest writes its
 * memory: over the main stream, and with its final state over multifd channels loaded by the
 * destination's load threads; both sides' device memory, register state and RAM compared.
 */
class AcceleratorMigrationTest {
    private static final Duration LONG = Duration.ofSeconds(120);

    static Machine.Config withAccelerator(String spec, long ram) {
        return TestMachines.small("ab:20000").withRam(ram).withFill(Machine.Fill.RANDOM)
                .withAccelerators(List.of(Accelerator.Spec.parse(spec)));
    }

    static void multifd(PrecopyTest.Pair p, int channels) throws Exception {
        for (var side : List.of(new Object[] {p.src(), p.srcMig()}, new Object[] {p.dst(), p.dstMig()})) {
            Machine m = (Machine) side[0];
            Migration mig = (Migration) side[1];
            m.mainLoop().call(() -> {
                mig.setCapability(Capability.MULTIFD, true);
                mig.setParameters(x -> x.multifdChannels = channels);
                return null;
            }, 10_000);
        }
    }

    /** Names of live threads with one of the prefixes, sampled until {@code o} ends. */
    static Set<String> sampleThreads(Outgoing o, String... prefixes) {
        Set<String> seen = ConcurrentHashMap.newKeySet();
        Thread.ofPlatform().daemon(true).start(() -> {
            while (!o.status().isFinal()) {
                for (Thread t : Thread.getAllStackTraces().keySet()) {
                    for (String p : prefixes) {
                        if (t.getName().startsWith(p)) {
                            seen.add(t.getName());
                        }
                    }
                }
                LockSupport.parkNanos(1_000_000);
            }
        });
        return seen;
    }

    private static JsonNode device(ObjectNode queryMigrate, String name) {
        for (JsonNode d : queryMigrate.get("x-iterative-devices")) {
            if (d.get("name").asString().equals(name)) {
                return d;
            }
        }
        throw new AssertionError("no device " + name + " in " + queryMigrate);
    }

    /** Migrates {@code cfg} live (multifd with {@code channels} > 0) and checks both sides agree. */
    static Outgoing migrateAndVerify(Machine.Config cfg, int channels) throws Exception {
        try (PrecopyTest.Pair p = PrecopyTest.Pair.of(cfg)) {
            p.params(m -> m.maxBandwidth = 0);
            p.cap(Capability.RETURN_PATH);
            if (channels > 0) {
                multifd(p, channels);
            }
            Accelerator src = p.src().devices().accelerators().getFirst();
            await().atMost(LONG).until(() -> src.writes() > 10); // the guest writes its device
            Outgoing o = p.migrate(p.listen("tcp:127.0.0.1:0"));
            Set<String> threads = sampleThreads(o, LoadThreads.THREAD_PREFIX, MultifdSender.THREAD_PREFIX,
                    MultifdReceiver.THREAD_PREFIX, Accelerator.ENGINE_THREAD_PREFIX);
            await().atMost(LONG).until(() -> o.status().isFinal());
            assertThat(o.status()).as(String.valueOf(o.error())).isEqualTo(MigrationStatus.COMPLETED);
            PrecopyTest.assertVerified(p);
            Accelerator dst = p.dst().devices().accelerators().getFirst();
            assertThat(dst.writes()).as("register state").isEqualTo(src.writes()).isPositive();
            assertThat(dst.postLoads()).isEqualTo(1);
            JsonNode d = device(p.srcMig().queryMigrate(), src.name());
            assertThat(d.get("transferred").asLong()).as("the whole memory went at least once")
                    .isGreaterThanOrEqualTo(src.spec().size());
            assertThat(d.get("pending").asLong()).isZero();
            assertThat(d.get("final-state-over-multifd").asBoolean()).isEqualTo(channels > 0);
            assertThat(threads).contains(Accelerator.ENGINE_THREAD_PREFIX + src.name());
            for (int i = 0; i < channels; i++) {
                assertThat(threads).contains(LoadThreads.THREAD_PREFIX + i, MultifdSender.THREAD_PREFIX + i,
                        MultifdReceiver.THREAD_PREFIX + i);
            }
            assertThat(threads).doesNotContain(LoadThreads.THREAD_PREFIX + channels);
            return o;
        }
    }

    @ParameterizedTest(name = "{0} multifd channels")
    @ValueSource(ints = {0, 2})
    void aSmallAcceleratorWrittenByTheGuestMigratesAndVerifies(int channels) throws Exception {
        migrateAndVerify(withAccelerator("acc0,size=16M,dirty-rate=32", 32L << 20), channels);
    }

    @Test
    void aMachineWithoutAcceleratorsWritesNoNewSection() throws Exception {
        Machine m = TestMachines.booted(TestMachines.small("idle"), RunState.PAUSED);
        try {
            new Migration(m);
            assertThat(m.registry().entries()).noneMatch(e -> e.idstr().endsWith(Accelerator.IDSTR_SUFFIX));
        } finally {
            m.close();
        }
    }
}
