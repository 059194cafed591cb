package org.livemig.vmstate;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.Test;
import org.livemig.stream.MigrationFile;

/** Applying staged trees: ones that do not fit are refused before anything changes; devices may refuse state. */
class VmStateApplyTest {

    private static VmValue.Struct staged() {
        return VmStateCodec.capture(TestDevice.VMSD, TestDevice.sample());
    }

    private static VmValue.Struct withField(VmValue.Struct s, String name, VmValue v) {
        LinkedHashMap<String, VmValue> f = new LinkedHashMap<>(s.fields());
        if (v == null) {
            f.remove(name);
        } else {
            f.put(name, v);
        }
        return new VmValue.Struct(s.vmsdName(), s.version(), f, s.subsections());
    }

    private static void assertRefusedUntouched(VmValue.Struct bad, String message) {
        TestDevice dst = new TestDevice();
        dst.a = 99;
        assertThatThrownBy(() -> VmStateCodec.apply(TestDevice.VMSD, dst, bad))
                .isInstanceOf(VmStateException.class)
                .hasMessageContaining(message);
        assertThat(dst.a).isEqualTo(99);
        assertThat(dst.log).isEmpty();
    }

    @Test
    void misfitTreesAreRefusedBeforeAnyAssignment() {
        VmValue.Struct ok = staged();
        assertRefusedUntouched(new VmValue.Struct("other", 3, ok.fields(), List.of()),
                "dev: staged state is for 'other', not 'dev'");
        assertRefusedUntouched(new VmValue.Struct("dev", 4, ok.fields(), List.of()), "staged version 4 outside 2..3");
        assertRefusedUntouched(withField(ok, "b", new VmValue.Int("uint8", 1)), "dev.b: expected uint16");
        assertRefusedUntouched(withField(ok, "b", new VmValue.Int("uint16", 0x10000)), "out of range for uint16");
        assertRefusedUntouched(withField(ok, "e", new VmValue.Int("uint8", 1)), "dev.e: expected bool");
        assertRefusedUntouched(withField(ok, "buf", new VmValue.Bytes(new byte[4])), "expected a buffer of 3 bytes");
        assertRefusedUntouched(withField(ok, "arr", new VmValue.Array(List.of(new VmValue.Int("uint32", 1)))),
                "dev.arr: 1 elements staged, declared 2");
        assertRefusedUntouched(withField(ok, "v", new VmValue.Bytes(new byte[5])),
                "dev.v: 5 elements staged but length field n is 2");
        assertRefusedUntouched(withField(ok, "z", null), "dev.z: missing from the staged state");
        assertRefusedUntouched(withField(ok, "zz", new VmValue.Bool(true)), "staged field 'zz' is not in the description");
        assertRefusedUntouched(new VmValue.Struct("dev", 3, ok.fields(),
                List.of(new VmValue.Struct("dev/nope", 1, new LinkedHashMap<>(), List.of()))),
                "unknown subsection 'dev/nope'");
        assertRefusedUntouched(new VmValue.Struct("dev", 3, ok.fields(),
                List.of(ok.subsections().getFirst(), ok.subsections().getFirst())), "staged twice");
        // a version 2 tree must not carry the fields that came with version 3
        assertRefusedUntouched(new VmValue.Struct("dev", 2, ok.fields(), List.of()),
                "dev.n: present, but the field is newer (since 3) than the staged version 2");
        // nested: the inner struct's field of the wrong type
        VmValue.Struct inner = (VmValue.Struct) ok.field("s");
        assertRefusedUntouched(withField(ok, "s", withField(inner, "x", new VmValue.Bool(false))),
                "dev.s.x: expected uint16");
    }

    @Test
    void aDeviceWithArraysOfOtherSizesIsRefused() {
        VMStateDescription<int[][]> vmsd = VMStateDescription.<int[][]>builder("arrs")
                .uint32Array("a", 2, d -> d[0]).build();
        VmValue.Struct s = VmStateCodec.capture(vmsd, new int[][] {{1, 2}});
        assertThatThrownBy(() -> VmStateCodec.apply(vmsd, new int[][] {{1, 2, 3}}, s))
                .isInstanceOf(VmStateException.class)
                .hasMessageContaining("arrs.a: device array has 3 elements, declared 2");
    }

    @Test
    void postLoadMayRefuseTheState() {
        VMStateDescription<long[]> picky = VMStateDescription.<long[]>builder("picky")
                .uint8("mode", d -> d[0], (d, v) -> d[0] = v)
                .postLoad((d, version) -> {
                    if (d[0] > 3) {
                        throw new VmStateException("picky: mode " + d[0] + " does not exist");
                    }
                })
                .build();
        VmValue.Struct bad = VmStateCodec.capture(picky, new long[] {7});
        assertThatThrownBy(() -> VmStateCodec.apply(picky, new long[1], bad))
                .isInstanceOf(VmStateException.class)
                .hasMessage("picky: mode 7 does not exist");
    }

    @Test
    void preSaveRunsBeforeCaptureAndSave() throws Exception {
        // derived state is synced into the saved field by preSave, as QEMU devices do
        long[] dev = {0, 41};
        VMStateDescription<long[]> vmsd = VMStateDescription.<long[]>builder("derived")
                .uint32("saved", d -> d[0], (d, v) -> d[0] = v)
                .preSave(d -> d[0] = d[1] + 1)
                .build();
        assertThat(VmStateCodec.capture(vmsd, dev).field("saved")).isEqualTo(new VmValue.Int("uint32", 42));
        MigrationFile f = MigrationFile.toMemory();
        dev[1] = 99;
        VmStateCodec.save(f, vmsd, dev, null);
        assertThat(f.toByteArray()).containsExactly(0, 0, 0, 100);
    }

    static final class Cpu {
        final List<long[]> segs = new ArrayList<>();
        Cpu(int n) {
            for (int i = 0; i < n; i++) {
                segs.add(new long[1]);
            }
        }
    }

    static final VMStateDescription<long[]> SEG = VMStateDescription.<long[]>builder("segment")
            .uint32("base", s -> s[0], (s, v) -> s[0] = v).build();

    @Test
    void structArrayWithoutDeclaredLengthLearnsItFromTheFirstDevice() throws Exception {
        VMStateDescription<Cpu> cpu = VMStateDescription.<Cpu>builder("cpu")
                .structArray("segs", SEG, c -> c.segs).build();
        assertThat(cpu.schema().render()).contains("struct[?] \"segs\"");
        assertThatThrownBy(() -> VmStateCodec.decode(MigrationFile.ofBytes(new byte[8]), cpu, 1))
                .isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("length unknown");

        Cpu c = new Cpu(2);
        c.segs.get(1)[0] = 5;
        new SaveStateRegistry().registerDevice("cpu", 0, cpu, c);
        assertThat(cpu.schema().render()).contains("struct[2] \"segs\"");
        VmValue.Struct s = VmStateCodec.decode(MigrationFile.ofBytes(new byte[] {0, 0, 0, 1, 0, 0, 0, 2}), cpu, 1);
        VmStateCodec.apply(cpu, c, s);
        assertThat(c.segs.get(1)[0]).isEqualTo(2);

        assertThatThrownBy(() -> VmStateCodec.capture(cpu, new Cpu(3)))
                .isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("struct array segs has 2 elements, this device 3");
        assertThatThrownBy(() -> VmStateCodec.apply(cpu, new Cpu(3), s))
                .isInstanceOf(VmStateException.class)
                .hasMessageContaining("segs has 2 elements, this device 3");
    }

    @Test
    void builderRejectsInconsistentDescriptions() {
        UnaryOperator<VMStateDescription.Builder<long[]>> base = b -> b.uint8("x", d -> d[0], (d, v) -> d[0] = v);
        assertThatThrownBy(() -> base.apply(VMStateDescription.<long[]>builder("d")).since(2).build())
                .hasMessageContaining("d.x: since 2 is newer than the version 1");
        assertThatThrownBy(() -> VMStateDescription.<long[]>builder("d").version(2).minimumVersion(3).build())
                .hasMessageContaining("minimum version 3 > version 2");
        assertThatThrownBy(() -> base.apply(base.apply(VMStateDescription.<long[]>builder("d"))).build())
                .hasMessageContaining("duplicate field name x");
        assertThatThrownBy(() -> VMStateDescription.<long[]>builder("d")
                .varUint8Array("v", "len", d -> new byte[0], (d, v) -> { }).build())
                .hasMessageContaining("length field len must be an integer field declared before it");
        assertThatThrownBy(() -> VMStateDescription.<long[]>builder("d").version(3)
                .uint8("len", d -> 0, (d, v) -> { }).since(3)
                .varUint8Array("v", "len", d -> new byte[0], (d, v) -> { }).since(2).build())
                .hasMessageContaining("is newer (since 3) than the array (since 2)");
        assertThatThrownBy(() -> VMStateDescription.<long[]>builder("d")
                .subsection(VMStateDescription.<long[]>builder("e/x").build()))
                .hasMessageContaining("subsection 'e/x' must be named 'd/...'");
        assertThatThrownBy(() -> VMStateDescription.<long[]>builder("d").since(1))
                .isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(() -> VMStateDescription.<long[]>builder("x".repeat(256)))
                .hasMessageContaining("1..255 bytes");
        // two unused buffers are fine (they carry no state)
        assertThat(VMStateDescription.<long[]>builder("d").unused(1).unused(2).build().schema().fields()).hasSize(2);
    }

    @Test
    void saveRefusesADeviceThatDisagreesWithItsDescription() {
        TestDevice t = TestDevice.sample();
        t.n = 5; // v holds 3 bytes
        assertThatThrownBy(() -> VmStateCodec.save(MigrationFile.toMemory(), TestDevice.VMSD, t, null))
                .isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("array v has 3 elements, length field n says 5");
    }
}
