package org.livemig.machine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import java.time.Duration;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

class MachineTest {
    private Machine machine;

    private Machine start(String workload) {
        machine = new Machine(Machine.Config.defaults().withRam(8L << 20).withVcpus(2).withWorkload(workload).withBlobSize(4096));
        machine.mainLoop().runAndWait(() -> machine.boot(RunState.RUNNING));
        return machine;
    }

    @AfterEach
    void close() {
        if (machine != null) {
            machine.close();
        }
    }

    private long instructions() {
        long[] n = new long[1];
        machine.mainLoop().runAndWait(() -> {
            machine.cpuSynchronizeAllStates();
            for (Vcpu v : machine.vcpus()) {
                n[0] += v.state().instructions;
            }
        });
        return n[0];
    }

    @Test
    void threadsAreNamedAsQemuNamesThem() {
        start("ab");
        assertThat(machine.mainLoop().thread().getName()).isEqualTo("main");
        assertThat(machine.vcpus()).extracting(v -> v.thread().getName())
                .containsExactly("CPU 0/livemig", "CPU 1/livemig");
    }

    @Test
    void vcpusRunAndStopAtSafePoints() {
        start("ab");
        await().atMost(Duration.ofSeconds(10)).until(() -> instructions() > 1000);
        machine.mainLoop().runAndWait(() -> machine.vmStop(RunState.PAUSED));
        assertThat(machine.runState()).isEqualTo(RunState.PAUSED);
        long a = instructions();
        // Stopped vCPUs retire nothing: take several looks across main-loop round trips.
        for (int i = 0; i < 20; i++) {
            assertThat(instructions()).isEqualTo(a);
        }
        machine.mainLoop().runAndWait(machine::vmStart);
        await().atMost(Duration.ofSeconds(10)).until(() -> instructions() > a);
    }

    @Test
    void abGuestKeepsTheAbPropertyWhenStopped() {
        start("ab");
        await().atMost(Duration.ofSeconds(10)).until(() -> instructions() > 5000);
        machine.mainLoop().runAndWait(() -> machine.vmStop(RunState.PAUSED));
        AbChecker.Result r = AbChecker.check(machine.mainBlock(), (Workload.Ab) machine.workload(), 2);
        assertThat(r.ok()).as(r.detail()).isTrue();
    }

    @Test
    void abCheckerCatchesAStalePage() {
        start("ab");
        await().atMost(Duration.ofSeconds(10)).until(() -> instructions() > 5000);
        machine.mainLoop().runAndWait(() -> machine.vmStop(RunState.PAUSED));
        long[] slice = ((Workload.Ab) machine.workload()).slice(machine.mainBlock().usedLength(), 0, 2);
        long mid = (slice[0] + slice[1]) / 2;
        long off = mid << 12;
        byte v = machine.ram().readByte(machine.mainBlock(), off);
        machine.ram().writeByte(machine.mainBlock(), off, (byte) (v + 5));
        assertThat(AbChecker.check(machine.mainBlock(), (Workload.Ab) machine.workload(), 2).ok()).isFalse();
    }

    @Test
    void runOnCpuRunsOnTheVcpuThreadWithTheBql() {
        start("idle");
        AtomicReference<String> where = new AtomicReference<>();
        AtomicReference<Boolean> held = new AtomicReference<>();
        machine.mainLoop().runAndWait(() -> machine.runOnCpu(machine.vcpus().get(1), () -> {
            where.set(Thread.currentThread().getName());
            held.set(machine.bql().isHeldByCurrentThread());
        }));
        assertThat(where.get()).isEqualTo("CPU 1/livemig");
        assertThat(held.get()).isTrue();
    }

    @Test
    void runOnAllCpusQueuesOnEveryVcpuBeforeWaitingAndReportsAFailure() {
        machine = new Machine(Machine.Config.defaults().withRam(8L << 20).withVcpus(4).withWorkload("idle").withBlobSize(4096));
        machine.mainLoop().runAndWait(() -> machine.boot(RunState.RUNNING));
        java.util.Set<String> where = java.util.concurrent.ConcurrentHashMap.newKeySet();
        java.util.List<Integer> queuedOrRunSeen = new java.util.concurrent.CopyOnWriteArrayList<>();
        AtomicReference<Boolean> held = new AtomicReference<>(true);
        machine.mainLoop().runAndWait(() -> machine.runOnAllCpus(v -> {
            where.add(Thread.currentThread().getName());
            held.compareAndSet(true, machine.bql().isHeldByCurrentThread());
            // every vCPU's work is queued before the first runs: the tasks already run plus
            // this one, plus the work still queued on the others, is all four
            int pending = 0;
            for (Vcpu o : machine.vcpus()) {
                pending += o.pendingWork();
            }
            queuedOrRunSeen.add(where.size() + pending);
        }));
        assertThat(where).containsExactlyInAnyOrder("CPU 0/livemig", "CPU 1/livemig", "CPU 2/livemig", "CPU 3/livemig");
        assertThat(held.get()).isTrue();
        assertThat(queuedOrRunSeen).containsOnly(4);
        assertThatThrownBy(() -> machine.mainLoop().runAndWait(() -> machine.runOnAllCpus(v -> {
            if (v.index() == 2) {
                throw new IllegalArgumentException("bad register");
            }
        }))).hasMessageContaining("run_on_cpu task failed on CPU 2/livemig").hasRootCauseMessage("bad register");
    }

    @Test
    void runOnAllCpusOnStoppedVcpusRunsOnTheCallerAndTheyGoOnFromTheRegistersItSet() {
        start("ab");
        await().atMost(Duration.ofSeconds(10)).until(() -> instructions() > 1000);
        java.util.Set<String> where = java.util.concurrent.ConcurrentHashMap.newKeySet();
        machine.mainLoop().runAndWait(() -> {
            machine.vmStop(RunState.PAUSED);
            machine.runOnAllCpus(v -> where.add(Thread.currentThread().getName()));
            machine.cpuSynchronizeAllStates();
            for (Vcpu v : machine.vcpus()) {
                v.state().instructions = 0; // the registers a load would hand the stopped vCPUs
            }
            machine.cpuSynchronizeAllPostInit();
        });
        assertThat(where).containsExactly("main");
        assertThat(instructions()).as("post-init on stopped vCPUs set their live registers").isZero();
        machine.mainLoop().runAndWait(machine::vmStart);
        await().atMost(Duration.ofSeconds(10)).until(() -> instructions() > 0);
    }

    @Test
    void bqlAssertionsFailFast() {
        start("idle");
        assertThatThrownBy(() -> machine.vmStop(RunState.PAUSED)).isInstanceOf(AssertionError.class)
                .hasMessageContaining("BQL not held");
        assertThatThrownBy(() -> machine.setRunState(RunState.PAUSED)).isInstanceOf(AssertionError.class);
        machine.bql().lock();
        try {
            assertThatThrownBy(() -> machine.bql().withoutHeld(false, () -> { }))
                    .isInstanceOf(AssertionError.class).hasMessageContaining("must not be");
        } finally {
            machine.bql().unlock();
        }
    }

    @Test
    void withHeldAndWithoutHeldTakeAndDropTheLock() {
        Bql bql = new Bql();
        bql.withHeld(false, () -> assertThat(bql.isHeldByCurrentThread()).isTrue());
        assertThat(bql.isHeldByCurrentThread()).isFalse();
        bql.lock();
        try {
            bql.withoutHeld(true, () -> assertThat(bql.isHeldByCurrentThread()).isFalse());
            assertThat(bql.isHeldByCurrentThread()).isTrue();
            bql.withHeld(true, () -> assertThat(bql.isHeldByCurrentThread()).isTrue());
        } finally {
            bql.unlock();
        }
    }

    @Test
    void mainLoopRunsBottomHalvesAndTimersWithTheBql() {
        start("idle");
        AtomicReference<Boolean> inBh = new AtomicReference<>();
        machine.mainLoop().schedule(() -> inBh.set(machine.bql().isHeldByCurrentThread() && machine.mainLoop().inMainThread()));
        await().atMost(Duration.ofSeconds(5)).until(() -> Boolean.TRUE.equals(inBh.get()));
        java.util.concurrent.atomic.AtomicInteger ticks = new java.util.concurrent.atomic.AtomicInteger();
        MainLoop.Timer t = machine.mainLoop().addPeriodicTimer(5, ticks::incrementAndGet);
        await().atMost(Duration.ofSeconds(5)).until(() -> ticks.get() >= 10);
        t.cancel();
    }

    @Test
    void throttleSlowsTheGuest() {
        start("ab");
        machine.setThrottlePercent(99);
        assertThat(machine.throttlePercent()).isEqualTo(99);
        machine.setThrottlePercent(0);
        assertThat(machine.throttlePercent()).isZero();
    }

    @Test
    void workloadSpecsParse() {
        assertThat(Workload.parse("ab")).isEqualTo(new Workload.Ab(0, Workload.Ab.DEFAULT_START, Workload.Ab.DEFAULT_END));
        assertThat(Workload.parse("ab:25000").spec()).isEqualTo("ab:25000");
        assertThat(Workload.parse("random-writes:100").spec()).isEqualTo("random-writes:100");
        assertThat(Workload.parse("idle").spec()).isEqualTo("idle");
        assertThatThrownBy(() -> Workload.parse("spin")).hasMessageContaining("unknown workload 'spin'");
        assertThatThrownBy(() -> Workload.parse("ab:x")).hasMessageContaining("bad number");
    }
}
