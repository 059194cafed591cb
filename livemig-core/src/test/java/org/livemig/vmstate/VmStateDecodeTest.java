package org.livemig.vmstate;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.ByteArrayOutputStream;
import java.util.Arrays;
import java.util.HexFormat;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.StreamFormatException;

/** Version rules, subsection peeking, and bad input: every failure names what and where. */
class VmStateDecodeTest {
    private static final byte[] SAMPLE = HexFormat.of().parseHex(TestDevice.EXPECTED_HEX);

    /** The sample as a version 2 writer would have written it: without "n" and "v". */
    private static byte[] version2Bytes() {
        String hex = TestDevice.EXPECTED_HEX;
        int at = hex.indexOf("02" + "1020" + "0102");
        return HexFormat.of().parseHex(hex.substring(0, at) + hex.substring(at + 6));
    }

    @Test
    void tooNewVersionIsRefused() {
        MigrationFile in = MigrationFile.ofBytes(SAMPLE);
        assertThatThrownBy(() -> VmStateCodec.decode(in, TestDevice.VMSD, 4))
                .isInstanceOf(StreamFormatException.class)
                .hasMessageContaining("dev: incoming version_id 4 is too new for local version_id 3")
                .satisfies(e -> assertThat(((StreamFormatException) e).offset()).isZero());
    }

    @Test
    void tooOldVersionIsRefused() {
        MigrationFile in = MigrationFile.ofBytes(SAMPLE);
        assertThatThrownBy(() -> VmStateCodec.decode(in, TestDevice.VMSD, 1))
                .isInstanceOf(StreamFormatException.class)
                .hasMessageContaining("dev: incoming version_id 1 is too old for local minimum version_id 2");
    }

    @Test
    void fieldsNewerThanTheStreamAreAbsentAndKeepTheirValueOnApply() throws Exception {
        byte[] bytes = version2Bytes();
        MigrationFile in = MigrationFile.ofBytes(bytes);
        VmValue.Struct s = VmStateCodec.decode(in, TestDevice.VMSD, 2);
        assertThat(in.position()).isEqualTo(bytes.length);
        assertThat(s.version()).isEqualTo(2);
        assertThat(s.fields()).doesNotContainKeys("n", "v");
        assertThat(s.field("z")).isEqualTo(new VmValue.Int("int16", -1));
        assertThat(s.subsection("dev/sub")).isPresent();

        TestDevice dst = new TestDevice();
        dst.n = 1;
        dst.v = new byte[] {9};
        VmStateCodec.apply(TestDevice.VMSD, dst, s);
        assertThat(dst.n).isEqualTo(1);
        assertThat(dst.v).containsExactly(9);
        assertThat(dst.z).isEqualTo(-1);
        assertThat(dst.log).containsExactly("preLoad", "sub.preLoad", "sub.postLoad v2", "postLoad v2");
    }

    @Test
    void readingAnOldStreamAsTheCurrentVersionMisreadsAndIsCaughtByTheLength() throws Exception {
        // not a feature, a guard: the stream version decides which fields exist
        VmValue.Struct s = VmStateCodec.decode(MigrationFile.ofBytes(version2Bytes()), TestDevice.VMSD, 2);
        assertThat(s).isNotEqualTo(VmStateCodec.decode(MigrationFile.ofBytes(SAMPLE), TestDevice.VMSD, 3));
    }

    @Test
    void subsectionVersionIsChecked() {
        byte[] bytes = SAMPLE.clone();
        // the version of "dev/sub" is the be32 before the last byte
        bytes[bytes.length - 2] = 3;
        assertThatThrownBy(() -> VmStateCodec.decode(MigrationFile.ofBytes(bytes), TestDevice.VMSD, 3))
                .isInstanceOf(StreamFormatException.class)
                .hasMessageContaining("dev/sub: incoming version_id 3 is too new for local version_id 2");
    }

    @Test
    void unknownSubsectionIsAnErrorWithItsOffset() {
        String hex = TestDevice.EXPECTED_HEX.replace("6465762f737562", "6465762f787878"); // "dev/xxx"
        byte[] bytes = HexFormat.of().parseHex(hex);
        int offset = hex.lastIndexOf("0507") / 2;
        assertThatThrownBy(() -> VmStateCodec.decode(MigrationFile.ofBytes(bytes), TestDevice.VMSD, 3))
                .isInstanceOf(StreamFormatException.class)
                .hasMessageContaining("dev: unknown subsection 'dev/xxx'")
                .hasMessageContaining("at byte offset " + offset)
                .satisfies(e -> assertThat(((StreamFormatException) e).offset()).isEqualTo(offset));
    }

    @Test
    void peekStopsAtAFooterAndAtAnythingThatIsNotOurSubsection() throws Exception {
        byte[] body = HexFormat.of().parseHex(TestDevice.EXPECTED_HEX);
        String[] tails = {
            "7e00000005",                 // section footer
            "00",                         // EOF
            "0503646576",                 // 0x05 with a length too short for "dev/" + 1
            "0507" + "6162632f737562",    // "abc/sub": another parent's name
            "0540" + "6162",              // a long name cut short, but not ours ("ab")
        };
        for (String tail : tails) {
            byte[] bytes = concat(body, HexFormat.of().parseHex(tail));
            MigrationFile in = MigrationFile.ofBytes(bytes);
            VmValue.Struct s = VmStateCodec.decode(in, TestDevice.VMSD, 3);
            assertThat(in.position()).as(tail).isEqualTo(body.length);
            assertThat(s.subsections()).as(tail).hasSize(1);
        }
    }

    @Test
    void dataEndingInsideANameThatMatchesSoFarIsTruncation() {
        byte[] bytes = concat(SAMPLE, HexFormat.of().parseHex("0540" + "6465762f"));
        assertThatThrownBy(() -> VmStateCodec.decode(MigrationFile.ofBytes(bytes), TestDevice.VMSD, 3))
                .isInstanceOf(StreamFormatException.class)
                .hasMessageContaining("stream truncated inside a subsection header (4 of 64 name bytes)")
                .satisfies(e -> assertThat(((StreamFormatException) e).offset()).isEqualTo(SAMPLE.length + 6));
        byte[] marker = concat(SAMPLE, HexFormat.of().parseHex("05"));
        assertThatThrownBy(() -> VmStateCodec.decode(MigrationFile.ofBytes(marker), TestDevice.VMSD, 3))
                .isInstanceOf(StreamFormatException.class)
                .hasMessageContaining("stream truncated after a subsection marker")
                .satisfies(e -> assertThat(((StreamFormatException) e).offset()).isEqualTo(SAMPLE.length + 1));
        byte[] length = concat(SAMPLE, HexFormat.of().parseHex("0540"));
        assertThatThrownBy(() -> VmStateCodec.decode(MigrationFile.ofBytes(length), TestDevice.VMSD, 3))
                .isInstanceOf(StreamFormatException.class)
                .hasMessageContaining("(0 of 64 name bytes)");
    }

    @Test
    void siblingWhoseNameExtendsASubsectionNameIsNotTakenForItsChild() throws Exception {
        VMStateDescription<Blob> prefixed = VMStateDescription.<Blob>builder("p")
                .uint32("count", b -> b.count, (b, v) -> b.count = v)
                .subsection(VMStateDescription.<Blob>builder("p/s").uint8("s", b -> 1, (b, v) -> { }).build())
                .subsection(VMStateDescription.<Blob>builder("p/s1").uint8("s1", b -> 2, (b, v) -> { }).build())
                .build();
        MigrationFile out = MigrationFile.toMemory();
        VmStateCodec.save(out, prefixed, new Blob(), null);
        byte[] bytes = out.toByteArray();
        assertThat(HexFormat.of().formatHex(bytes)).isEqualTo("00000000" + "0503702f7300000001" + "01"
                + "0504702f733100000001" + "02");
        MigrationFile in = MigrationFile.ofBytes(bytes);
        VmValue.Struct s = VmStateCodec.decode(in, prefixed, 1);
        assertThat(s.subsections()).extracting(VmValue.Struct::vmsdName).containsExactly("p/s", "p/s1");
        assertThat(in.position()).isEqualTo(bytes.length);
    }

    @Test
    void subsectionWithTheLongestNameIsFound() throws Exception {
        String longName = "p/" + "x".repeat(253);
        VMStateDescription<Blob> vmsd = VMStateDescription.<Blob>builder("p")
                .uint32("count", b -> b.count, (b, v) -> b.count = v)
                .subsection(VMStateDescription.<Blob>builder(longName).uint8("s", b -> 9, (b, v) -> { }).build())
                .build();
        MigrationFile out = MigrationFile.toMemory();
        VmStateCodec.save(out, vmsd, new Blob(), null);
        byte[] bytes = out.toByteArray();
        assertThat(bytes).hasSize(4 + 2 + 255 + 4 + 1);
        assertThat(bytes[5]).isEqualTo((byte) 255);
        VmValue.Struct s = VmStateCodec.decode(MigrationFile.ofBytes(bytes), vmsd, 1);
        assertThat(s.subsection(longName).orElseThrow().field("s")).isEqualTo(new VmValue.Int("uint8", 9));
        assertThatThrownBy(() -> VMStateDescription.<Blob>builder(longName + "y"))
                .isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void unknownSubsectionAfterAKnownOneIsAnError() {
        byte[] bytes = concat(SAMPLE, HexFormat.of().parseHex("0508" + "6465762f73756231" + "00000001"));
        assertThatThrownBy(() -> VmStateCodec.decode(MigrationFile.ofBytes(bytes), TestDevice.VMSD, 3))
                .isInstanceOf(StreamFormatException.class)
                .hasMessageContaining("dev: unknown subsection 'dev/sub1'");
    }

    @Test
    void peekInsideANestedStructLeavesTheParentsNextField() throws Exception {
        // z = 0x050b: the parent's next field starts with 0x05 and a plausible length; the name
        // that would follow (the bytes of the "dev/sub" header) is not "inner..." so the nested
        // struct ends there
        TestDevice t = TestDevice.sample();
        t.s.extraNeeded = false;
        t.z = 0x050b;
        MigrationFile out = MigrationFile.toMemory();
        VmStateCodec.save(out, TestDevice.VMSD, t, null);
        byte[] bytes = out.toByteArray();
        VmValue.Struct s = VmStateCodec.decode(MigrationFile.ofBytes(bytes), TestDevice.VMSD, 3);
        assertThat(s.field("z")).isEqualTo(new VmValue.Int("int16", 0x050b));
        assertThat(s).isEqualTo(VmStateCodec.capture(TestDevice.VMSD, t));
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 1, 5, 20, 35, 36, 40, 44, 50, 60, 62})
    void truncationNamesTheFieldAndOffset(int keep) {
        byte[] bytes = Arrays.copyOf(SAMPLE, keep);
        assertThatThrownBy(() -> VmStateCodec.decode(MigrationFile.ofBytes(bytes), TestDevice.VMSD, 3))
                .isInstanceOf(StreamFormatException.class)
                .hasMessageContaining("stream truncated")
                .hasMessageMatching("(?s)(dev|inner)[a-z/]*(\\.[a-z]+ \\(.*stream version|: stream truncated).*")
                .satisfies(e -> assertThat(((StreamFormatException) e).offset()).isBetween(0L, (long) keep));
    }

    @Test
    void everyTruncationFailsCleanly() throws Exception {
        // a cut exactly before a top-level subsection is a complete body without that subsection;
        // in a stream the caller then finds no footer there
        int lastSubsection = TestDevice.EXPECTED_HEX.lastIndexOf("0507") / 2;
        for (int keep = 0; keep < SAMPLE.length; keep++) {
            byte[] bytes = Arrays.copyOf(SAMPLE, keep);
            MigrationFile in = MigrationFile.ofBytes(bytes);
            if (keep == lastSubsection) {
                assertThat(VmStateCodec.decode(in, TestDevice.VMSD, 3).subsections()).isEmpty();
                continue;
            }
            int k = keep;
            assertThatThrownBy(() -> VmStateCodec.decode(in, TestDevice.VMSD, 3))
                    .as("kept " + k)
                    .isInstanceOf(StreamFormatException.class);
        }
    }

    @Test
    void truncatedUint64ReportsItsOwnStart() {
        byte[] bytes = Arrays.copyOf(SAMPLE, 10);
        assertThatThrownBy(() -> VmStateCodec.decode(MigrationFile.ofBytes(bytes), TestDevice.VMSD, 3))
                .isInstanceOf(StreamFormatException.class)
                .hasMessageContaining("dev.d (uint64, stream version 3, field starts at 7): stream truncated")
                .satisfies(e -> assertThat(((StreamFormatException) e).offset()).isEqualTo(7));
    }

    static final class Blob {
        long count;
        byte[] data = new byte[0];
        int[] words = new int[0];
    }

    static final VMStateDescription<Blob> BLOB = VMStateDescription.<Blob>builder("blob")
            .uint32("count", b -> b.count, (b, v) -> b.count = v)
            .varUint8Array("data", "count", b -> b.data, (b, v) -> b.data = v)
            .build();

    static final VMStateDescription<Blob> WORDS = VMStateDescription.<Blob>builder("words")
            .int32("count", b -> b.count, (b, v) -> b.count = v)
            .varUint32Array("words", "count", b -> b.words, (b, v) -> b.words = v)
            .build();

    @Test
    void hugeVariableLengthIsRefusedBeforeAllocating() {
        byte[] bytes = HexFormat.of().parseHex("ffffffff" + "00");
        assertThatThrownBy(() -> VmStateCodec.decode(MigrationFile.ofBytes(bytes), BLOB, 1))
                .isInstanceOf(StreamFormatException.class)
                .hasMessageContaining("array data: length count = 4294967295 is outside 0..67108864")
                .satisfies(e -> assertThat(((StreamFormatException) e).offset()).isEqualTo(4));
        byte[] neg = HexFormat.of().parseHex("80000000");
        assertThatThrownBy(() -> VmStateCodec.decode(MigrationFile.ofBytes(neg), WORDS, 1))
                .isInstanceOf(StreamFormatException.class)
                .hasMessageContaining("outside 0..1048576");
        byte[] many = HexFormat.of().parseHex("00100001");
        assertThatThrownBy(() -> VmStateCodec.decode(MigrationFile.ofBytes(many), WORDS, 1))
                .isInstanceOf(StreamFormatException.class)
                .hasMessageContaining("words: length count = 1048577");
    }

    @Test
    void variableLengthWithinLimitsButBeyondTheDataIsTruncation() {
        byte[] bytes = HexFormat.of().parseHex("00100000" + "0102");
        assertThatThrownBy(() -> VmStateCodec.decode(MigrationFile.ofBytes(bytes), BLOB, 1))
                .isInstanceOf(StreamFormatException.class)
                .hasMessageContaining("blob.data (uint8, stream version 1, field starts at 4): stream truncated");
    }

    @Test
    void errorsStickOnTheFile() {
        MigrationFile in = MigrationFile.ofBytes(HexFormat.of().parseHex("ffffffff"));
        assertThatThrownBy(() -> VmStateCodec.decode(in, BLOB, 1)).isInstanceOf(StreamFormatException.class);
        assertThat(in.error()).isInstanceOf(StreamFormatException.class);
    }

    private static byte[] concat(byte[] a, byte[] b) {
        ByteArrayOutputStream o = new ByteArrayOutputStream();
        o.writeBytes(a);
        o.writeBytes(b);
        return o.toByteArray();
    }
}
