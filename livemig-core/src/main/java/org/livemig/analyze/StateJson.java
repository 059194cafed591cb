package org.livemig.analyze;

import java.math.BigInteger;
import org.livemig.stream.SectionHeader;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.node.ArrayNode;
import tools.jackson.databind.node.JsonNodeFactory;
import tools.jackson.databind.node.ObjectNode;

/**
 * Renders decoded device state in analyze-migration.py's {@code --dump state} shape: a struct is an
 * object of field name to value (array fields become lists), subsections are keyed by their
 * name, integers are hex strings padded to their size (with the value in parentheses when a
 * signed one is negative), bools are JSON booleans and everything else is space-separated hex.
 */
public final class StateJson {
    private StateJson() {}

    static final JsonNodeFactory F = JsonNodeFactory.instance;

    public static ObjectNode struct(StreamValue.Struct s) {
        ObjectNode o = F.objectNode();
        for (StreamValue.Field f : s.fields()) {
            JsonNode v = value(f.value());
            JsonNode old = o.get(f.name());
            if (f.index() >= 0) {
                if (old == null) {
                    o.set(f.name(), F.arrayNode().add(v));
                } else if (old instanceof ArrayNode a) {
                    a.add(v);
                } else {
                    o.set(f.name(), F.arrayNode().add(old).add(v));
                }
            } else if (old == null) {
                o.set(f.name(), v);
            } else if (old instanceof ArrayNode a) {
                a.add(v);
            } else {
                o.set(f.name(), F.arrayNode().add(old).add(v));
            }
        }
        for (StreamValue.Subsection sub : s.subsections()) {
            o.set(SectionHeader.display(sub.name()), struct(sub.body()));
        }
        return o;
    }

    static JsonNode value(StreamValue v) {
        return switch (v) {
            case StreamValue.Struct s -> struct(s);
            case StreamValue.Leaf l -> leaf(l);
        };
    }

    static JsonNode leaf(StreamValue.Leaf l) {
        byte[] b = l.raw();
        return switch (l.kind()) {
            case INT_SIGNED, INT_UNSIGNED -> {
                String hex = b.length == 0 ? "0" : hexDigits(b);
                String s = "0x" + hex;
                if (l.kind() == StreamValue.Kind.INT_SIGNED && b.length > 0 && b[0] < 0) {
                    s += " (" + new BigInteger(b) + ")";
                }
                yield F.stringNode(s);
            }
            case BOOL -> F.booleanNode(b.length > 0 && b[0] != 0);
            case CAPABILITY -> F.stringNode(SectionHeader.display(new String(b, java.nio.charset.StandardCharsets.ISO_8859_1)));
            case NULLPTR -> F.nullNode();
            case BYTES -> F.stringNode(hexPairs(b));
        };
    }

    private static final char[] HEX = "0123456789abcdef".toCharArray();

    static String hexDigits(byte[] b) {
        StringBuilder sb = new StringBuilder(b.length * 2);
        for (byte x : b) {
            sb.append(HEX[(x >> 4) & 0xF]).append(HEX[x & 0xF]);
        }
        return sb.toString();
    }

    static String hexPairs(byte[] b) {
        StringBuilder sb = new StringBuilder(b.length * 3);
        for (int i = 0; i < b.length; i++) {
            if (i > 0) {
                sb.append(' ');
            }
            sb.append(HEX[(b[i] >> 4) & 0xF]).append(HEX[b[i] & 0xF]);
        }
        return sb.toString();
    }
}
