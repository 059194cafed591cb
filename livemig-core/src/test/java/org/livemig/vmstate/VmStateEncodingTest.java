package org.livemig.vmstate;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.HexFormat;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.livemig.stream.MigrationFile;

/** The exact bytes and vmdesc of a small hand-computed example, decoding them, and hook order. */
class VmStateEncodingTest {

    static byte[] save(VMStateDescription<TestDevice> vmsd, TestDevice t, VmDesc.Device desc) throws Exception {
        MigrationFile f = MigrationFile.toMemory();
        VmStateCodec.save(f, vmsd, t, desc);
        return f.toByteArray();
    }

    @Test
    void writesTheHandComputedBytes() throws Exception {
        byte[] bytes = save(TestDevice.VMSD, TestDevice.sample(), null);
        assertThat(HexFormat.of().formatHex(bytes)).isEqualTo(TestDevice.EXPECTED_HEX);
    }

    @Test
    void describesEachFieldWithItsRealSize() throws Exception {
        VmDesc desc = new VmDesc(4096);
        VmDesc.Device dev = desc.addDevice("0000:00:01.0/dev", 1, "dev", 3);
        save(TestDevice.VMSD, TestDevice.sample(), dev);
        String expected = "{\"page_size\": 4096, \"devices\": [{\"name\": \"0000:00:01.0/dev\", \"instance_id\": 1, "
                + "\"vmsd_name\": \"dev\", \"version\": 3, \"fields\": ["
                + "{\"name\": \"a\", \"type\": \"uint8\", \"size\": 1}, "
                + "{\"name\": \"b\", \"type\": \"uint16\", \"size\": 2}, "
                + "{\"name\": \"c\", \"type\": \"int32\", \"size\": 4}, "
                + "{\"name\": \"d\", \"type\": \"uint64\", \"size\": 8}, "
                + "{\"name\": \"e\", \"type\": \"bool\", \"size\": 1}, "
                + "{\"name\": \"buf\", \"type\": \"buffer\", \"size\": 3}, "
                + "{\"name\": \"unused\", \"type\": \"unused_buffer\", \"size\": 2}, "
                + "{\"name\": \"arr\", \"array_len\": 2, \"type\": \"uint32\", \"size\": 4}, "
                + "{\"name\": \"n\", \"type\": \"uint8\", \"size\": 1}, "
                + "{\"name\": \"v\", \"array_len\": 2, \"type\": \"uint8\", \"size\": 1}, "
                + "{\"name\": \"s\", \"type\": \"struct\", \"struct\": {\"vmsd_name\": \"inner\", \"version\": 1, "
                + "\"fields\": [{\"name\": \"x\", \"type\": \"uint16\", \"size\": 2}], \"subsections\": ["
                + "{\"vmsd_name\": \"inner/extra\", \"version\": 1, \"fields\": [{\"name\": \"y\", \"type\": \"uint8\", "
                + "\"size\": 1}]}]}, \"size\": 20}, "
                + "{\"name\": \"z\", \"type\": \"int16\", \"size\": 2}], "
                + "\"subsections\": [{\"vmsd_name\": \"dev/sub\", \"version\": 2, \"fields\": ["
                + "{\"name\": \"k\", \"type\": \"int8\", \"size\": 1}]}]}]}";
        assertThat(desc.toJson()).isEqualTo(expected);
        assertThat(new String(desc.toJsonBytes(), java.nio.charset.StandardCharsets.UTF_8)).isEqualTo(expected);
    }

    @Test
    void decodesTheBytesIntoAValueTree() throws Exception {
        byte[] bytes = HexFormat.of().parseHex(TestDevice.EXPECTED_HEX);
        MigrationFile in = MigrationFile.ofBytes(bytes);
        VmValue.Struct s = VmStateCodec.decode(in, TestDevice.VMSD, 3);
        assertThat(in.position()).isEqualTo(bytes.length);
        assertThat(s.vmsdName()).isEqualTo("dev");
        assertThat(s.version()).isEqualTo(3);
        assertThat(s.fields().keySet()).containsExactly("a", "b", "c", "d", "e", "buf", "arr", "n", "v", "s", "z");
        assertThat(s.field("a")).isEqualTo(new VmValue.Int("uint8", 0x12));
        assertThat(s.field("c")).isEqualTo(new VmValue.Int("int32", -2));
        assertThat(s.field("d")).isEqualTo(new VmValue.Int("uint64", 0x0102030405060708L));
        assertThat(s.field("e")).isEqualTo(new VmValue.Bool(true));
        assertThat(s.field("buf")).isEqualTo(new VmValue.Bytes(new byte[] {(byte) 0xAA, (byte) 0xBB, (byte) 0xCC}));
        assertThat(s.field("arr")).isEqualTo(new VmValue.Array(List.of(new VmValue.Int("uint32", 1),
                new VmValue.Int("uint32", 0xFFFFFFFFL))));
        assertThat(s.field("v")).isEqualTo(new VmValue.Bytes(new byte[] {0x10, 0x20}));
        VmValue.Struct inner = (VmValue.Struct) s.field("s");
        assertThat(inner.field("x")).isEqualTo(new VmValue.Int("uint16", 0x0102));
        assertThat(inner.subsection("inner/extra").orElseThrow().field("y")).isEqualTo(new VmValue.Int("uint8", 7));
        assertThat(s.field("z")).isEqualTo(new VmValue.Int("int16", -1));
        assertThat(s.subsections()).hasSize(1);
        assertThat(s.subsection("dev/sub").orElseThrow().version()).isEqualTo(2);
        assertThat(s.subsection("dev/sub").orElseThrow().field("k")).isEqualTo(new VmValue.Int("int8", -128));

        assertThat(s).isEqualTo(VmStateCodec.capture(TestDevice.VMSD, TestDevice.sample()));
        assertThat(s.toString()).contains("dev v3", "c=-2", "d=72623859790382856", "buf=bytes[3] aabbcc",
                "arr=[1, 4294967295]", "dev/sub v2 {k=-128}");
        assertThat(s.toJson().toString()).contains("\"vmsd_name\":\"dev\"", "\"buf\":\"aabbcc\"",
                "\"arr\":[1,4294967295]", "\"subsections\":[{\"vmsd_name\":\"dev/sub\"");
    }

    @Test
    void uint64AboveLongMaxShowsUnsigned() {
        VmValue.Int v = new VmValue.Int("uint64", -1);
        assertThat(v.toString()).isEqualTo("18446744073709551615");
        assertThat(v.toJson().toString()).isEqualTo("18446744073709551615");
        assertThat(new VmValue.Int("int64", -1).toString()).isEqualTo("-1");
    }

    @Test
    void applyRunsHooksInQemuOrderAndRestoresState() throws Exception {
        TestDevice src = TestDevice.sample();
        byte[] bytes = save(TestDevice.VMSD, src, null);
        assertThat(src.log).containsExactly("preSave");
        assertThat(src.s.log).containsExactly("preSave");

        VmValue.Struct staged = VmStateCodec.decode(MigrationFile.ofBytes(bytes), TestDevice.VMSD, 3);
        TestDevice dst = new TestDevice();
        dst.s.extraNeeded = false;
        VmStateCodec.apply(TestDevice.VMSD, dst, staged);
        assertThat(dst.log).containsExactly("preLoad", "sub.preLoad", "sub.postLoad v2", "postLoad v3");
        assertThat(dst.s.log).containsExactly("preLoad", "extra.preLoad", "extra.postLoad v1", "postLoad v1");
        assertThat(dst.a).isEqualTo(0x12);
        assertThat(dst.c).isEqualTo(-2);
        assertThat(dst.v).containsExactly(0x10, 0x20);
        assertThat(dst.buf).containsExactly(0xAA, 0xBB, 0xCC);
        assertThat(dst.arr).containsExactly(1, 0xFFFFFFFF);
        assertThat(dst.s.y).isEqualTo(7);
        assertThat(dst.k).isEqualTo(-128);

        dst.subNeeded = true;
        dst.s.extraNeeded = true;
        assertThat(VmStateCodec.capture(TestDevice.VMSD, dst)).isEqualTo(staged);
        assertThat(save(TestDevice.VMSD, dst, null)).isEqualTo(bytes);
    }

    @Test
    void subsectionsNotNeededAreNotWritten() throws Exception {
        TestDevice t = TestDevice.sample();
        t.subNeeded = false;
        t.s.extraNeeded = false;
        byte[] bytes = save(TestDevice.VMSD, t, null);
        String hex = HexFormat.of().formatHex(bytes);
        assertThat(hex).isEqualTo(TestDevice.EXPECTED_HEX
                .replace("050b696e6e65722f657874726100000001" + "07", "")
                .replace("05076465762f7375620000000280", ""));
        VmValue.Struct s = VmStateCodec.decode(MigrationFile.ofBytes(bytes), TestDevice.VMSD, 3);
        assertThat(s.subsections()).isEmpty();
        assertThat(((VmValue.Struct) s.field("s")).subsections()).isEmpty();
    }

    @Test
    void scalarsAreNormalisedToTheirType() throws Exception {
        TestDevice t = TestDevice.sample();
        t.a = 0x1FF;     // uint8 keeps the low byte
        t.c = 0x1_0000_0005L; // int32 keeps the low 32 bits
        VmValue.Struct cap = VmStateCodec.capture(TestDevice.VMSD, t);
        assertThat(cap.field("a")).isEqualTo(new VmValue.Int("uint8", 0xFF));
        assertThat(cap.field("c")).isEqualTo(new VmValue.Int("int32", 5));
        VmValue.Struct decoded = VmStateCodec.decode(MigrationFile.ofBytes(save(TestDevice.VMSD, t, null)),
                TestDevice.VMSD, 3);
        assertThat(decoded).isEqualTo(cap);
    }
}
