package org.livemig.monitor;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;

import tools.jackson.databind.JsonNode;
import tools.jackson.databind.node.ArrayNode;

/**
 * QEMU 7.2's own description of its QMP interface ({@code query-qmp-schema}, recorded in
 * test resources {@code qemu-7.2/}) and the recorded conversation, for parity checks: does a
 * livemig command take the same arguments, with the same optionality, types and OOB permission;
 * does a livemig reply have the members and JSON types of QEMU's. Reusable by other packages'
 * tests (migration commands).
 */
public final class QemuSchema {
    private static final String DIR = "qemu-7.2/";
    private final Map<String, JsonNode> byName = new HashMap<>();

    private QemuSchema(JsonNode schema) {
        for (JsonNode e : schema) {
            byName.put(e.get("name").stringValue(), e);
        }
    }

    /** The recorded schema of QEMU 7.2.22. */
    public static QemuSchema load() {
        return new QemuSchema(resource("query-qmp-schema.json"));
    }

    /** The recorded source/destination conversation ({@code [{"from"|"to": "src"|"dst", "msg": ...}]}). */
    public static ArrayNode transcript() {
        return (ArrayNode) resource("transcript-migrate.json");
    }

    /** The first message of the transcript sent by {@code side} ("src"/"dst") that satisfies {@code test}. */
    public static JsonNode firstFrom(String side, java.util.function.Predicate<JsonNode> test) {
        for (JsonNode e : transcript()) {
            if (side.equals(e.path("from").asString(null)) && test.test(e.get("msg"))) {
                return e.get("msg");
            }
        }
        throw new AssertionError("no message from " + side + " matches in the transcript");
    }

    /** The reply QEMU gave on {@code side} to the first {@code execute} of {@code command}. */
    public static JsonNode replyTo(String side, String command) {
        boolean sent = false;
        for (JsonNode e : transcript()) {
            JsonNode msg = e.get("msg");
            if (side.equals(e.path("to").asString(null)) && command.equals(msg.path("execute").asString(null))) {
                sent = true;
            } else if (sent && side.equals(e.path("from").asString(null))
                    && (msg.has("return") || msg.has("error"))) {
                return msg;
            }
        }
        throw new AssertionError("no reply to " + command + " on " + side + " in the transcript");
    }

    private static JsonNode resource(String name) {
        try (InputStream in = QemuSchema.class.getResourceAsStream(DIR + name)) {
            if (in == null) {
                throw new IllegalStateException("missing test resource " + DIR + name);
            }
            return QmpJson.parse(new String(in.readAllBytes(), StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** QEMU's schema entry of that name, or null. */
    public JsonNode entry(String name) {
        return byName.get(name);
    }

    /** Differences between livemig's declaration of a command and QEMU 7.2's; empty when they agree. */
    public List<String> differences(QmpCommand command) {
        List<String> diffs = new ArrayList<>();
        JsonNode qemu = byName.get(command.name());
        if (qemu == null || !"command".equals(qemu.path("meta-type").asString(null))) {
            diffs.add(command.name() + ": QEMU 7.2 has no such command");
            return diffs;
        }
        boolean qemuOob = qemu.path("allow-oob").asBoolean(false);
        if (qemuOob != command.allowOob()) {
            diffs.add(command.name() + ": allow-oob is " + command.allowOob() + ", QEMU says " + qemuOob);
        }
        compare(command.name() + " arguments", command.args(), qemu.get("arg-type").stringValue(), diffs);
        return diffs;
    }

    private void compare(String where, QmpType ours, String qemuType, List<String> diffs) {
        JsonNode t = byName.get(qemuType);
        if (t == null) {
            diffs.add(where + ": QEMU type " + qemuType + " unknown");
            return;
        }
        String meta = t.get("meta-type").stringValue();
        switch (ours) {
            case QmpType.Scalar s -> {
                String expected = switch (s.kind()) {
                    case STR -> "string";
                    case INT, UINT8, UINT16, UINT32, UINT64, SIZE -> "int";
                    case NUMBER -> "number";
                    case BOOL -> "boolean";
                    case ANY -> "value";
                    case STR_OR_NULL -> "StrOrNull";
                };
                if (s.kind() == QmpType.Kind.STR_OR_NULL) {
                    if (!meta.equals("alternate") || !memberTypes(t).equals(List.of("str", "null"))) {
                        diffs.add(where + ": StrOrNull, QEMU has " + t);
                    }
                } else if (!meta.equals("builtin") || !t.get("json-type").stringValue().equals(expected)) {
                    diffs.add(where + ": " + s.kind().qapiName() + ", QEMU has " + t);
                }
            }
            case QmpType.EnumType e -> {
                List<String> values = new ArrayList<>();
                t.path("values").forEach(v -> values.add(v.stringValue()));
                if (!meta.equals("enum") || !values.containsAll(e.values())) {
                    diffs.add(where + ": enum " + e.values() + ", QEMU has " + values);
                }
            }
            case QmpType.ArrayType a -> {
                if (!meta.equals("array")) {
                    diffs.add(where + ": array, QEMU has " + meta);
                } else {
                    compare(where + "[]", a.element(), t.get("element-type").stringValue(), diffs);
                }
            }
            case QmpType.Struct st -> {
                if (!meta.equals("object")) {
                    diffs.add(where + ": object, QEMU has " + meta);
                    return;
                }
                Map<String, JsonNode> qemuMembers = new HashMap<>();
                t.path("members").forEach(m -> qemuMembers.put(m.get("name").stringValue(), m));
                // A union's variant members exist for one tag value only: livemig, which has no
                // unions, declares them optional.
                Map<String, JsonNode> variantMembers = new HashMap<>();
                t.path("variants").forEach(v -> byName.get(v.get("type").stringValue()).path("members")
                        .forEach(m -> variantMembers.put(m.get("name").stringValue(), m)));
                for (QmpType.Member m : st.members()) {
                    JsonNode qm = qemuMembers.remove(m.name());
                    if (qm == null && variantMembers.containsKey(m.name())) {
                        if (!m.optional()) {
                            diffs.add(where + ": member " + m.name() + " exists only in some variants; it must be optional");
                        }
                        compare(where + "." + m.name(), m.type(), variantMembers.get(m.name()).get("type").stringValue(), diffs);
                        continue;
                    }
                    if (qm == null) {
                        diffs.add(where + ": member " + m.name() + " is not in QEMU 7.2");
                        continue;
                    }
                    boolean qemuOptional = qm.has("default");
                    if (qemuOptional != m.optional()) {
                        diffs.add(where + ": member " + m.name() + (m.optional() ? " optional" : " required")
                                + ", QEMU: " + (qemuOptional ? "optional" : "required"));
                    }
                    compare(where + "." + m.name(), m.type(), qm.get("type").stringValue(), diffs);
                }
                // Members QEMU has that livemig does not take: only listed when QEMU requires them.
                qemuMembers.forEach((name, qm) -> {
                    if (!qm.has("default")) {
                        diffs.add(where + ": QEMU requires member " + name);
                    }
                });
            }
        }
    }

    private static List<String> memberTypes(JsonNode alternate) {
        List<String> types = new ArrayList<>();
        alternate.path("members").forEach(m -> types.add(m.get("type").stringValue()));
        return types;
    }

    /**
     * Differences in shape between a livemig value and QEMU's for the same thing: every member
     * livemig sends must exist in QEMU's with the same JSON type (recursively; arrays by their
     * first element). Empty when livemig's shape is a subset of QEMU's.
     */
    public static List<String> shapeDifferences(JsonNode ours, JsonNode qemu) {
        List<String> diffs = new ArrayList<>();
        shape("", ours, qemu, diffs);
        return diffs;
    }

    private static void shape(String path, JsonNode ours, JsonNode qemu, List<String> diffs) {
        if (qemu == null) {
            diffs.add(path + ": QEMU has no such member");
            return;
        }
        if (!jsonType(ours).equals(jsonType(qemu))) {
            diffs.add(path + ": " + jsonType(ours) + ", QEMU: " + jsonType(qemu));
            return;
        }
        if (ours.isObject()) {
            for (Iterator<String> it = ours.propertyNames().iterator(); it.hasNext(); ) {
                String k = it.next();
                shape(path + "." + k, ours.get(k), qemu.get(k), diffs);
            }
        } else if (ours.isArray() && !ours.isEmpty() && !qemu.isEmpty()) {
            shape(path + "[0]", ours.get(0), qemu.get(0), diffs);
        }
    }

    private static String jsonType(JsonNode n) {
        if (n.isObject()) {
            return "object";
        } else if (n.isArray()) {
            return "array";
        } else if (n.isString()) {
            return "string";
        } else if (n.isBoolean()) {
            return "boolean";
        } else if (n.isIntegralNumber()) {
            return "integer";
        } else if (n.isNumber()) {
            return "number";
        }
        return "null";
    }
}
