package org.livemig.vmstate;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.concurrent.locks.ReentrantLock;
import org.junit.jupiter.api.Test;
import org.livemig.stream.MigrationFile;

/**
 * A description says which load steps need the BQL (pre_load, the fields, post_load); applying
 * staged state takes the lock for those and runs the others without it.
 */
class VmStateHookLockTest {
    /** A device that records, at each step, whether the lock was held. */
    static final class Dev {
        final ReentrantLock lock;
        long a;
        long b;
        Boolean preLoadHeld;
        Boolean fieldHeld;
        Boolean postLoadHeld;
        Boolean subFieldHeld;

        Dev(ReentrantLock lock) {
            this.lock = lock;
        }
    }

    private static VMStateDescription<Dev> vmsd(LoadHook... bqlFor) {
        VMStateDescription<Dev> sub = VMStateDescription.<Dev>builder("dev/sub")
                .uint64("b", d -> d.b, (d, v) -> {
                    d.b = v;
                    d.subFieldHeld = d.lock.isHeldByCurrentThread();
                })
                .needed(d -> true)
                .bqlOnlyFor(LoadHook.FIELDS)
                .build();
        VMStateDescription.Builder<Dev> b = VMStateDescription.<Dev>builder("dev")
                .uint64("a", d -> d.a, (d, v) -> {
                    d.a = v;
                    d.fieldHeld = d.lock.isHeldByCurrentThread();
                })
                .subsection(sub)
                .preLoad(d -> d.preLoadHeld = d.lock.isHeldByCurrentThread())
                .postLoad((d, v) -> d.postLoadHeld = d.lock.isHeldByCurrentThread());
        if (bqlFor != null) {
            b.bqlOnlyFor(bqlFor);
        }
        return b.build();
    }

    private static Dev applyThroughLock(VMStateDescription<Dev> vmsd) throws Exception {
        ReentrantLock lock = new ReentrantLock();
        Dev src = new Dev(lock);
        src.a = 7;
        src.b = 9;
        MigrationFile f = MigrationFile.toMemory();
        VmStateCodec.save(f, vmsd, src, null);
        VmValue.Struct staged = VmStateCodec.decode(MigrationFile.ofBytes(f.toByteArray()), vmsd, vmsd.versionId());
        Dev dst = new Dev(lock);
        VmStateCodec.apply(vmsd, dst, staged, (needed, step) -> {
            assertThat(lock.isHeldByCurrentThread()).isFalse();
            if (needed) {
                lock.lock();
                try {
                    step.run();
                } finally {
                    lock.unlock();
                }
            } else {
                step.run();
            }
        });
        assertThat(dst.a).isEqualTo(7);
        assertThat(dst.b).isEqualTo(9);
        return dst;
    }

    @Test
    void byDefaultEveryStepHoldsTheLock() throws Exception {
        Dev d = applyThroughLock(vmsd((LoadHook[]) null));
        assertThat(d.preLoadHeld).isTrue();
        assertThat(d.fieldHeld).isTrue();
        assertThat(d.postLoadHeld).isTrue();
        assertThat(vmsd((LoadHook[]) null).needsBql(LoadHook.PRE_LOAD)).isTrue();
    }

    @Test
    void aDeviceThatNeedsItForPostLoadOnlyGetsItThereOnly() throws Exception {
        Dev d = applyThroughLock(vmsd(LoadHook.POST_LOAD));
        assertThat(d.preLoadHeld).isFalse();
        assertThat(d.fieldHeld).isFalse();
        assertThat(d.postLoadHeld).isTrue();
        // A subsection is applied under its own declaration (here: its fields need the lock).
        assertThat(d.subFieldHeld).isTrue();
    }

    @Test
    void aDeviceThatNeedsItNowhereNeverTakesIt() throws Exception {
        Dev d = applyThroughLock(vmsd());
        assertThat(d.preLoadHeld).isFalse();
        assertThat(d.fieldHeld).isFalse();
        assertThat(d.postLoadHeld).isFalse();
    }

    @Test
    void aCallerThatHoldsTheLockAppliesEverythingUnderIt() throws Exception {
        ReentrantLock lock = new ReentrantLock();
        VMStateDescription<Dev> v = vmsd(LoadHook.POST_LOAD);
        Dev src = new Dev(lock);
        MigrationFile f = MigrationFile.toMemory();
        VmStateCodec.save(f, v, src, null);
        VmValue.Struct staged = VmStateCodec.decode(MigrationFile.ofBytes(f.toByteArray()), v, 1);
        Dev dst = new Dev(lock);
        lock.lock();
        try {
            VmStateCodec.apply(v, dst, staged);
        } finally {
            lock.unlock();
        }
        assertThat(dst.preLoadHeld).isTrue();
        assertThat(dst.fieldHeld).isTrue();
        assertThat(dst.postLoadHeld).isTrue();
    }
}
