package org.livemig.monitor;

import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import org.livemig.stream.JsonText;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.node.JsonNodeFactory;
import tools.jackson.databind.node.ObjectNode;

/**
 * JSON as QMP writes and reads it. Output follows QEMU's compact writer byte for byte:
 * {@code {"return": {}, "id": 1}} — a space after every colon and comma, characters outside
 * printable ASCII escaped as {@code \\uXXXX} (upper-case hex), and object members in the order
 * QEMU's QDict iterates them: by hash bucket ({@link #qdictOrder}). Build objects in the QAPI
 * schema's member order, as QEMU's output visitor does; members that share a bucket then come
 * out as QEMU's do (last inserted first). Input goes through the server's parser
 * ({@link JsonStreamParser}).
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

    /** {@code value} in QEMU's compact layout and member order, without a trailing newline. */
    public static String write(JsonNode value) {
        StringBuilder sb = new StringBuilder(64);
        write(sb, value, true);
        return sb.toString();
    }

    /**
     * {@code value} in QEMU's compact layout with members in the order they are held — for
     * showing a reply as it was received (re-sorting a received QEMU object is not idempotent:
     * members sharing a bucket would swap).
     */
    public static String writeAsReceived(JsonNode value) {
        StringBuilder sb = new StringBuilder(64);
        write(sb, value, false);
        return sb.toString();
    }

    /**
     * {@code value} indented for people: four spaces per level as QEMU's pretty mode, members in
     * the order they are held (as received), empty objects and arrays as {@code {}} and {@code []}.
     */
    public static String writePretty(JsonNode value) {
        StringBuilder sb = new StringBuilder(128);
        writePretty(sb, value, 0);
        return sb.toString();
    }

    private static void writePretty(StringBuilder sb, JsonNode v, int depth) {
        if (v != null && v.isObject() && !v.isEmpty()) {
            sb.append('{');
            boolean first = true;
            for (Map.Entry<String, JsonNode> e : v.properties()) {
                sb.append(first ? "" : ",").append('\n').append("    ".repeat(depth + 1));
                first = false;
                JsonText.quoteAsQemu(sb, e.getKey());
                sb.append(": ");
                writePretty(sb, e.getValue(), depth + 1);
            }
            sb.append('\n').append("    ".repeat(depth)).append('}');
        } else if (v != null && v.isArray() && !v.isEmpty()) {
            sb.append('[');
            for (int i = 0; i < v.size(); i++) {
                sb.append(i == 0 ? "" : ",").append('\n').append("    ".repeat(depth + 1));
                writePretty(sb, v.get(i), depth + 1);
            }
            sb.append('\n').append("    ".repeat(depth)).append(']');
        } else {
            write(sb, v, false);
        }
    }

    /**
     * The wire form of one message: QEMU's layout and QEMU's line end — {@code \r\n}, since
     * QEMU's monitor output turns every newline into CR LF, QMP included.
     */
    static byte[] wire(JsonNode message) {
        StringBuilder sb = new StringBuilder(64);
        write(sb, message, true);
        sb.append("\r\n");
        return sb.toString().getBytes(StandardCharsets.US_ASCII);
    }

    private static void write(StringBuilder sb, JsonNode v, boolean qemuOrder) {
        if (v == null || v.isNull() || v.isMissingNode()) {
            sb.append("null");
        } else if (v.isObject()) {
            sb.append('{');
            boolean first = true;
            for (Map.Entry<String, JsonNode> e : qemuOrder ? qdictOrder(v) : List.copyOf(v.properties())) {
                if (!first) {
                    sb.append(", ");
                }
                first = false;
                JsonText.quoteAsQemu(sb, e.getKey());
                sb.append(": ");
                write(sb, e.getValue(), qemuOrder);
            }
            sb.append('}');
        } else if (v.isArray()) {
            sb.append('[');
            for (int i = 0; i < v.size(); i++) {
                if (i > 0) {
                    sb.append(", ");
                }
                write(sb, v.get(i), qemuOrder);
            }
            sb.append(']');
        } else if (v.isString()) {
            JsonText.quoteAsQemu(sb, v.stringValue());
        } else if (v.isBoolean()) {
            sb.append(v.booleanValue() ? "true" : "false");
        } else if (v.isIntegralNumber()) {
            BigInteger big = v.bigIntegerValue();
            sb.append(big.toString());
        } else if (v.isNumber()) {
            double d = v.doubleValue();
            sb.append(Double.isFinite(d) ? Double.toString(d) : "null");
        } else {
            JsonText.quoteAsQemu(sb, v.asString());
        }
    }

    /** QEMU's QDict: this many hash buckets, iterated in order. */
    private static final int QDICT_BUCKETS = 512;

    /**
     * The members of {@code object} in the order a QEMU QDict holding them iterates: bucket by
     * bucket (TDB hash of the key modulo 512), newest first within a bucket. QEMU writes its
     * replies in this order and checks requests in it (which member it names when two clash).
     */
    static List<Map.Entry<String, JsonNode>> qdictOrder(JsonNode object) {
        List<Map.Entry<String, JsonNode>> entries = new ArrayList<>(object.properties());
        int n = entries.size();
        long[] keys = new long[n];
        for (int i = 0; i < n; i++) {
            // bucket ascending, then insertion index descending
            keys[i] = ((long) qdictBucket(entries.get(i).getKey()) << 32) | (n - 1 - i);
        }
        Integer[] order = new Integer[n];
        for (int i = 0; i < n; i++) {
            order[i] = i;
        }
        java.util.Arrays.sort(order, Comparator.comparingLong(i -> keys[i]));
        List<Map.Entry<String, JsonNode>> sorted = new ArrayList<>(n);
        for (Integer i : order) {
            sorted.add(entries.get(i));
        }
        return sorted;
    }

    /** The QDict bucket of {@code key}: the TDB string hash, modulo the bucket count. */
    static int qdictBucket(String key) {
        byte[] b = key.getBytes(StandardCharsets.UTF_8);
        int value = 0x238F13AF * b.length;
        for (int i = 0; i < b.length; i++) {
            value += (b[i] & 0xFF) << (i * 5 % 24);
        }
        int hash = 1103515243 * value + 12345;
        return Integer.remainderUnsigned(hash, QDICT_BUCKETS);
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
