package org.livemig.vmstate;

import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Objects;
import java.util.Set;

/**
 * The wire layout of a {@link VMStateDescription} as plain data, with a canonical text form to pin
 * in tests and a check that a changed description still loads every stream the pinned one wrote.
 *
 * <p>Use: keep {@code vmsd.schema().render()} in a test resource; a test parses it and asserts
 * that {@link #compatibilityProblems(VmStateSchema, VmStateSchema)} is empty for the current
 * description (and, to notice any change at all, that the text is unchanged). Text form, two
 * spaces per nesting level, names quoted:
 * <pre>
 * vmsd "cpu" version=12 minimum=11
 *   uint64[16] "env.regs"
 *   unused_buffer(8) "unused"
 *   uint32 "count"
 *   uint8[#2] "data" since=12        (length: the field at index 2 of this VMSD)
 *   struct[6] "env.segs"             (struct arrays: [n], or [?] when the length comes from the device)
 *     vmsd "segment" version=1 minimum=1
 *       uint32 "selector"
 *   subsection
 *     vmsd "cpu/poll" version=1 minimum=1
 *       uint64 "msr"
 * </pre>
 */
public record VmStateSchema(String name, int version, int minimumVersion, List<Field> fields,
        List<VmStateSchema> subsections) {

    public VmStateSchema {
        Objects.requireNonNull(name, "name");
        fields = List.copyOf(fields);
        subsections = List.copyOf(subsections);
    }

    /**
     * One field. {@code type} is QEMU's vmdesc type name; {@code count} is null for a single
     * element, a number for a fixed array, {@code #k} for a length held by field k of the same
     * VMSD, {@code ?} for a struct array whose length comes from the device; {@code size} is the
     * byte size of buffer and unused_buffer fields (0 otherwise); {@code struct} is the nested layout.
     */
    public record Field(String name, String type, String count, int size, int since, VmStateSchema struct) {
        public Field {
            Objects.requireNonNull(name, "name");
            Objects.requireNonNull(type, "type");
        }

        /** Bytes on the wire when that does not depend on the state, else -1. */
        int fixedWireSize() {
            ScalarType t = ScalarType.byQemuName(type);
            int elem = switch (type) {
                case "bool" -> 1;
                case "buffer", "unused_buffer" -> size;
                default -> t == null ? -1 : t.size;
            };
            if (elem < 0) {
                return -1;
            }
            if (count == null) {
                return elem;
            }
            try {
                return Math.multiplyExact(elem, Integer.parseInt(count));
            } catch (NumberFormatException | ArithmeticException e) {
                return -1;
            }
        }
    }

    // ------------------------------------------------------------------ text form

    /** The canonical text: equal layouts render to equal strings. Ends with a newline. */
    public String render() {
        StringBuilder sb = new StringBuilder();
        render(sb, 0);
        return sb.toString();
    }

    private void render(StringBuilder sb, int depth) {
        indent(sb, depth).append("vmsd ");
        quote(sb, name).append(" version=").append(version).append(" minimum=").append(minimumVersion).append('\n');
        for (Field f : fields) {
            indent(sb, depth + 1).append(f.type);
            if (f.type.equals("buffer") || f.type.equals("unused_buffer")) {
                sb.append('(').append(f.size).append(')');
            }
            if (f.count != null) {
                sb.append('[').append(f.count).append(']');
            }
            sb.append(' ');
            quote(sb, f.name);
            if (f.since > 0) {
                sb.append(" since=").append(f.since);
            }
            sb.append('\n');
            if (f.struct != null) {
                f.struct.render(sb, depth + 2);
            }
        }
        for (VmStateSchema s : subsections) {
            indent(sb, depth + 1).append("subsection\n");
            s.render(sb, depth + 2);
        }
    }

    private static StringBuilder indent(StringBuilder sb, int depth) {
        return sb.repeat("  ", depth);
    }

    private static StringBuilder quote(StringBuilder sb, String s) {
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\n' -> sb.append("\\n");
                default -> sb.append(c);
            }
        }
        return sb.append('"');
    }

    /** Reads the text form back; fails with {@link IllegalArgumentException} naming the line. */
    public static VmStateSchema parse(String text) {
        Parser p = new Parser(text);
        VmStateSchema s = p.vmsd(0);
        if (p.line < p.lines.size()) {
            throw p.error("unexpected line");
        }
        return s;
    }

    private static final class Parser {
        final List<String> lines = new ArrayList<>();
        int line;
        /** Read position within the current line. */
        int pos;

        Parser(String text) {
            for (String l : text.split("\n", -1)) {
                if (!l.isBlank()) {
                    lines.add(l);
                }
            }
        }

        IllegalArgumentException error(String what) {
            String l = line < lines.size() ? lines.get(line) : "<end>";
            return new IllegalArgumentException("schema line " + (line + 1) + ": " + what + ": " + l);
        }

        int depthOf(int i) {
            if (i >= lines.size()) {
                return -1;
            }
            String l = lines.get(i);
            int n = 0;
            while (n < l.length() && l.charAt(n) == ' ') {
                n++;
            }
            return n % 2 == 0 ? n / 2 : -2;
        }

        String cur() {
            return lines.get(line);
        }

        void expect(String s) {
            if (!cur().startsWith(s, pos)) {
                throw error("expected '" + s + "'");
            }
            pos += s.length();
        }

        int number() {
            int start = pos;
            String l = cur();
            while (pos < l.length() && Character.isDigit(l.charAt(pos))) {
                pos++;
            }
            if (start == pos) {
                throw error("expected a number");
            }
            try {
                return Integer.parseInt(l.substring(start, pos));
            } catch (NumberFormatException e) {
                throw error("number too large");
            }
        }

        String quoted() {
            expect("\"");
            StringBuilder sb = new StringBuilder();
            String l = cur();
            while (true) {
                if (pos >= l.length()) {
                    throw error("unterminated name");
                }
                char c = l.charAt(pos++);
                if (c == '"') {
                    return sb.toString();
                }
                if (c == '\\') {
                    if (pos >= l.length()) {
                        throw error("unterminated escape");
                    }
                    char e = l.charAt(pos++);
                    sb.append(e == 'n' ? '\n' : e);
                } else {
                    sb.append(c);
                }
            }
        }

        void endOfLine() {
            if (pos != cur().length()) {
                throw error("unexpected text at column " + (pos + 1));
            }
            line++;
        }

        VmStateSchema vmsd(int depth) {
            if (depthOf(line) != depth) {
                throw error("expected a vmsd line at depth " + depth);
            }
            pos = depth * 2;
            expect("vmsd ");
            String name = quoted();
            expect(" version=");
            int version = number();
            expect(" minimum=");
            int minimum = number();
            endOfLine();
            List<Field> fields = new ArrayList<>();
            List<VmStateSchema> subs = new ArrayList<>();
            while (depthOf(line) == depth + 1) {
                pos = (depth + 1) * 2;
                if (cur().substring(pos).equals("subsection")) {
                    line++;
                    subs.add(vmsd(depth + 2));
                    continue;
                }
                if (!subs.isEmpty()) {
                    throw error("field after a subsection");
                }
                fields.add(field(depth));
            }
            return new VmStateSchema(name, version, minimum, fields, subs);
        }

        Field field(int depth) {
            String l = cur();
            int start = pos;
            while (pos < l.length() && (Character.isLetterOrDigit(l.charAt(pos)) || l.charAt(pos) == '_')) {
                pos++;
            }
            String type = l.substring(start, pos);
            if (type.isEmpty()) {
                throw error("expected a type");
            }
            int size = 0;
            if (pos < l.length() && l.charAt(pos) == '(') {
                pos++;
                size = number();
                expect(")");
            }
            String count = null;
            if (pos < l.length() && l.charAt(pos) == '[') {
                int close = l.indexOf(']', pos);
                if (close < 0) {
                    throw error("unterminated count");
                }
                count = l.substring(pos + 1, close);
                pos = close + 1;
            }
            expect(" ");
            String name = quoted();
            int since = 0;
            if (l.startsWith(" since=", pos)) {
                pos += " since=".length();
                since = number();
            }
            endOfLine();
            VmStateSchema struct = null;
            if (type.equals("struct")) {
                struct = vmsd(depth + 2);
            }
            return new Field(name, type, count, size, since, struct);
        }
    }

    // ------------------------------------------------------------------ compatibility

    /** Problems that would make streams written with {@code this} (pinned) layout fail to load with {@code current}. */
    public List<String> compatibilityProblems(VmStateSchema current) {
        return compatibilityProblems(this, current);
    }

    /**
     * Why a stream written by a build with the {@code pinned} layout (at any version it could
     * write or read) would not load into a build with the {@code current} layout; empty when it
     * always would. Field names do not matter on the wire and are not compared; a fixed-size field
     * may become an {@code unused_buffer} of the same size. Streams of the current layout loading
     * into the pinned build (migrating backwards) are not considered.
     */
    public static List<String> compatibilityProblems(VmStateSchema pinned, VmStateSchema current) {
        Set<String> problems = new LinkedHashSet<>();
        compareSection(pinned, current, pinned.name, problems);
        return List.copyOf(problems);
    }

    private static void compareSection(VmStateSchema old, VmStateSchema now, String path, Set<String> problems) {
        if (!old.name.equals(now.name)) {
            problems.add(path + ": renamed to '" + now.name + "'");
            return;
        }
        if (now.version < old.version) {
            problems.add(path + ": version went down from " + old.version + " to " + now.version);
        }
        if (now.minimumVersion > old.version) {
            problems.add(path + ": minimum version " + now.minimumVersion + " is above the pinned version "
                    + old.version + ", so no pinned stream loads");
        } else if (now.minimumVersion > old.minimumVersion) {
            problems.add(path + ": no longer loads versions " + old.minimumVersion + ".." + (now.minimumVersion - 1));
        }
        int lo = Math.max(old.minimumVersion, now.minimumVersion);
        int hi = Math.min(old.version, now.version);
        for (int v = lo; v <= hi; v++) {
            compareWire(old, v, now, v, path, " (version " + v + ")", problems);
        }
        compareSubsections(old, now, path, problems);
    }

    /** A nested struct is always written at its own current version: compare those layouts. */
    private static void compareStruct(VmStateSchema old, VmStateSchema now, String path, Set<String> problems) {
        if (!old.name.equals(now.name)) {
            problems.add(path + ": struct '" + old.name + "' is now '" + now.name + "'");
            return;
        }
        compareWire(old, old.version, now, now.version, path, "", problems);
        compareSubsections(old, now, path, problems);
    }

    private static void compareSubsections(VmStateSchema old, VmStateSchema now, String path, Set<String> problems) {
        for (VmStateSchema s : old.subsections) {
            VmStateSchema m = now.subsections.stream().filter(x -> x.name.equals(s.name)).findFirst().orElse(null);
            if (m == null) {
                problems.add(path + ": subsection '" + s.name + "' removed; streams carrying it fail to load");
            } else {
                compareSection(s, m, s.name, problems);
            }
        }
    }

    /** Indexes (into {@code fields}) of the fields present in a stream of version {@code v}. */
    private static List<Integer> present(VmStateSchema s, int v) {
        List<Integer> out = new ArrayList<>();
        for (int i = 0; i < s.fields.size(); i++) {
            if (s.fields.get(i).since <= v) {
                out.add(i);
            }
        }
        return out;
    }

    /** Compares the fields present at the given versions; {@code note} tells the version in messages. */
    private static void compareWire(VmStateSchema old, int oldV, VmStateSchema now, int newV, String path,
            String note, Set<String> problems) {
        List<Integer> o = present(old, oldV);
        List<Integer> n = present(now, newV);
        int common = Math.min(o.size(), n.size());
        for (int i = 0; i < common; i++) {
            Field of = old.fields.get(o.get(i));
            Field nf = now.fields.get(n.get(i));
            String where = path + note + ": wire field " + i + " '" + of.name + "'";
            if (of.type.equals(nf.type)) {
                if (of.size != nf.size) {
                    problems.add(where + ": size " + of.size + ", now " + nf.size);
                }
                compareCount(of, o, nf, n, where, problems);
                if (of.struct != null && nf.struct != null) {
                    compareStruct(of.struct, nf.struct, path + "." + of.name, problems);
                }
            } else if (!(nf.type.equals("unused_buffer") && of.fixedWireSize() == nf.size)) {
                problems.add(where + ": type " + describe(of) + ", now " + describe(nf) + " '" + nf.name + "'");
            }
        }
        if (o.size() != n.size()) {
            String first = o.size() > n.size() ? "'" + old.fields.get(o.get(common)).name + "' missing"
                    : "'" + now.fields.get(n.get(common)).name + "' added";
            problems.add(path + note + ": " + o.size() + " fields on the wire, now " + n.size() + " (" + first + ")");
        }
    }

    private static void compareCount(Field of, List<Integer> o, Field nf, List<Integer> n, String where,
            Set<String> problems) {
        String oc = wireCount(of.count, o);
        String nc = wireCount(nf.count, n);
        if (!Objects.equals(oc, nc)) {
            problems.add(where + ": " + of.type + (oc == null ? "" : "[" + oc + "]") + ", now " + nf.type
                    + (nc == null ? "" : "[" + nc + "]"));
        }
    }

    /** A count with a length-field reference turned into that field's position on the wire. */
    private static String wireCount(String count, List<Integer> present) {
        if (count == null || !count.startsWith("#")) {
            return count;
        }
        try {
            int declared = Integer.parseInt(count.substring(1));
            return "length at wire field " + present.indexOf(declared);
        } catch (NumberFormatException e) {
            return count;
        }
    }

    private static String describe(Field f) {
        StringBuilder sb = new StringBuilder(f.type);
        if (f.type.equals("buffer") || f.type.equals("unused_buffer")) {
            sb.append('(').append(f.size).append(')');
        }
        if (f.count != null) {
            sb.append('[').append(f.count).append(']');
        }
        return sb.toString();
    }
}
