package org.livemig.monitor;

import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import tools.jackson.databind.node.ArrayNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * The answer to {@code query-qmp-schema}, in QEMU 7.2's SchemaInfo shape, built from the commands'
 * declared argument types: a {@code command} entry per command, an {@code object} per argument
 * struct, {@code enum}, {@code array} and {@code builtin} entries for what they use. As in QEMU,
 * types other than builtins have opaque numeric names. Commands return {@code any} here: livemig
 * declares no return types.
 */
final class QmpSchema {
    private final ArrayNode entries = QmpJson.NODES.arrayNode();
    private final Map<QmpType, String> named = new IdentityHashMap<>();
    private final Map<String, String> builtins = new LinkedHashMap<>();
    private int next;

    private QmpSchema() {}

    /** The schema of {@code commands}. */
    static ArrayNode of(List<QmpCommand> commands) {
        QmpSchema s = new QmpSchema();
        for (QmpCommand c : commands) {
            ObjectNode e = QmpJson.object();
            e.put("name", c.name());
            e.put("meta-type", "command");
            e.put("arg-type", s.name(c.args()));
            e.put("ret-type", s.builtin("any", "value"));
            if (c.allowOob()) {
                e.put("allow-oob", true);
            }
            s.entries.add(e);
        }
        return s.entries;
    }

    private String builtin(String qapiName, String jsonType) {
        return builtins.computeIfAbsent(qapiName, n -> {
            ObjectNode e = QmpJson.object();
            e.put("name", n);
            e.put("meta-type", "builtin");
            e.put("json-type", jsonType);
            entries.add(e);
            return n;
        });
    }

    /** The schema name of {@code t}, adding its entry (and its members' entries) the first time. */
    private String name(QmpType t) {
        if (t instanceof QmpType.Scalar sc) {
            return builtin(sc.kind().qapiName(), switch (sc.kind()) {
                case STR -> "string";
                case BOOL -> "boolean";
                case NUMBER -> "number";
                case ANY -> "value";
                case STR_OR_NULL -> "value";
                default -> "int";
            });
        }
        String known = named.get(t);
        if (known != null) {
            return known;
        }
        String id = String.valueOf(next++);
        named.put(t, id);
        ObjectNode e = QmpJson.object();
        e.put("name", id);
        entries.add(e);
        switch (t) {
            case QmpType.EnumType en -> {
                e.put("meta-type", "enum");
                ArrayNode values = e.putArray("values");
                en.values().forEach(values::add);
            }
            case QmpType.ArrayType a -> {
                e.put("meta-type", "array");
                e.put("element-type", name(a.element()));
            }
            case QmpType.Struct st -> {
                e.put("meta-type", "object");
                ArrayNode members = e.putArray("members");
                for (QmpType.Member m : st.members()) {
                    ObjectNode mem = members.addObject();
                    mem.put("name", m.name());
                    mem.put("type", name(m.type()));
                    if (m.optional()) {
                        mem.putNull("default");
                    }
                }
            }
            case QmpType.Scalar sc -> throw new AssertionError(sc);
        }
        return id;
    }
}
