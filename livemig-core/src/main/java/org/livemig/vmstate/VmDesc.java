package org.livemig.vmstate;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import org.livemig.stream.JsonText;

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
 * This is the one description of the trailer's shape: {@link Keys} names its members, and the
 * analyzer's reader ({@code analyze.VmDescription}) reads them by those names.
 *
 * <p>Not thread-safe: filled by the one thread that writes the device sections.
 */
public final class VmDesc {
    /** The members of the vmdesc JSON, as QEMU names them. */
    public static final class Keys {
        public static final String PAGE_SIZE = "page_size";
        public static final String DEVICES = "devices";
        public static final String NAME = "name";
        public static final String INSTANCE_ID = "instance_id";
        public static final String VMSD_NAME = "vmsd_name";
        public static final String VERSION = "version";
        public static final String FIELDS = "fields";
        public static final String ARRAY_LEN = "array_len";
        public static final String INDEX = "index";
        public static final String TYPE = "type";
        /** A nested VMSD's description, in a field whose type is {@link #STRUCT_TYPE}. */
        public static final String STRUCT = "struct";
        public static final String STRUCT_TYPE = "struct";
        public static final String SIZE = "size";
        public static final String SUBSECTIONS = "subsections";

        private Keys() {}
    }

    /** Appends {@code "key": } (QEMU's separators). */
    private static StringBuilder member(StringBuilder sb, String key) {
        return sb.append('"').append(key).append("\": ");
    }
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
        member(sb.append('{'), Keys.PAGE_SIZE).append(pageSize).append(", ");
        member(sb, Keys.DEVICES).append('[');
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
            member(sb.append('{'), Keys.NAME);
            JsonText.quoteAsQemu(sb, name);
            member(sb.append(", "), Keys.INSTANCE_ID).append(instanceId).append(", ");
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
            member(sb, Keys.VMSD_NAME);
            JsonText.quoteAsQemu(sb, vmsdName);
            member(sb.append(", "), Keys.VERSION).append(version).append(", ");
            member(sb, Keys.FIELDS).append('[');
            for (int i = 0; i < fields.size(); i++) {
                if (i > 0) {
                    sb.append(", ");
                }
                fields.get(i).appendTo(sb);
            }
            sb.append(']');
            if (subsections != null) {
                member(sb.append(", "), Keys.SUBSECTIONS).append('[');
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
            member(sb.append('{'), Keys.NAME);
            JsonText.quoteAsQemu(sb, name);
            if (arrayLen >= 0) {
                member(sb.append(", "), Keys.ARRAY_LEN).append(arrayLen);
            } else if (index >= 0) {
                member(sb.append(", "), Keys.INDEX).append(index);
            }
            member(sb.append(", "), Keys.TYPE);
            JsonText.quoteAsQemu(sb, type);
            if (struct != null) {
                member(sb.append(", "), Keys.STRUCT).append('{');
                struct.appendMembers(sb);
                sb.append('}');
            }
            member(sb.append(", "), Keys.SIZE).append(size).append('}');
        }
    }
}
