package org.livemig.analyze;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.livemig.stream.StreamFormatException;
import org.livemig.stream.VmDescJson.Keys;
import tools.jackson.databind.JsonNode;

/**
 * A stream's vmdesc trailer: the JSON that lists, for every FULL section, each field's type and
 * the bytes it took (its shape and member names are {@link org.livemig.stream.VmDescJson}'s). Layouts are built on first use and checked strictly, since the JSON comes
 * from the stream and may be hostile.
 *
 * <p>Not thread-safe.
 */
public final class VmDescription {
    private final JsonNode root;
    private final long offset;
    private final Limits limits;
    private final Map<String, JsonNode> devices = new HashMap<>();
    private final Map<String, VmsdLayout> layouts = new HashMap<>();

    private VmDescription(JsonNode root, long offset, Limits limits) {
        this.root = root;
        this.offset = offset;
        this.limits = limits;
    }

    /**
     * Parses a vmdesc JSON.
     *
     * @param offset stream offset of the trailer, for errors
     */
    public static VmDescription parse(byte[] json, long offset, Limits limits) throws StreamFormatException {
        JsonNode root = Json.parse(json, offset, "vmdesc trailer");
        if (!root.isObject()) {
            throw new StreamFormatException("vmdesc trailer is not a JSON object", offset);
        }
        VmDescription d = new VmDescription(root, offset, limits);
        JsonNode devs = root.get(Keys.DEVICES);
        if (devs != null) {
            if (!devs.isArray()) {
                throw new StreamFormatException("vmdesc: \"devices\" is not an array", offset);
            }
            for (JsonNode dev : devs) {
                if (!dev.isObject()) {
                    throw new StreamFormatException("vmdesc: a device entry is not an object", offset);
                }
                String name = Json.string(dev, Keys.NAME, "vmdesc device", offset);
                int instance = Json.integer(dev, Keys.INSTANCE_ID, null, Integer.MIN_VALUE, 0xFFFFFFFFL,
                        "vmdesc device " + name, offset);
                d.devices.put(key(name, instance), dev);
            }
        }
        return d;
    }

    private static String key(String name, int instance) {
        return instance + "\u0000" + name;
    }

    public JsonNode tree() {
        return root;
    }

    /** Stream offset of the trailer. */
    public long offset() {
        return offset;
    }

    /** "page_size" of the trailer, or -1. */
    public int pageSize() {
        JsonNode p = root.get(Keys.PAGE_SIZE);
        return p != null && p.isIntegralNumber() && p.canConvertToInt() ? p.intValue() : -1;
    }

    /** The layout of the FULL section (name, instance), or null when the trailer does not list it. */
    VmsdLayout layout(String name, int instance) throws StreamFormatException {
        String k = key(name, instance);
        VmsdLayout l = layouts.get(k);
        if (l == null) {
            JsonNode dev = devices.get(k);
            if (dev == null) {
                return null;
            }
            l = build(dev, name, 0);
            layouts.put(k, l);
        }
        return l;
    }

    private VmsdLayout build(JsonNode node, String name, int depth) throws StreamFormatException {
        String ctx = "vmdesc " + name;
        if (depth > limits.maxNesting()) {
            throw new StreamFormatException(ctx + ": nested deeper than " + limits.maxNesting(), offset);
        }
        JsonNode fields = node.get(Keys.FIELDS);
        if (fields == null || !fields.isArray()) {
            throw new StreamFormatException(ctx + ": no \"fields\" array", offset);
        }
        List<VmsdLayout.FieldLayout> fl = new ArrayList<>(fields.size());
        for (JsonNode f : fields) {
            if (!f.isObject()) {
                throw new StreamFormatException(ctx + ": a field is not an object", offset);
            }
            String fname = Json.string(f, Keys.NAME, ctx, offset);
            String fctx = ctx + "." + fname;
            String type = Json.string(f, Keys.TYPE, fctx, offset);
            VmsdLayout struct = null;
            int size = 0;
            if (type.equals(Keys.STRUCT_TYPE)) {
                JsonNode s = f.get(Keys.STRUCT);
                if (s == null || !s.isObject()) {
                    throw new StreamFormatException(fctx + ": struct field without \"struct\"", offset);
                }
                struct = build(s, fname, depth + 1);
            } else {
                size = Json.integer(f, Keys.SIZE, null, 0, limits.maxFieldBytes(), fctx, offset);
            }
            int arrayLen = Json.integer(f, Keys.ARRAY_LEN, -1, 0, limits.maxDecodeSteps(), fctx, offset);
            int index = Json.integer(f, Keys.INDEX, -1, 0, Integer.MAX_VALUE, fctx, offset);
            if (arrayLen >= 0) {
                index = -1;
            }
            fl.add(new VmsdLayout.FieldLayout(fname, index, arrayLen, type, size, struct, 0, false));
        }
        List<VmsdLayout> subs = new ArrayList<>();
        JsonNode sn = node.get(Keys.SUBSECTIONS);
        if (sn != null) {
            if (!sn.isArray()) {
                throw new StreamFormatException(ctx + ": \"subsections\" is not an array", offset);
            }
            for (JsonNode s : sn) {
                if (!s.isObject()) {
                    throw new StreamFormatException(ctx + ": a subsection is not an object", offset);
                }
                String sname = Json.string(s, Keys.VMSD_NAME, ctx + " subsection", offset);
                subs.add(build(s, sname, depth + 1));
            }
        }
        String vmsd = node.has(Keys.VMSD_NAME) && node.get(Keys.VMSD_NAME).isString()
                ? node.get(Keys.VMSD_NAME).stringValue() : name;
        return new VmsdLayout(vmsd, true, 0, fl, subs);
    }
}
