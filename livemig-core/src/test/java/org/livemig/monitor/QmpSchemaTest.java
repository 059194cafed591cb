package org.livemig.monitor;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import tools.jackson.databind.JsonNode;

/** query-qmp-schema, in QEMU's SchemaInfo shape, from the commands' declared arguments. */
class QmpSchemaTest extends QmpServerFixture {
    @Test
    void everyCommandIsListedWithItsArgumentsAndTheirTypes() throws Exception {
        JsonNode schema;
        try (QmpClient c = QmpClient.connect("unix:" + dir.resolve("qmp.sock"))) {
            c.negotiate();
            schema = c.execute("query-qmp-schema");
        }
        Map<String, JsonNode> byName = new HashMap<>();
        schema.forEach(e -> byName.put(e.get("name").asString(), e));
        for (String command : server.commands().names()) {
            JsonNode e = byName.get(command);
            assertThat(e).as(command).isNotNull();
            assertThat(e.get("meta-type").asString()).isEqualTo("command");
            assertThat(byName.get(e.get("arg-type").asString()).get("meta-type").asString()).isEqualTo("object");
        }
        // x-echo: x (str, required) and n (int, optional: "default": null, as QEMU marks it)
        JsonNode args = byName.get(byName.get("x-echo").get("arg-type").asString());
        assertThat(args.get("members").get(0).get("name").asString()).isEqualTo("x");
        assertThat(args.get("members").get(0).get("type").asString()).isEqualTo("str");
        assertThat(args.get("members").get(0).has("default")).isFalse();
        assertThat(args.get("members").get(1).get("name").asString()).isEqualTo("n");
        assertThat(args.get("members").get(1).get("type").asString()).isEqualTo("int");
        assertThat(args.get("members").get(1).has("default")).isTrue();
        assertThat(byName.get("x-oob-echo").get("allow-oob").asBoolean()).isTrue();
        // qmp_capabilities' enable: an array of the QMPCapability enum, whose one value is oob
        JsonNode caps = byName.get(byName.get("qmp_capabilities").get("arg-type").asString()).get("members").get(0);
        JsonNode array = byName.get(caps.get("type").asString());
        assertThat(array.get("meta-type").asString()).isEqualTo("array");
        JsonNode en = byName.get(array.get("element-type").asString());
        assertThat(en.get("meta-type").asString()).isEqualTo("enum");
        assertThat(en.get("values").get(0).asString()).isEqualTo("oob");
        assertThat(byName.get("str").get("meta-type").asString()).isEqualTo("builtin");
        assertThat(byName.get("str").get("json-type").asString()).isEqualTo("string");
    }
}
