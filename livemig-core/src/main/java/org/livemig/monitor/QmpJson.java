package org.livemig.monitor;

import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
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
        // One builder per thread, reused: a reply costs its bytes, not three copies of them (the
        // monitor's garbage is what sets the young collections' pace; issue 21).
        StringBuilder sb = WIRE_BUILDER.get();
        sb.setLength(0);
        write(sb, message, true);
        sb.append("\r\n");
        int n = sb.length();
        byte[] bytes = new byte[n];
        for (int i = 0; i < n; i++) {
            bytes[i] = (byte) sb.charAt(i); // ASCII: the writer escapes everything else
        }
        if (sb.capacity() > WIRE_BUILDER_KEPT) {
            WIRE_BUILDER.remove();
        }
        return bytes;
    }

    /** Builders larger than this (a big query-qmp-schema) are not kept for the next message. */
    private static final int WIRE_BUILDER_KEPT = 64 * 1024;
    private static final ThreadLocal<StringBuilder> WIRE_BUILDER = ThreadLocal.withInitial(() -> new StringBuilder(512));

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
        int n = object.size();
        if (n == 0) {
            return List.of();
        }
        @SuppressWarnings("unchecked")
        Map.Entry<String, JsonNode>[] entries = new Map.Entry[n];
        long[] keys = new long[n];
        int i = 0;
        for (Map.Entry<String, JsonNode> e : object.properties()) {
            entries[i] = e;
            // bucket ascending, then insertion index descending
            keys[i] = ((long) qdictBucket(e.getKey()) << 32) | (n - 1 - i);
            i++;
        }
        // Insertion sort of both arrays by key: objects are small, and it allocates nothing.
        for (int j = 1; j < n; j++) {
            long k = keys[j];
            Map.Entry<String, JsonNode> e = entries[j];
            int m = j - 1;
            while (m >= 0 && keys[m] > k) {
                keys[m + 1] = keys[m];
                entries[m + 1] = entries[m];
                m--;
            }
            keys[m + 1] = k;
            entries[m + 1] = e;
        }
        return java.util.Arrays.asList(entries);
    }

    /** The QDict bucket of {@code key}: the TDB string hash, modulo the bucket count. */
    static int qdictBucket(String key) {
        // The hash is over UTF-8 bytes. An ASCII key's chars are its bytes (no copy, the usual
        // case); any other key is re-read as one char per UTF-8 byte.
        String bytes = key;
        for (int i = 0; i < key.length(); i++) {
            if (key.charAt(i) >= 0x80) {
                bytes = new String(key.getBytes(StandardCharsets.UTF_8), StandardCharsets.ISO_8859_1);
                break;
            }
        }
        int len = bytes.length();
        int value = 0x238F13AF * len;
        for (int i = 0; i < len; i++) {
            value += bytes.charAt(i) << (i * 5 % 24);
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
