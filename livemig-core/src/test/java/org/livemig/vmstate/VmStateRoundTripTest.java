package org.livemig.vmstate;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import java.util.Random;
import java.util.stream.LongStream;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.livemig.stream.MigrationFile;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.ObjectMapper;
import tools.jackson.databind.json.JsonMapper;

/**
 * Property: for random layouts, random values, random stream versions between the minimum and
 * the current one and random subsections, save -> decode -> apply -> capture gives back the
 * state, fields newer than the stream keep their destination values, and the vmdesc sizes add up
 * to the bytes written.
 */
class VmStateRoundTripTest {
    private static final long BASE_SEED = 0x5EED_2024L;
    private static final ObjectMapper JSON = JsonMapper.builder().build();

    static Stream<Long> seeds() {
        return LongStream.range(0, 300).mapToObj(i -> BASE_SEED + i);
    }

    @ParameterizedTest(name = "seed {0}")
    @MethodSource("seeds")
    void saveDecodeApplyCapture(long seed) throws Exception {
        Random rnd = new Random(seed);
        Specs.Gen gen = new Specs.Gen(rnd);
        Specs.Node layout = gen.node("dev" + seed, 0, true);
        Specs.Node writerLayout = gen.olderWriter(layout);
        VMStateDescription<MapDevice> reader = Specs.vmsd(layout);
        VMStateDescription<MapDevice> writer = Specs.vmsd(writerLayout);
        String ctx = "seed " + seed + ", layout:\n" + reader.schema().render() + "writer:\n"
                + writer.schema().render();

        MapDevice src = gen.device(writerLayout);
        VmDesc vmdesc = new VmDesc(4096);
        MigrationFile out = MigrationFile.toMemory();
        VmStateCodec.save(out, writer, src, vmdesc.addDevice("dev", 0, writer.name(), writer.versionId()));
        byte[] bytes = out.toByteArray();

        // the vmdesc sizes account for every byte of the body (unless, as in QEMU, a struct array
        // described by its first element has elements of other sizes)
        JsonNode dev = JSON.readTree(vmdesc.toJsonBytes()).get("devices").get(0);
        if (!varSizedArrayElements(writerLayout, false)) {
            assertThat(describedBytes(dev)).as(ctx).isEqualTo(bytes.length);
        }

        // decode needs no device; the destination is registered first (binds struct array lengths)
        MapDevice dst = gen.device(layout);
        clearNeeded(dst);
        new SaveStateRegistry().registerDevice("dev", 0, reader, dst);
        MapDevice before = dst.deepCopy();
        MigrationFile in = MigrationFile.ofBytes(bytes);
        VmValue.Struct staged = VmStateCodec.decode(in, reader, writer.versionId());
        assertThat(in.atEof()).as(ctx).isTrue();
        assertThat(in.position()).as(ctx).isEqualTo(bytes.length);
        assertThat(staged).as(ctx).isEqualTo(VmStateCodec.capture(writer, src));

        VmStateCodec.apply(reader, dst, staged);
        VmValue.Struct after = VmStateCodec.capture(reader, dst);
        checkApplied(layout, staged, after, before, dst, ctx);

        // and the destination, saved at the current version, reads back as itself
        MigrationFile again = MigrationFile.toMemory();
        VmStateCodec.save(again, reader, dst, null);
        MigrationFile in2 = MigrationFile.ofBytes(again.toByteArray());
        assertThat(VmStateCodec.decode(in2, reader, reader.versionId())).as(ctx).isEqualTo(after);
        assertThat(in2.atEof()).as(ctx).isTrue();
    }

    /** Fields the stream carried now equal the staged values; the others are untouched. */
    private static void checkApplied(Specs.Node layout, VmValue.Struct staged, VmValue.Struct after,
            MapDevice before, MapDevice dst, String ctx) {
        assertThat(after.version()).as(ctx).isEqualTo(layout.version());
        for (Specs.Field f : layout.fields()) {
            if (f.kind() == Specs.Kind.UNUSED) {
                continue;
            }
            VmValue v = staged.field(f.name());
            if (f.since() <= staged.version()) {
                assertThat(v).as(ctx + "\nfield " + f.name()).isNotNull();
                assertThat(after.field(f.name())).as(ctx + "\nfield " + f.name()).isEqualTo(v);
            } else {
                assertThat(v).as(ctx + "\nfield " + f.name()).isNull();
                assertThat(MapDevice.deepEquals(before.get(f.name()), dst.get(f.name())))
                        .as(ctx + "\nuntouched field " + f.name()).isTrue();
            }
        }
        List<String> stagedSubs = staged.subsections().stream().map(VmValue.Struct::vmsdName).toList();
        assertThat(after.subsections().stream().map(VmValue.Struct::vmsdName).toList()).as(ctx).isEqualTo(stagedSubs);
        for (VmValue.Struct s : staged.subsections()) {
            Specs.Node sub = layout.subs().stream().filter(n -> n.name().equals(s.vmsdName())).findFirst().orElseThrow();
            checkApplied(sub, s, after.subsection(s.vmsdName()).orElseThrow(), before, dst, ctx);
        }
    }

    private static boolean varSizedArrayElements(Specs.Node n, boolean inArray) {
        for (Specs.Field f : n.fields()) {
            if (inArray && (f.kind() == Specs.Kind.VAR_U8 || f.kind() == Specs.Kind.VAR_U32)) {
                return true;
            }
            if (f.struct() != null && varSizedArrayElements(f.struct(), inArray || f.kind() == Specs.Kind.STRUCT_ARRAY)) {
                return true;
            }
        }
        for (Specs.Node s : n.subs()) {
            if (varSizedArrayElements(s, inArray)) {
                return true;
            }
        }
        return false;
    }

    private static void clearNeeded(MapDevice d) {
        d.needed.clear();
        for (Object v : d.values.values()) {
            if (v instanceof MapDevice m) {
                clearNeeded(m);
            } else if (v instanceof List<?> l) {
                l.forEach(e -> clearNeeded((MapDevice) e));
            }
        }
    }

    /** Bytes accounted for by one vmdesc VMSD object: fields, and subsections with their headers. */
    static long describedBytes(JsonNode vmsd) {
        long total = 0;
        for (JsonNode f : vmsd.get("fields")) {
            long n = f.has("array_len") ? f.get("array_len").asLong() : 1;
            total += n * f.get("size").asLong();
        }
        if (vmsd.has("subsections")) {
            for (JsonNode s : vmsd.get("subsections")) {
                total += 1 + 1 + s.get("vmsd_name").asString().length() + 4 + describedBytes(s);
            }
        }
        return total;
    }
}
