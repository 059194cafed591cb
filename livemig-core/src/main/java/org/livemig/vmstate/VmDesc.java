package org.livemig.vmstate;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import org.livemig.stream.JsonText;
import org.livemig.stream.VmDescJson.Keys;
import org.livemig.stream.VmDescJson;

/**
 * Writes the vmdesc JSON trailer that follows EOF, exactly as QEMU's JSON writer does; its shape
 * and member names are {@link VmDescJson}'s. Fill it with one {@link Device} per FULL section.
 *
 * <p>Not thread-safe: filled by the one thread that writes the device sections.
 */
public final class VmDesc {
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
