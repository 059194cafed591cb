package org.livemig.stream;

/**
 * JSON string quoting, the one escaper of the project, as the two writers livemig must match do
 * it: QEMU's JSON writer (QMP replies and events, the vmdesc trailer of a stream), which escapes
 * with upper-case hex digits, and Python's json module (analyze-migration.py's output), which uses
 * lower-case. Both write {@code \" \\ \b \f \n \r \t} short and every other char outside printable
 * ASCII as {@code \\uXXXX}, a char at a time (so a code point beyond the BMP is its surrogate pair).
 */
public final class JsonText {
    private JsonText() {}

    /** QEMU's quoting: upper-case hex escapes. */
    public static void quoteAsQemu(StringBuilder sb, String s) {
        quote(sb, s, "\\u%04X");
    }

    /** Python's {@code json.dumps} quoting (ensure_ascii): lower-case hex escapes. */
    public static void quoteAsPython(StringBuilder sb, String s) {
        quote(sb, s, "\\u%04x");
    }

    private static void quote(StringBuilder sb, String s, String hexEscape) {
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
                        sb.append(String.format(hexEscape, (int) c));
                    } else {
                        sb.append(c);
                    }
                }
            }
        }
        sb.append('"');
    }
}
