package org.livemig.vmstate;

import java.math.BigInteger;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.node.ArrayNode;
import tools.jackson.databind.node.JsonNodeFactory;
import tools.jackson.databind.node.ObjectNode;

/**
 * Staged device state: what a section decodes to with no lock held, applied later under the BQL
 * by {@link VmStateCodec#apply}. Also what {@link VmStateCodec#capture} returns, so source and
 * destination state compare with {@code equals}.
 *
 * <p>Immutable by convention: {@link Bytes} and {@link Struct} do not copy their contents on
 * access (a device buffer may be megabytes), so callers must not modify what they get.
 */
public sealed interface VmValue permits VmValue.Int, VmValue.Bool, VmValue.Bytes, VmValue.Array, VmValue.Struct {

    /** This value as JSON, for debugging and CLI output. */
    JsonNode toJson();

    /** An integer field; {@code type} is QEMU's name (uint8 ... int64), {@code value} normalised to it. */
    record Int(String type, long value) implements VmValue {
        public Int {
            Objects.requireNonNull(type, "type");
        }

        boolean unsigned() {
            return type.startsWith("u");
        }

        @Override
        public JsonNode toJson() {
            if (unsigned() && value < 0) {
                return JsonNodeFactory.instance.numberNode(new BigInteger(Long.toUnsignedString(value)));
            }
            return JsonNodeFactory.instance.numberNode(value);
        }

        @Override
        public String toString() {
            return unsigned() ? Long.toUnsignedString(value) : Long.toString(value);
        }
    }

    record Bool(boolean value) implements VmValue {
        @Override
        public JsonNode toJson() {
            return JsonNodeFactory.instance.booleanNode(value);
        }

        @Override
        public String toString() {
            return Boolean.toString(value);
        }
    }

    /** A buffer or an array of uint8; equality by content. The array is not copied. */
    record Bytes(byte[] value) implements VmValue {
        private static final int SHOWN = 32;

        public Bytes {
            Objects.requireNonNull(value, "value");
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Bytes b && Arrays.equals(value, b.value);
        }

        @Override
        public int hashCode() {
            return Arrays.hashCode(value);
        }

        /** Hex text of all bytes. */
        public String hex() {
            return HexFormat.of().formatHex(value);
        }

        @Override
        public JsonNode toJson() {
            return JsonNodeFactory.instance.stringNode(hex());
        }

        @Override
        public String toString() {
            String shown = HexFormat.of().formatHex(value, 0, Math.min(SHOWN, value.length));
            return "bytes[" + value.length + "] " + shown + (value.length > SHOWN ? "..." : "");
        }
    }

    /** An array of scalars or structs, element by element. */
    record Array(List<VmValue> elements) implements VmValue {
        public Array {
            elements = List.copyOf(elements);
        }

        @Override
        public JsonNode toJson() {
            ArrayNode a = JsonNodeFactory.instance.arrayNode();
            for (VmValue e : elements) {
                a.add(e.toJson());
            }
            return a;
        }

        @Override
        public String toString() {
            return elements.toString();
        }
    }

    /**
     * One VMSD body: its fields present at {@code version} by name in declaration order (unused
     * buffers carry no state and are left out), then the subsections found, in stream order.
     */
    record Struct(String vmsdName, int version, LinkedHashMap<String, VmValue> fields, List<Struct> subsections)
            implements VmValue {
        public Struct {
            Objects.requireNonNull(vmsdName, "vmsdName");
            fields = new LinkedHashMap<>(fields);
            subsections = List.copyOf(subsections);
        }

        /** The field of that name, or null when absent (unknown, or newer than {@link #version}). */
        public VmValue field(String name) {
            return fields.get(name);
        }

        public Optional<Struct> subsection(String name) {
            return subsections.stream().filter(s -> s.vmsdName.equals(name)).findFirst();
        }

        @Override
        public ObjectNode toJson() {
            ObjectNode o = JsonNodeFactory.instance.objectNode();
            o.put("vmsd_name", vmsdName);
            o.put("version", version);
            ObjectNode f = o.putObject("fields");
            for (Map.Entry<String, VmValue> e : fields.entrySet()) {
                f.set(e.getKey(), e.getValue().toJson());
            }
            if (!subsections.isEmpty()) {
                ArrayNode subs = o.putArray("subsections");
                for (Struct s : subsections) {
                    subs.add(s.toJson());
                }
            }
            return o;
        }

        @Override
        public String toString() {
            StringBuilder sb = new StringBuilder(vmsdName).append(" v").append(version).append(' ').append(fields);
            if (!subsections.isEmpty()) {
                sb.append(" +").append(subsections);
            }
            return sb.toString();
        }
    }
}
