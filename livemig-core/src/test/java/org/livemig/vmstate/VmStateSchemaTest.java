package org.livemig.vmstate;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.List;
import java.util.function.Function;
import org.junit.jupiter.api.Test;

/**
 * Schema pins: the canonical layout text of a description, and the check that tells a change
 * that breaks loading of older streams from one that does not.
 */
class VmStateSchemaTest {

    /** The pinned layout of {@link TestDevice#VMSD}: a description change shows up here first. */
    static final String TEST_DEVICE_PIN = """
            vmsd "dev" version=3 minimum=2
              uint8 "a"
              uint16 "b"
              int32 "c"
              uint64 "d"
              bool "e"
              buffer(3) "buf"
              unused_buffer(2) "unused"
              uint32[2] "arr"
              uint8 "n" since=3
              uint8[#8] "v" since=3
              struct "s"
                vmsd "inner" version=1 minimum=1
                  uint16 "x"
                  subsection
                    vmsd "inner/extra" version=1 minimum=1
                      uint8 "y"
              int16 "z"
              subsection
                vmsd "dev/sub" version=2 minimum=2
                  int8 "k"
              subsection
                vmsd "dev/off" version=1 minimum=1
                  uint32 "never"
            """;

    @Test
    void testDeviceLayoutIsPinned() {
        VmStateSchema current = TestDevice.VMSD.schema();
        assertThat(current.render()).isEqualTo(TEST_DEVICE_PIN);
        assertThat(VmStateSchema.parse(TEST_DEVICE_PIN).compatibilityProblems(current)).isEmpty();
    }

    @Test
    void textFormRoundTrips() {
        VmStateSchema s = TestDevice.VMSD.schema();
        assertThat(VmStateSchema.parse(s.render())).isEqualTo(s);
        VmStateSchema odd = VMStateDescription.<long[]>builder("ahci port \"x\"\\y")
                .uint8("name with spaces", d -> 0, (d, v) -> { }).build().schema();
        assertThat(VmStateSchema.parse(odd.render())).isEqualTo(odd);
        assertThat(odd.render()).startsWith("vmsd \"ahci port \\\"x\\\"\\\\y\" version=1 minimum=1\n");
    }

    @Test
    void parseErrorsNameTheLine() {
        assertThatThrownBy(() -> VmStateSchema.parse("vmsd \"a\" version=1 minimum=1\n  uint8 a\n"))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("schema line 2");
        assertThatThrownBy(() -> VmStateSchema.parse("vmsd \"a\" version=x minimum=1\n"))
                .hasMessageContaining("expected a number");
        assertThatThrownBy(() -> VmStateSchema.parse("vmsd \"a\" version=1 minimum=1\nvmsd \"b\" version=1 minimum=1\n"))
                .hasMessageContaining("unexpected line");
    }

    private static VMStateDescription<long[]> dev(Function<VMStateDescription.Builder<long[]>,
            VMStateDescription.Builder<long[]>> body) {
        return body.apply(VMStateDescription.<long[]>builder("dev")).build();
    }

    private static final VMStateDescription<long[]> SUB = VMStateDescription.<long[]>builder("dev/sub")
            .uint32("s", d -> 0, (d, v) -> { }).needed(d -> true).build();

    /** Version 2, reads from 1: a uint32, a uint16 added in version 2, a subsection. */
    private static final VMStateDescription<long[]> PINNED = dev(b -> b.version(2).minimumVersion(1)
            .uint32("a", d -> 0, (d, v) -> { })
            .uint16("b", d -> 0, (d, v) -> { }).since(2)
            .subsection(SUB));

    private static List<String> problems(VMStateDescription<long[]> now) {
        return VmStateSchema.compatibilityProblems(VmStateSchema.parse(PINNED.schema().render()), now.schema());
    }

    @Test
    void compatibleChangesPass() {
        // a new field in a new version, a new subsection, renames, a field turned into unused bytes
        assertThat(problems(dev(b -> b.version(3).minimumVersion(1)
                .uint32("a_renamed", d -> 0, (d, v) -> { })
                .uint16("b", d -> 0, (d, v) -> { }).since(2)
                .uint64("c", d -> 0, (d, v) -> { }).since(3)
                .subsection(SUB)
                .subsection(VMStateDescription.<long[]>builder("dev/new").build())))).isEmpty();
        assertThat(problems(dev(b -> b.version(2).minimumVersion(1)
                .unused(4)
                .uint16("b", d -> 0, (d, v) -> { }).since(2)
                .subsection(SUB)))).isEmpty();
    }

    @Test
    void incompatibleChangesAreReported() {
        // a field added without a version bump
        assertThat(problems(dev(b -> b.version(2).minimumVersion(1)
                .uint32("a", d -> 0, (d, v) -> { })
                .uint16("b", d -> 0, (d, v) -> { }).since(2)
                .uint8("c", d -> 0, (d, v) -> { })
                .subsection(SUB))))
                .anySatisfy(p -> assertThat(p).contains("dev (version 1): 1 fields on the wire, now 2 ('c' added)"))
                .anySatisfy(p -> assertThat(p).contains("dev (version 2): 2 fields on the wire, now 3 ('c' added)"));
        // a type change
        assertThat(problems(dev(b -> b.version(2).minimumVersion(1)
                .uint64("a", d -> 0, (d, v) -> { })
                .uint16("b", d -> 0, (d, v) -> { }).since(2)
                .subsection(SUB))))
                .anySatisfy(p -> assertThat(p).contains("wire field 0 'a': type uint32, now uint64"));
        // a removed subsection
        assertThat(problems(dev(b -> b.version(2).minimumVersion(1)
                .uint32("a", d -> 0, (d, v) -> { })
                .uint16("b", d -> 0, (d, v) -> { }).since(2))))
                .containsExactly("dev: subsection 'dev/sub' removed; streams carrying it fail to load");
        // version 1 streams no longer accepted
        assertThat(problems(dev(b -> b.version(2).minimumVersion(2)
                .uint32("a", d -> 0, (d, v) -> { })
                .uint16("b", d -> 0, (d, v) -> { }).since(2)
                .subsection(SUB))))
                .containsExactly("dev: no longer loads versions 1..1");
        // a field that came with version 2 now claims version 1
        assertThat(problems(dev(b -> b.version(2).minimumVersion(1)
                .uint32("a", d -> 0, (d, v) -> { })
                .uint16("b", d -> 0, (d, v) -> { })
                .subsection(SUB))))
                .containsExactly("dev (version 1): 1 fields on the wire, now 2 ('b' added)");
        // version went down
        assertThat(problems(dev(b -> b.version(1).minimumVersion(1)
                .uint32("a", d -> 0, (d, v) -> { })
                .subsection(SUB))))
                .contains("dev: version went down from 2 to 1");
    }

    @Test
    void nestedStructsAndVariableArraysAreCompared() {
        VMStateDescription<long[]> seg1 = VMStateDescription.<long[]>builder("seg")
                .uint32("base", d -> 0, (d, v) -> { }).build();
        VMStateDescription<long[]> seg2 = VMStateDescription.<long[]>builder("seg").version(2)
                .uint32("base", d -> 0, (d, v) -> { })
                .uint32("limit", d -> 0, (d, v) -> { }).since(2).build();
        VmStateSchema old = VMStateDescription.<long[]>builder("cpu")
                .uint8("n", d -> 0, (d, v) -> { })
                .varUint8Array("data", "n", d -> new byte[0], (d, v) -> { })
                .struct("seg", seg1, d -> d).build().schema();
        // a nested struct is written at its own current version: growing it breaks old streams
        VmStateSchema grown = VMStateDescription.<long[]>builder("cpu")
                .uint8("n", d -> 0, (d, v) -> { })
                .varUint8Array("data", "n", d -> new byte[0], (d, v) -> { })
                .struct("seg", seg2, d -> d).build().schema();
        assertThat(VmStateSchema.compatibilityProblems(old, grown))
                .containsExactly("cpu.seg: 1 fields on the wire, now 2 ('limit' added)");
        // the length of a variable array must come from the same wire position
        VmStateSchema moved = VMStateDescription.<long[]>builder("cpu")
                .uint8("n", d -> 0, (d, v) -> { })
                .uint8("m", d -> 0, (d, v) -> { })
                .varUint8Array("data", "m", d -> new byte[0], (d, v) -> { })
                .build().schema();
        assertThat(VmStateSchema.compatibilityProblems(old, moved))
                .contains("cpu (version 1): wire field 1 'data': uint8[length at wire field 0], now uint8",
                        "cpu (version 1): wire field 2 'seg': type struct, now uint8[#1] 'data'");
        assertThat(VmStateSchema.compatibilityProblems(old, old)).isEmpty();
    }
}
