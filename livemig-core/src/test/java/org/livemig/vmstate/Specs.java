package org.livemig.vmstate;

import java.util.ArrayList;
import java.util.List;
import java.util.random.RandomGenerator;

/**
 * Random VMSD layouts for property tests, as data ({@link Node}), turned into descriptions over
 * {@link MapDevice} and into random devices.
 */
final class Specs {
    private Specs() {}

    enum Kind {
        U8("uint8"), U16("uint16"), U32("uint32"), U64("uint64"), I8("int8"), I16("int16"), I32("int32"), I64("int64"),
        BOOL("bool"), BUFFER("buffer"), UNUSED("unused_buffer"), U8_ARRAY("uint8"), U32_ARRAY("uint32"),
        U64_ARRAY("uint64"), VAR_U8("uint8"), VAR_U32("uint32"), STRUCT("struct"), STRUCT_ARRAY("struct");

        final String qemuName;

        Kind(String qemuName) {
            this.qemuName = qemuName;
        }

        boolean scalar() {
            return ordinal() <= I64.ordinal();
        }
    }

    /** {@code size}: buffer/unused bytes or fixed array length; {@code declaredLength}: false for a struct array bound from the device. */
    record Field(Kind kind, String name, int since, int size, String lengthField, Node struct, boolean declaredLength) {
        Field withSince(int s) {
            return new Field(kind, name, s, size, lengthField, struct, declaredLength);
        }
    }

    record Node(String name, int version, int min, List<Field> fields, List<Node> subs) {
        /** The same layout as written by an older build at version {@code v}. */
        Node atVersion(int v) {
            List<Field> fs = fields.stream().filter(f -> f.since() <= v).toList();
            return new Node(name, v, Math.min(min, v), fs, subs);
        }
    }

    /** Generates layouts; names are unique across one generated tree so subsections can share a device. */
    static final class Gen {
        private final RandomGenerator rnd;
        private int counter;

        Gen(RandomGenerator rnd) {
            this.rnd = rnd;
        }

        Node node(String name, int depth, boolean versioned) {
            int version = rnd.nextInt(1, 6);
            int min = rnd.nextInt(1, version + 1);
            List<Field> fields = new ArrayList<>();
            int n = rnd.nextInt(0, 7);
            for (int i = 0; i < n; i++) {
                Kind k = Kind.values()[rnd.nextInt(Kind.values().length)];
                if ((k == Kind.STRUCT || k == Kind.STRUCT_ARRAY) && depth >= 2) {
                    k = Kind.U32;
                }
                int since = versioned && rnd.nextInt(3) == 0 ? rnd.nextInt(0, version + 1) : 0;
                String fname = "f" + counter++;
                switch (k) {
                    case BUFFER -> fields.add(new Field(k, fname, since, rnd.nextInt(0, 9), null, null, true));
                    case UNUSED -> fields.add(new Field(k, fname, since, rnd.nextInt(1, 5), null, null, true));
                    case U8_ARRAY, U32_ARRAY, U64_ARRAY ->
                            fields.add(new Field(k, fname, since, rnd.nextInt(0, 5), null, null, true));
                    case VAR_U8, VAR_U32 -> {
                        Kind lenKind = rnd.nextBoolean() ? Kind.U8 : (rnd.nextBoolean() ? Kind.U16 : Kind.I32);
                        String len = "n" + counter++;
                        fields.add(new Field(lenKind, len, since, 0, null, null, true));
                        int arraySince = since;
                        fields.add(new Field(k, fname, arraySince, 0, len, null, true));
                    }
                    case STRUCT -> fields.add(new Field(k, fname, since, 0, null,
                            node("st" + counter++, depth + 1, false), true));
                    case STRUCT_ARRAY -> fields.add(new Field(k, fname, since, rnd.nextInt(0, 4), null,
                            node("sa" + counter++, depth + 1, false), rnd.nextInt(4) != 0));
                    default -> fields.add(new Field(k, fname, since, 0, null, null, true));
                }
            }
            // a nested struct is always written at its current version: its "since" values still
            // must not exceed it, which the generator guarantees
            List<Node> subs = new ArrayList<>();
            int ns = depth < 2 ? rnd.nextInt(0, 3) : 0;
            for (int i = 0; i < ns; i++) {
                subs.add(node(name + "/sub" + counter++, depth + 1, true));
            }
            if (!versioned && !subs.isEmpty()) {
                // a struct whose fields take no bytes, followed by another body of the same struct
                // (the next array element), is ambiguous in QEMU's format: keep one field first
                fields.addFirst(new Field(Kind.U32, "lead" + counter++, 0, 0, null, null, true));
            }
            return new Node(name, version, min, fields, subs);
        }

        /** A writer layout: older versions for the top level and each subsection, chosen at random. */
        Node olderWriter(Node n) {
            int v = rnd.nextInt(n.min(), n.version() + 1);
            Node w = n.atVersion(v);
            List<Node> subs = new ArrayList<>();
            for (Node s : w.subs()) {
                subs.add(olderWriter(s));
            }
            return new Node(w.name(), w.version(), w.min(), w.fields(), subs);
        }

        long scalar(Kind k) {
            return switch (rnd.nextInt(4)) {
                case 0 -> 0;
                case 1 -> -1;
                default -> rnd.nextLong();
            };
        }

        /** A device with random values for every field of {@code n} and its subsections. */
        MapDevice device(Node n) {
            MapDevice d = new MapDevice();
            fill(n, d);
            return d;
        }

        private void fill(Node n, MapDevice d) {
            for (Field f : n.fields()) {
                switch (f.kind()) {
                    case BOOL -> d.put(f.name(), rnd.nextBoolean());
                    case BUFFER, U8_ARRAY -> d.put(f.name(), bytes(f.size()));
                    case UNUSED -> { }
                    case U32_ARRAY -> d.put(f.name(), rnd.ints(f.size()).toArray());
                    case U64_ARRAY -> d.put(f.name(), rnd.longs(f.size()).toArray());
                    case VAR_U8, VAR_U32 -> {
                        int len = rnd.nextInt(0, 7);
                        int capacity = len + (rnd.nextBoolean() ? 0 : rnd.nextInt(0, 3));
                        d.put(f.lengthField(), (long) len);
                        d.put(f.name(), f.kind() == Kind.VAR_U8 ? bytes(capacity) : rnd.ints(capacity).toArray());
                    }
                    case STRUCT -> d.put(f.name(), device(f.struct()));
                    case STRUCT_ARRAY -> {
                        List<MapDevice> l = new ArrayList<>();
                        for (int i = 0; i < f.size(); i++) {
                            l.add(device(f.struct()));
                        }
                        d.put(f.name(), l);
                    }
                    default -> {
                        if (!d.values.containsKey(f.name())) {
                            d.put(f.name(), ScalarType.byQemuName(f.kind().qemuName).normalize(scalar(f.kind())));
                        }
                    }
                }
            }
            for (Node s : n.subs()) {
                if (rnd.nextBoolean()) {
                    d.needed.add(s.name());
                }
                fill(s, d);
            }
        }

        byte[] bytes(int n) {
            byte[] b = new byte[n];
            rnd.nextBytes(b);
            return b;
        }
    }

    /** The description of layout {@code n} over {@link MapDevice}; applying a subsection marks it needed. */
    static VMStateDescription<MapDevice> vmsd(Node n) {
        return vmsd(n, false);
    }

    private static VMStateDescription<MapDevice> vmsd(Node n, boolean subsection) {
        VMStateDescription.Builder<MapDevice> b = VMStateDescription.<MapDevice>builder(n.name())
                .version(n.version()).minimumVersion(n.min());
        for (Field f : n.fields()) {
            String name = f.name();
            switch (f.kind()) {
                case U8 -> b.uint8(name, d -> d.getLong(name), (d, v) -> d.put(name, v));
                case U16 -> b.uint16(name, d -> d.getLong(name), (d, v) -> d.put(name, v));
                case U32 -> b.uint32(name, d -> d.getLong(name), (d, v) -> d.put(name, v));
                case U64 -> b.uint64(name, d -> d.getLong(name), (d, v) -> d.put(name, v));
                case I8 -> b.int8(name, d -> d.getLong(name), (d, v) -> d.put(name, v));
                case I16 -> b.int16(name, d -> d.getLong(name), (d, v) -> d.put(name, v));
                case I32 -> b.int32(name, d -> d.getLong(name), (d, v) -> d.put(name, v));
                case I64 -> b.int64(name, d -> d.getLong(name), (d, v) -> d.put(name, v));
                case BOOL -> b.bool(name, d -> (Boolean) d.get(name), (d, v) -> d.put(name, v));
                case BUFFER -> b.buffer(name, f.size(), d -> (byte[]) d.get(name));
                case UNUSED -> b.unused(f.size());
                case U8_ARRAY -> b.uint8Array(name, f.size(), d -> (byte[]) d.get(name));
                case U32_ARRAY -> b.uint32Array(name, f.size(), d -> (int[]) d.get(name));
                case U64_ARRAY -> b.uint64Array(name, f.size(), d -> (long[]) d.get(name));
                case VAR_U8 -> b.varUint8Array(name, f.lengthField(), d -> (byte[]) d.get(name),
                        (d, v) -> d.put(name, v));
                case VAR_U32 -> b.varUint32Array(name, f.lengthField(), d -> (int[]) d.get(name),
                        (d, v) -> d.put(name, v));
                case STRUCT -> b.struct(name, vmsd(f.struct()), d -> d.struct(name));
                case STRUCT_ARRAY -> {
                    if (f.declaredLength()) {
                        b.structArray(name, f.size(), vmsd(f.struct()), d -> d.structs(name));
                    } else {
                        b.structArray(name, vmsd(f.struct()), d -> d.structs(name));
                    }
                }
            }
            if (f.since() > 0) {
                b.since(f.since());
            }
        }
        for (Node s : n.subs()) {
            b.subsection(vmsd(s, true));
        }
        if (subsection) {
            b.needed(d -> d.needed.contains(n.name())).postLoad((d, v) -> d.needed.add(n.name()));
        }
        return b.build();
    }
}
