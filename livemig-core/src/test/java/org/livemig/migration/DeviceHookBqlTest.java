package org.livemig.migration;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.livemig.machine.Machine;
import org.livemig.machine.RunState;
import org.livemig.stream.MigrationFile;
import org.livemig.vmstate.LoadHook;
import org.livemig.vmstate.VMStateDescription;

/**
 * The load path without the BQL ({@code loadvmState(file, false)}, as mig/dst/main runs it) takes
 * the lock only for the load steps a device declares need it, for devices in FULL sections and
 * for an accelerator's register state alike.
 */
class DeviceHookBqlTest {
    /** Records whether its thread held the BQL at each step. */
    static final class Probe {
        Machine machine;
        long value = 42;
        volatile Boolean preLoad;
        volatile Boolean field;
        volatile Boolean postLoad;
    }

    private static VMStateDescription<Probe> probe(String name, LoadHook... bqlFor) {
        VMStateDescription.Builder<Probe> b = VMStateDescription.<Probe>builder(name)
                .uint64("value", p -> p.value, (p, v) -> {
                    p.value = v;
                    p.field = p.machine.bql().isHeldByCurrentThread();
                })
                .preLoad(p -> p.preLoad = p.machine.bql().isHeldByCurrentThread())
                .postLoad((p, v) -> p.postLoad = p.machine.bql().isHeldByCurrentThread());
        if (bqlFor != null) {
            b.bqlOnlyFor(bqlFor);
        }
        return b.build();
    }

    private static final VMStateDescription<Probe> POST_ONLY = probe("probe-post", LoadHook.POST_LOAD);
    private static final VMStateDescription<Probe> DEFAULT = probe("probe-default", (LoadHook[]) null);

    private static Machine machine(String name, Probe postOnly, Probe dflt) {
        Machine m = TestMachines.booted(TestMachines.small("idle").withName(name).withRam(8L << 20)
                .withAccelerators(java.util.List.of(org.livemig.machine.Accelerator.Spec.parse("acc0,size=1M"))),
                RunState.PAUSED);
        postOnly.machine = m;
        dflt.machine = m;
        m.registry().registerDevice("probe-post", 0, POST_ONLY, postOnly);
        m.registry().registerDevice("probe-default", 0, DEFAULT, dflt);
        return m;
    }

    @Test
    void theLoadThreadTakesTheBqlOnlyForTheStepsThatNeedIt() throws Exception {
        Probe sp = new Probe();
        Probe sd = new Probe();
        Probe dp = new Probe();
        Probe dd = new Probe();
        Machine src = machine("src", sp, sd);
        Machine dst = machine("dst", dp, dd);
        try {
            new Migration(src);
            new Migration(dst);
            byte[] stream = src.mainLoop().call(() -> {
                MigrationFile f = MigrationFile.toMemory();
                SaveVm.saveSnapshot(src, f, new RamStats());
                return f.toByteArray();
            }, 60_000);
            AtomicReference<Throwable> failure = new AtomicReference<>();
            Thread t = Thread.ofPlatform().name("mig/dst/main").start(() -> {
                try {
                    new LoadVm(dst, new RamStats(), null).loadvmState(MigrationFile.ofBytes(stream), false);
                } catch (Throwable e) {
                    failure.set(e);
                }
            });
            t.join(60_000);
            assertThat(failure.get()).isNull();
            assertThat(dp.preLoad).isFalse();
            assertThat(dp.field).isFalse();
            assertThat(dp.postLoad).isTrue();
            assertThat(dd.preLoad).isTrue();
            assertThat(dd.field).isTrue();
            assertThat(dd.postLoad).isTrue();
            // The accelerator's register state: post-load only (its memory never needs the lock).
            assertThat(org.livemig.machine.Accelerator.VMSD.needsBql(LoadHook.POST_LOAD)).isTrue();
            assertThat(org.livemig.machine.Accelerator.VMSD.needsBql(LoadHook.FIELDS)).isFalse();
            assertThat(dst.devices().accelerators().getFirst().postLoads()).isEqualTo(1);
            assertThat(StateDigest.hash(dst.devices().accelerators().getFirst().memory()))
                    .isEqualTo(StateDigest.hash(src.devices().accelerators().getFirst().memory()));
        } finally {
            src.close();
            dst.close();
        }
    }
}
