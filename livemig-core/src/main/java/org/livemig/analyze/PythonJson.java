package org.livemig.analyze;

import java.util.Iterator;
import java.util.Map;
import org.livemig.stream.JsonText;
import tools.jackson.databind.JsonNode;

/**
 * Writes a JSON tree exactly as Python's {@code json.dumps(obj, indent=4)} with the default
 * {@code ensure_ascii}, which is how analyze-migration.py prints: four-space indent, {@code ": "}
 * after keys, {@code ","} at line ends, {@code []}/{@code {}} for empty containers, and every
 * non-ASCII character as a {@code \\uXXXX} escape.
 */
public final class PythonJson {
    private PythonJson() {}

    public static String write(JsonNode node) {
        StringBuilder sb = new StringBuilder();
        write(node, sb, 0);
        return sb.toString();
    }

    private static void write(JsonNode n, StringBuilder sb, int depth) {
        if (n.isObject()) {
            if (n.isEmpty()) {
                sb.append("{}");
                return;
            }
            sb.append('{');
            Iterator<Map.Entry<String, JsonNode>> it = n.properties().iterator();
            while (it.hasNext()) {
                Map.Entry<String, JsonNode> e = it.next();
                newline(sb, depth + 1);
                JsonText.quoteAsPython(sb, e.getKey());
                sb.append(": ");
                write(e.getValue(), sb, depth + 1);
                if (it.hasNext()) {
                    sb.append(',');
                }
            }
            newline(sb, depth);
            sb.append('}');
        } else if (n.isArray()) {
            if (n.isEmpty()) {
                sb.append("[]");
                return;
            }
            sb.append('[');
            for (int i = 0; i < n.size(); i++) {
                newline(sb, depth + 1);
                write(n.get(i), sb, depth + 1);
                if (i + 1 < n.size()) {
                    sb.append(',');
                }
            }
            newline(sb, depth);
            sb.append(']');
        } else if (n.isString()) {
            JsonText.quoteAsPython(sb, n.stringValue());
        } else if (n.isBoolean()) {
            sb.append(n.booleanValue() ? "true" : "false");
        } else if (n.isNull()) {
            sb.append("null");
        } else if (n.isIntegralNumber()) {
            sb.append(n.bigIntegerValue().toString());
        } else if (n.isNumber()) {
            double d = n.doubleValue();
            sb.append(Double.isNaN(d) ? "NaN" : Double.isInfinite(d) ? (d > 0 ? "Infinity" : "-Infinity")
                    : pythonFloat(d));
        } else {
            sb.append(n.toString());
        }
    }

    /** Python's repr of a float: shortest round-trip digits, exponent form outside 1e-4..1e16. */
    private static String pythonFloat(double d) {
        if (d == Math.rint(d) && Math.abs(d) < 1e16) {
            return new java.math.BigDecimal(d).toPlainString() + ".0";
        }
        String s = Double.toString(d);
        return s.replace("E", "e").replace("e-", "e-").replaceAll("e(\\d)", "e+$1");
    }

    private static void newline(StringBuilder sb, int depth) {
        sb.append('\n');
        sb.append(" ".repeat(4 * depth));
    }

}
