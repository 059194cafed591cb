package org.livemig.analyze;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.livemig.stream.StreamFormatException;

import tools.jackson.databind.JsonNode;

/**
 * The VMState descriptions of a QEMU binary, as written by {@code qemu-system-* -dump-vmstate}.
 * They are used for streams without a vmdesc trailer (postcopy). Such a dump names fields, their
 * versions and their in-memory sizes, but not their wire types, array lengths or existence tests,
 * so a layout built from it is only a guess: the reader accepts a decode only when it ends
 * exactly at the section's footer, and otherwise reports the section as not decoded.
 *
 * <p>Not thread-safe.
 */
public final class VmstateDump {
    private final Map<String, JsonNode> byVmsd = new HashMap<>();
    private final Map<String, VmsdLayout> layouts = new HashMap<>();
    private final Limits limits;

    private VmstateDump(Limits limits) {
        this.limits = limits;
    }

    public static VmstateDump read(Path file, Limits limits) throws IOException {
        return parse(Files.readAllBytes(file), limits);
    }

    public static VmstateDump parse(byte[] json, Limits limits) throws StreamFormatException {
        JsonNode root = Json.parse(json, -1, "-dump-vmstate file");
        if (!root.isObject()) {
            throw new StreamFormatException("-dump-vmstate file is not a JSON object", -1);
        }
        VmstateDump d = new VmstateDump(limits);
        for (var e : root.properties()) {
            JsonNode desc = e.getValue().get("Description");
            if (desc != null && desc.isObject() && desc.get("name") != null && desc.get("name").isString()) {
                d.byVmsd.putIfAbsent(desc.get("name").stringValue(), desc);
            }
        }
        return d;
    }

    /** Number of VMSDs described. */
    public int size() {
        return byVmsd.size();
    }

    /** The guessed layout for a section idstr (with or without its qdev path prefix), or null. */
    VmsdLayout layout(String idstr) throws StreamFormatException {
        String name = idstr;
        JsonNode desc = byVmsd.get(name);
        if (desc == null && idstr.lastIndexOf('/') >= 0) {
            name = idstr.substring(idstr.lastIndexOf('/') + 1);
            desc = byVmsd.get(name);
        }
        if (desc == null && idstr.indexOf('/') >= 0) {
            name = idstr.substring(idstr.indexOf('/') + 1);
            desc = byVmsd.get(name);
        }
        if (desc == null) {
            return null;
        }
        VmsdLayout l = layouts.get(name);
        if (l == null) {
            l = build(desc, 0);
            layouts.put(name, l);
        }
        return l;
    }

    private VmsdLayout build(JsonNode desc, int depth) throws StreamFormatException {
        String name = Json.string(desc, "name", "-dump-vmstate description", -1);
        String ctx = "-dump-vmstate " + name;
        if (depth > limits.maxNesting()) {
            throw new StreamFormatException(ctx + ": nested deeper than " + limits.maxNesting(), -1);
        }
        int version = Json.integer(desc, "version_id", 0, Integer.MIN_VALUE, Integer.MAX_VALUE, ctx, -1);
        List<VmsdLayout.FieldLayout> fields = new ArrayList<>();
        JsonNode fn = desc.get("Fields");
        if (fn != null && fn.isArray()) {
            Map<String, Integer> count = new HashMap<>();
            for (JsonNode f : fn) {
                if (f.isObject() && f.get("field") != null && f.get("field").isString()) {
                    count.merge(f.get("field").stringValue(), 1, Integer::sum);
                }
            }
            Map<String, Integer> seen = new HashMap<>();
            for (JsonNode f : fn) {
                if (!f.isObject()) {
                    continue;
                }
                String fname = Json.string(f, "field", ctx, -1);
                String out = fname;
                if (count.get(fname) > 1) {
                    out = fname + "[" + (seen.merge(fname, 1, Integer::sum) - 1) + "]";
                }
                int fver = Json.integer(f, "version_id", 0, Integer.MIN_VALUE, Integer.MAX_VALUE, ctx, -1);
                boolean exists = f.get("field_exists") != null && f.get("field_exists").asBoolean();
                int size = Json.integer(f, "size", 0, 0, Integer.MAX_VALUE, ctx + "." + fname, -1);
                JsonNode nested = f.get("Description");
                if (nested != null && nested.isObject()) {
                    fields.add(new VmsdLayout.FieldLayout(out, -1, -1, "struct", size, build(nested, depth + 1),
                            fver, exists));
                } else {
                    String type = switch (size) {
                        case 1 -> "uint8";
                        case 2 -> "uint16";
                        case 4 -> "uint32";
                        case 8 -> "uint64";
                        default -> "buffer";
                    };
                    if (size > limits.maxFieldBytes()) {
                        throw new StreamFormatException(ctx + "." + fname + ": size beyond limit", -1);
                    }
                    fields.add(new VmsdLayout.FieldLayout(out, -1, -1, type, size, null, fver, exists));
                }
            }
        }
        List<VmsdLayout> subs = new ArrayList<>();
        JsonNode sn = desc.get("Subsections");
        if (sn != null && sn.isArray()) {
            for (JsonNode s : sn) {
                if (s.isObject()) {
                    subs.add(build(s, depth + 1));
                }
            }
        }
        return new VmsdLayout(name, false, version, fields, subs);
    }
}
