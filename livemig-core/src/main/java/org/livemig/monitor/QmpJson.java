package org.livemig.monitor;

import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import tools.jackson.databind.JsonNode;
import tools.jackson.databind.node.JsonNodeFactory;
import tools.jackson.databind.node.ObjectNode;

/**
 * JSON as QMP writes and reads it. Output follows QEMU's compact writer byte for byte in layout:
 * {@code {"return": {}, "id": 1}} — a space after every colon and comma, characters outside
 * printable ASCII escaped as {@code \\uXXXX} (upper-case hex), members in insertion order.
 * Input goes through the same parser the server uses ({@link JsonStreamParser}).
 */
public final class QmpJson {
    /** Node factory for building arguments and results. */
    public static final JsonNodeFactory NODES = JsonNodeFactory.instance;

    private QmpJson() {
    }

    /** A new empty object node. */
    public static ObjectNode object() {
        return NODES.objectNode();
    }

    /** {@code value} in QEMU's compact layout, without a trailing newline. */
    public static String write(JsonNode value) {
        StringBuilder sb = new StringBuilder(64);
        write(sb, value);
        return sb.toString();
    }

    /** The wire form of one message: QEMU's layout plus the newline QEMU ends each message with. */
    static byte[] wire(JsonNode message) {
        StringBuilder sb = new StringBuilder(64);
        write(sb, message);
        sb.append('\n');
        return sb.toString().getBytes(StandardCharsets.US_ASCII);
    }

    private static void write(StringBuilder sb, JsonNode v) {
        if (v == null || v.isNull() || v.isMissingNode()) {
            sb.append("null");
        } else if (v.isObject()) {
            sb.append('{');
            boolean first = true;
            for (Map.Entry<String, JsonNode> e : v.properties()) {
                if (!first) {
                    sb.append(", ");
                }
                first = false;
                quote(sb, e.getKey());
                sb.append(": ");
                write(sb, e.getValue());
            }
            sb.append('}');
        } else if (v.isArray()) {
            sb.append('[');
            for (int i = 0; i < v.size(); i++) {
                if (i > 0) {
                    sb.append(", ");
                }
                write(sb, v.get(i));
            }
            sb.append(']');
        } else if (v.isString()) {
            quote(sb, v.stringValue());
        } else if (v.isBoolean()) {
            sb.append(v.booleanValue() ? "true" : "false");
        } else if (v.isIntegralNumber()) {
            BigInteger big = v.bigIntegerValue();
            sb.append(big.toString());
        } else if (v.isNumber()) {
            double d = v.doubleValue();
            sb.append(Double.isFinite(d) ? Double.toString(d) : "null");
        } else {
            quote(sb, v.asString());
        }
    }

    private static void quote(StringBuilder sb, String s) {
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\b' -> sb.append("\\b");
                case '\f' -> sb.append("\\f");
                case '\n' -> sb.append("\\n");
                case '\r' -> sb.append("\\r");
                case '\t' -> sb.append("\\t");
                default -> {
                    if (c < 0x20 || c >= 0x7F) {
                        sb.append(String.format("\\u%04X", (int) c));
                    } else {
                        sb.append(c);
                    }
                }
            }
        }
        sb.append('"');
    }

    /**
     * Parses exactly one JSON value with QMP's grammar (single quotes allowed).
     *
     * @throws IllegalArgumentException with QEMU's error text when {@code json} is not one value
     */
    public static JsonNode parse(String json) {
        List<JsonNode> values = new ArrayList<>(1);
        List<String> errors = new ArrayList<>(1);
        JsonStreamParser parser = new JsonStreamParser(new JsonStreamParser.Sink() {
            @Override
            public void value(JsonNode value) {
                values.add(value);
            }

            @Override
            public void error(String desc) {
                errors.add(desc);
            }
        });
        byte[] bytes = json.getBytes(StandardCharsets.UTF_8);
        parser.feed(bytes, 0, bytes.length);
        parser.flush();
        if (!errors.isEmpty()) {
            throw new IllegalArgumentException(errors.getFirst());
        }
        if (values.size() != 1) {
            throw new IllegalArgumentException(values.isEmpty() ? "Expecting a JSON value"
                    : "Expecting at most one JSON value");
        }
        return values.getFirst();
    }
}
