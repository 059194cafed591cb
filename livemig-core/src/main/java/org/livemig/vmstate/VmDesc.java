package org.livemig.vmstate;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * The vmdesc JSON trailer that follows EOF (format doc, section 4): for every FULL section in
 * stream order, each field with the number of bytes it produced, so a generic reader can walk or
 * skip any device. Rendered exactly as QEMU's JSON writer does, with {@code ", "} and {@code ": "}
 * separators:
 * <pre>
 * {"page_size": 4096, "devices": [{"name": idstr, "instance_id": n, "vmsd_name": s, "version": n,
 *   "fields": [{"name": s, ["array_len": n | "index": i], "type": s, ["struct": {...}], "size": n}, ...],
 *   ["subsections": [{"vmsd_name": s, "version": n, "fields": [...], ["subsections": [...]]}, ...]]}, ...]}
 * </pre>
 *
 * <p>Not thread-safe: filled by the one thread that writes the device sections.
 */
public final class VmDesc {
    private final int pageSize;
    private final List<Device> devices = new ArrayList<>();

    public VmDesc(int pageSize) {
        this.pageSize = pageSize;
    }

    /** Adds a device entry; call once per FULL section, in stream order, then fill it by saving into it. */
    public Device addDevice(String idstr, int instanceId, String vmsdName, int version) {
        Device d = new Device(idstr, instanceId, new VmsdNode(vmsdName, version));
        devices.add(d);
        return d;
    }

    public int pageSize() {
        return pageSize;
    }

    public List<Device> devices() {
        return List.copyOf(devices);
    }

    /** The JSON text, UTF-8, without terminator: the body of the VMDESCRIPTION record. */
    public byte[] toJsonBytes() {
        return toJson().getBytes(StandardCharsets.UTF_8);
    }

    public String toJson() {
        StringBuilder sb = new StringBuilder();
        sb.append("{\"page_size\": ").append(pageSize).append(", \"devices\": [");
        for (int i = 0; i < devices.size(); i++) {
            if (i > 0) {
                sb.append(", ");
            }
            devices.get(i).appendTo(sb);
        }
        return sb.append("]}").toString();
    }

    /** One FULL section's entry. */
    public static final class Device {
        private final String name;
        private final int instanceId;
        private VmsdNode body;

        Device(String name, int instanceId, VmsdNode body) {
            this.name = Objects.requireNonNull(name);
            this.instanceId = instanceId;
            this.body = body;
        }

        public String name() {
            return name;
        }

        public int instanceId() {
            return instanceId;
        }

        public String vmsdName() {
            return body.vmsdName;
        }

        public int version() {
            return body.version;
        }

        /**
         * Describes a section written by custom (non-VMSD) code as QEMU describes old-style
         * sections: one field {@code data} of type {@code buffer} with the byte count.
         */
        public Device rawData(long size) {
            body = new VmsdNode(body.vmsdName, body.version);
            body.fields.add(new FieldNode("data", -1, -1, "buffer", null, size));
            return this;
        }

        /** Starts over for a save: the codec fills the returned node. */
        VmsdNode resetBody() {
            body = new VmsdNode(body.vmsdName, body.version);
            return body;
        }

        void appendTo(StringBuilder sb) {
            sb.append("{\"name\": ");
            Json.string(sb, name);
            sb.append(", \"instance_id\": ").append(instanceId).append(", ");
            body.appendMembers(sb);
            sb.append('}');
        }

        @Override
        public String toString() {
            StringBuilder sb = new StringBuilder();
            appendTo(sb);
            return sb.toString();
        }
    }

    /** The description of one VMSD body: a device, a struct field's "struct" or a subsection. */
    static final class VmsdNode {
        String vmsdName;
        int version;
        final List<FieldNode> fields = new ArrayList<>();
        List<VmsdNode> subsections;

        VmsdNode(String vmsdName, int version) {
            this.vmsdName = vmsdName;
            this.version = version;
        }

        VmsdNode addSubsection(String name, int version) {
            if (subsections == null) {
                subsections = new ArrayList<>();
            }
            VmsdNode n = new VmsdNode(name, version);
            subsections.add(n);
            return n;
        }

        void appendMembers(StringBuilder sb) {
            sb.append("\"vmsd_name\": ");
            Json.string(sb, vmsdName);
            sb.append(", \"version\": ").append(version).append(", \"fields\": [");
            for (int i = 0; i < fields.size(); i++) {
                if (i > 0) {
                    sb.append(", ");
                }
                fields.get(i).appendTo(sb);
            }
            sb.append(']');
            if (subsections != null) {
                sb.append(", \"subsections\": [");
                for (int i = 0; i < subsections.size(); i++) {
                    if (i > 0) {
                        sb.append(", ");
                    }
                    sb.append('{');
                    subsections.get(i).appendMembers(sb);
                    sb.append('}');
                }
                sb.append(']');
            }
        }
    }

    /** One field entry; {@code arrayLen} and {@code index} are -1 when not written. */
    record FieldNode(String name, int arrayLen, int index, String type, VmsdNode struct, long size) {
        void appendTo(StringBuilder sb) {
            sb.append("{\"name\": ");
            Json.string(sb, name);
            if (arrayLen >= 0) {
                sb.append(", \"array_len\": ").append(arrayLen);
            } else if (index >= 0) {
                sb.append(", \"index\": ").append(index);
            }
            sb.append(", \"type\": ");
            Json.string(sb, type);
            if (struct != null) {
                sb.append(", \"struct\": {");
                struct.appendMembers(sb);
                sb.append('}');
            }
            sb.append(", \"size\": ").append(size).append('}');
        }
    }

    /** String quoting as QEMU's JSON writer does it: short escapes, \\uXXXX for the rest of non-printable ASCII. */
    static final class Json {
        private Json() {}

        static void string(StringBuilder sb, String s) {
            sb.append('"');
            for (int i = 0; i < s.length(); ) {
                int cp = s.codePointAt(i);
                i += Character.charCount(cp);
                switch (cp) {
                    case '"' -> sb.append("\\\"");
                    case '\\' -> sb.append("\\\\");
                    case '\b' -> sb.append("\\b");
                    case '\f' -> sb.append("\\f");
                    case '\n' -> sb.append("\\n");
                    case '\r' -> sb.append("\\r");
                    case '\t' -> sb.append("\\t");
                    default -> {
                        if (cp > 0xFFFF) {
                            char[] pair = Character.toChars(cp);
                            sb.append(String.format("\\u%04X\\u%04X", (int) pair[0], (int) pair[1]));
                        } else if (cp < 0x20 || cp >= 0x7F) {
                            sb.append(String.format("\\u%04X", cp));
                        } else {
                            sb.append((char) cp);
                        }
                    }
                }
            }
            sb.append('"');
        }
    }
}
