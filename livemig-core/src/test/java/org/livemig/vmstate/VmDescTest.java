package org.livemig.vmstate;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.livemig.stream.MigrationFile;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/** The vmdesc JSON shape, rule by rule, as QEMU 7.2 writes it. */
class VmDescTest {

    static final class Elem {
        long v;
        boolean extra;
    }

    static final class Holder {
        final List<Elem> plain = new ArrayList<>();
        final List<Elem> withSubs = new ArrayList<>();
        final List<Elem> one = List.of(new Elem());
        final List<Elem> none = List.of();
        long count;
        byte[] bytes = new byte[0];
    }

    static final VMStateDescription<Elem> PLAIN = VMStateDescription.<Elem>builder("plain")
            .uint16("v", e -> e.v, (e, x) -> e.v = x).build();

    static final VMStateDescription<Elem> WITH_SUBS = VMStateDescription.<Elem>builder("ws")
            .uint16("v", e -> e.v, (e, x) -> e.v = x)
            .subsection(VMStateDescription.<Elem>builder("ws/extra").version(4)
                    .uint32("w", e -> 7, (e, x) -> { }).needed(e -> e.extra).build())
            .build();

    static final VMStateDescription<Holder> HOLDER = VMStateDescription.<Holder>builder("holder").version(5)
            .structArray("plain", 3, PLAIN, h -> h.plain)
            .structArray("withSubs", WITH_SUBS, h -> h.withSubs)
            .structArray("one", 1, PLAIN, h -> h.one)
            .structArray("none", 0, PLAIN, h -> h.none)
            .unused(2)
            .uint8("count", h -> h.count, (h, x) -> h.count = x)
            .varUint8Array("bytes", "count", h -> h.bytes, (h, x) -> h.bytes = x)
            .unused(3)
            .build();

    private static Holder holder(long count) {
        Holder h = new Holder();
        for (int i = 0; i < 3; i++) {
            h.plain.add(new Elem());
            Elem e = new Elem();
            e.extra = i == 1;
            h.withSubs.add(e);
        }
        h.count = count;
        h.bytes = new byte[(int) count];
        return h;
    }

    private static String describe(Holder h) throws Exception {
        VmDesc desc = new VmDesc(4096);
        VmStateCodec.save(MigrationFile.toMemory(), HOLDER, h, desc.addDevice("holder", 0, "holder", 5));
        return desc.toJson();
    }

    @Test
    void arraysAreDescribedAsQemuDoes() throws Exception {
        String json = describe(holder(0));
        String fields = "{\"name\": \"plain\", \"array_len\": 3, \"type\": \"struct\", \"struct\": "
                + "{\"vmsd_name\": \"plain\", \"version\": 1, \"fields\": [{\"name\": \"v\", \"type\": \"uint16\", "
                + "\"size\": 2}]}, \"size\": 2}, "
                // elements that may carry subsections: one entry per element, with "index"
                + "{\"name\": \"withSubs\", \"index\": 0, \"type\": \"struct\", \"struct\": {\"vmsd_name\": \"ws\", "
                + "\"version\": 1, \"fields\": [{\"name\": \"v\", \"type\": \"uint16\", \"size\": 2}]}, \"size\": 2}, "
                + "{\"name\": \"withSubs\", \"index\": 1, \"type\": \"struct\", \"struct\": {\"vmsd_name\": \"ws\", "
                + "\"version\": 1, \"fields\": [{\"name\": \"v\", \"type\": \"uint16\", \"size\": 2}], "
                + "\"subsections\": [{\"vmsd_name\": \"ws/extra\", \"version\": 4, \"fields\": "
                + "[{\"name\": \"w\", \"type\": \"uint32\", \"size\": 4}]}]}, \"size\": 20}, "
                + "{\"name\": \"withSubs\", \"index\": 2, \"type\": \"struct\", \"struct\": {\"vmsd_name\": \"ws\", "
                + "\"version\": 1, \"fields\": [{\"name\": \"v\", \"type\": \"uint16\", \"size\": 2}]}, \"size\": 2}, "
                // an array of one element is described as a plain field; of none, not at all
                + "{\"name\": \"one\", \"type\": \"struct\", \"struct\": {\"vmsd_name\": \"plain\", \"version\": 1, "
                + "\"fields\": [{\"name\": \"v\", \"type\": \"uint16\", \"size\": 2}]}, \"size\": 2}, "
                // a repeated name gets [k]
                + "{\"name\": \"unused[0]\", \"type\": \"unused_buffer\", \"size\": 2}, "
                + "{\"name\": \"count\", \"type\": \"uint8\", \"size\": 1}, "
                + "{\"name\": \"unused[1]\", \"type\": \"unused_buffer\", \"size\": 3}";
        assertThat(json).isEqualTo("{\"page_size\": 4096, \"devices\": [{\"name\": \"holder\", \"instance_id\": 0, "
                + "\"vmsd_name\": \"holder\", \"version\": 5, \"fields\": [" + fields + "]}]}");
    }

    @Test
    void variableArraysDescribeTheirCurrentLength() throws Exception {
        assertThat(describe(holder(1))).contains("{\"name\": \"bytes\", \"type\": \"uint8\", \"size\": 1}");
        assertThat(describe(holder(9))).contains("{\"name\": \"bytes\", \"array_len\": 9, \"type\": \"uint8\", "
                + "\"size\": 1}");
        assertThat(describe(holder(0))).doesNotContain("\"bytes\"");
    }

    @Test
    void sizesMatchTheBytesWritten() throws Exception {
        Holder h = holder(9);
        VmDesc desc = new VmDesc(4096);
        MigrationFile f = MigrationFile.toMemory();
        VmStateCodec.save(f, HOLDER, h, desc.addDevice("holder", 0, "holder", 5));
        JsonNode dev = JsonMapper.builder().build().readTree(desc.toJsonBytes()).get("devices").get(0);
        assertThat(VmStateRoundTripTest.describedBytes(dev)).isEqualTo(f.toByteArray().length);
    }

    @Test
    void devicesInOrderAndOldStyleData() {
        VmDesc desc = new VmDesc(65536);
        desc.addDevice("a", 0, "a", 1).rawData(12);
        desc.addDevice("b", 2, "b", 7);
        assertThat(desc.toJson()).isEqualTo("{\"page_size\": 65536, \"devices\": ["
                + "{\"name\": \"a\", \"instance_id\": 0, \"vmsd_name\": \"a\", \"version\": 1, \"fields\": "
                + "[{\"name\": \"data\", \"type\": \"buffer\", \"size\": 12}]}, "
                + "{\"name\": \"b\", \"instance_id\": 2, \"vmsd_name\": \"b\", \"version\": 7, \"fields\": []}]}");
        assertThat(desc.devices()).extracting(VmDesc.Device::name).containsExactly("a", "b");
    }

    @Test
    void emptyDescription() {
        assertThat(new String(new VmDesc(4096).toJsonBytes(), StandardCharsets.UTF_8))
                .isEqualTo("{\"page_size\": 4096, \"devices\": []}");
    }

    @Test
    void stringsAreEscapedAsQemuDoes() {
        VmDesc desc = new VmDesc(4096);
        desc.addDevice("q\"b\\s\n\t\u0001é\uD83D\uDE00", 0, "x", 1);
        assertThat(desc.toJson()).contains("\"name\": \"q\\\"b\\\\s\\n\\t\\u0001\\u00E9\\uD83D\\uDE00\"");
    }

    @Test
    void savingAgainIntoAnEntryReplacesItsFields() throws Exception {
        VmDesc desc = new VmDesc(4096);
        VmDesc.Device dev = desc.addDevice("dev", 0, "dev", 3);
        VmStateCodec.save(MigrationFile.toMemory(), TestDevice.VMSD, TestDevice.sample(), dev);
        String once = desc.toJson();
        VmStateCodec.save(MigrationFile.toMemory(), TestDevice.VMSD, TestDevice.sample(), dev);
        assertThat(desc.toJson()).isEqualTo(once);
    }
}
