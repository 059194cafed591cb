package org.livemig.vmstate;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.function.BiConsumer;
import java.util.function.Function;
import java.util.function.ObjLongConsumer;
import java.util.function.Predicate;
import java.util.function.ToLongFunction;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.StreamFormatException;
import org.livemig.vmstate.VmDesc.FieldNode;
import org.livemig.vmstate.VmDesc.VmsdNode;

/**
 * One field of a {@link VMStateDescription}: how it is written, decoded into a {@link VmValue},
 * captured from and applied to a device object, and described in vmdesc and schema pins.
 *
 * <p>Read-only once its description is built (only the builder sets {@link #since} and
 * {@link #descName}); a struct array declared without a length learns it once from the first
 * object it meets (see {@link StructArray#bind}).
 */
abstract sealed class VmField<T>
        permits VmField.Scalar, VmField.BoolField, VmField.Buffer, VmField.Unused, VmField.ArrayField,
                VmField.StructField, VmField.StructArray {

    final String name;
    /** Stream version that introduced the field (QEMU's field version_id); absent in older streams. */
    int since;
    /** Name in vmdesc: {@link #name}, with "[k]" appended when the name occurs more than once. */
    String descName;

    VmField(String name) {
        this.name = Objects.requireNonNull(name, "name");
        this.descName = name;
    }

    /** QEMU's vmdesc type name. */
    abstract String typeName();

    /** False for fields that carry no state (unused buffers): they are not in value trees. */
    boolean hasValue() {
        return true;
    }

    abstract void save(MigrationFile f, T obj, VmsdNode desc) throws IOException;

    /** Reads the field; {@code earlier} holds the fields of the same body decoded so far. */
    abstract VmValue decode(MigrationFile f, Map<String, VmValue> earlier) throws IOException;

    abstract VmValue capture(T obj);

    /** Throws when {@code v} cannot be applied to {@code obj}; mutates nothing. */
    abstract void check(VmValue v, T obj, Map<String, VmValue> staged, String path) throws VmStateException;

    abstract void apply(T obj, VmValue v, String path) throws VmStateException;

    abstract VmStateSchema.Field schema(List<VmField<T>> siblings);

    /** Learns array lengths from a device object (only struct arrays declared without one need it). */
    void bind(T obj) {}

    static VmStateException misfit(String path, String what) {
        return new VmStateException(path + ": " + what);
    }

    static void describe(VmsdNode desc, String name, int count, String type, long elemSize) {
        if (desc != null && count > 0) {
            desc.fields.add(new FieldNode(name, count > 1 ? count : -1, -1, type, null, elemSize));
        }
    }

    // ------------------------------------------------------------------ scalars

    static final class Scalar<T> extends VmField<T> {
        final ScalarType type;
        private final ToLongFunction<T> get;
        private final ObjLongConsumer<T> set;

        Scalar(String name, ScalarType type, ToLongFunction<T> get, ObjLongConsumer<T> set) {
            super(name);
            this.type = type;
            this.get = Objects.requireNonNull(get, "get");
            this.set = Objects.requireNonNull(set, "set");
        }

        long valueOf(T obj) {
            return type.normalize(get.applyAsLong(obj));
        }

        @Override
        String typeName() {
            return type.qemuName;
        }

        @Override
        void save(MigrationFile f, T obj, VmsdNode desc) throws IOException {
            type.write(f, valueOf(obj));
            describe(desc, descName, 1, type.qemuName, type.size);
        }

        @Override
        VmValue decode(MigrationFile f, Map<String, VmValue> earlier) throws IOException {
            return new VmValue.Int(type.qemuName, type.read(f));
        }

        @Override
        VmValue capture(T obj) {
            return new VmValue.Int(type.qemuName, valueOf(obj));
        }

        @Override
        void check(VmValue v, T obj, Map<String, VmValue> staged, String path) throws VmStateException {
            if (!(v instanceof VmValue.Int i) || !i.type().equals(type.qemuName)) {
                throw misfit(path, "expected " + type.qemuName + ", staged " + v);
            }
            if (!type.inRange(i.value())) {
                throw misfit(path, "value " + i.value() + " out of range for " + type.qemuName);
            }
        }

        @Override
        void apply(T obj, VmValue v, String path) {
            set.accept(obj, ((VmValue.Int) v).value());
        }

        @Override
        VmStateSchema.Field schema(List<VmField<T>> siblings) {
            return new VmStateSchema.Field(name, type.qemuName, null, 0, since, null);
        }
    }

    static final class BoolField<T> extends VmField<T> {
        private final Predicate<T> get;
        private final BiConsumer<T, Boolean> set;

        BoolField(String name, Predicate<T> get, BiConsumer<T, Boolean> set) {
            super(name);
            this.get = Objects.requireNonNull(get, "get");
            this.set = Objects.requireNonNull(set, "set");
        }

        @Override
        String typeName() {
            return "bool";
        }

        @Override
        void save(MigrationFile f, T obj, VmsdNode desc) throws IOException {
            f.putByte(get.test(obj) ? 1 : 0);
            describe(desc, descName, 1, "bool", 1);
        }

        @Override
        VmValue decode(MigrationFile f, Map<String, VmValue> earlier) throws IOException {
            return new VmValue.Bool(f.getByte() != 0);
        }

        @Override
        VmValue capture(T obj) {
            return new VmValue.Bool(get.test(obj));
        }

        @Override
        void check(VmValue v, T obj, Map<String, VmValue> staged, String path) throws VmStateException {
            if (!(v instanceof VmValue.Bool)) {
                throw misfit(path, "expected bool, staged " + v);
            }
        }

        @Override
        void apply(T obj, VmValue v, String path) {
            set.accept(obj, ((VmValue.Bool) v).value());
        }

        @Override
        VmStateSchema.Field schema(List<VmField<T>> siblings) {
            return new VmStateSchema.Field(name, "bool", null, 0, since, null);
        }
    }

    // ------------------------------------------------------------------ buffers

    /** A fixed-size byte buffer (QEMU's VMSTATE_BUFFER): one vmdesc entry of type buffer. */
    static final class Buffer<T> extends VmField<T> {
        final int size;
        private final Function<T, byte[]> array;

        Buffer(String name, int size, Function<T, byte[]> array) {
            super(name);
            if (size < 0) {
                throw new IllegalArgumentException("buffer " + name + ": negative size " + size);
            }
            this.size = size;
            this.array = Objects.requireNonNull(array, "array");
        }

        private byte[] target(T obj) {
            byte[] b = array.apply(obj);
            if (b == null || b.length != size) {
                throw new IllegalStateException("buffer " + name + " is declared with " + size + " bytes, the device has "
                        + (b == null ? "null" : b.length));
            }
            return b;
        }

        @Override
        String typeName() {
            return "buffer";
        }

        @Override
        void save(MigrationFile f, T obj, VmsdNode desc) throws IOException {
            f.putBytes(target(obj));
            describe(desc, descName, 1, "buffer", size);
        }

        @Override
        VmValue decode(MigrationFile f, Map<String, VmValue> earlier) throws IOException {
            // size comes from the description, never from the stream
            return new VmValue.Bytes(f.getBytes(size));
        }

        @Override
        VmValue capture(T obj) {
            return new VmValue.Bytes(target(obj).clone());
        }

        @Override
        void check(VmValue v, T obj, Map<String, VmValue> staged, String path) throws VmStateException {
            if (!(v instanceof VmValue.Bytes b) || b.value().length != size) {
                throw misfit(path, "expected a buffer of " + size + " bytes, staged " + v);
            }
            byte[] t = array.apply(obj);
            if (t == null || t.length != size) {
                throw misfit(path, "device buffer has " + (t == null ? "null" : t.length + " bytes") + ", declared " + size);
            }
        }

        @Override
        void apply(T obj, VmValue v, String path) throws VmStateException {
            byte[] t = array.apply(obj);
            byte[] src = ((VmValue.Bytes) v).value();
            if (t == null || t.length != src.length) {
                throw misfit(path, "device buffer changed size during load");
            }
            System.arraycopy(src, 0, t, 0, src.length);
        }

        @Override
        VmStateSchema.Field schema(List<VmField<T>> siblings) {
            return new VmStateSchema.Field(name, "buffer", null, size, since, null);
        }
    }

    /** Bytes kept for compatibility (QEMU's VMSTATE_UNUSED): written as zeros, skipped on load. */
    static final class Unused<T> extends VmField<T> {
        static final String NAME = "unused";
        final int size;

        Unused(int size) {
            super(NAME);
            if (size <= 0) {
                throw new IllegalArgumentException("unused buffer size must be positive: " + size);
            }
            this.size = size;
        }

        @Override
        String typeName() {
            return "unused_buffer";
        }

        @Override
        boolean hasValue() {
            return false;
        }

        @Override
        void save(MigrationFile f, T obj, VmsdNode desc) throws IOException {
            for (int i = 0; i < size; i++) {
                f.putByte(0);
            }
            describe(desc, descName, 1, "unused_buffer", size);
        }

        @Override
        VmValue decode(MigrationFile f, Map<String, VmValue> earlier) throws IOException {
            f.skip(size);
            return null;
        }

        @Override
        VmValue capture(T obj) {
            return null;
        }

        @Override
        void check(VmValue v, T obj, Map<String, VmValue> staged, String path) {}

        @Override
        void apply(T obj, VmValue v, String path) {}

        @Override
        VmStateSchema.Field schema(List<VmField<T>> siblings) {
            return new VmStateSchema.Field(name, "unused_buffer", null, size, since, null);
        }
    }

    // ------------------------------------------------------------------ arrays of scalars

    /**
     * An array of one scalar type, of fixed length or with its length in an earlier integer field
     * of the same VMSD. {@code A} is the Java array type holding it on the device.
     */
    abstract static sealed class ArrayField<T, A> extends VmField<T>
            permits ByteArray, IntArray, LongArray {
        final ScalarType elem;
        final int fixedLength;
        final String lengthField;
        /** Resolved by the builder for variable arrays. */
        Scalar<T> lengthRef;
        private final Function<T, A> get;
        private final BiConsumer<T, A> set;

        ArrayField(String name, ScalarType elem, int fixedLength, String lengthField, Function<T, A> get,
                BiConsumer<T, A> set) {
            super(name);
            this.elem = elem;
            this.fixedLength = fixedLength;
            this.lengthField = lengthField;
            this.get = Objects.requireNonNull(get, "get");
            this.set = set;
            if (lengthField == null && fixedLength < 0) {
                throw new IllegalArgumentException("array " + name + ": negative length " + fixedLength);
            }
        }

        boolean variable() {
            return lengthField != null;
        }

        abstract int length(A a);

        abstract void write(MigrationFile f, A a, int count) throws IOException;

        abstract VmValue read(MigrationFile f, int count) throws IOException;

        abstract VmValue snapshot(A a, int count);

        /** Element count of a staged value of the right kind, or -1 when it is of the wrong kind. */
        abstract int stagedLength(VmValue v);

        /** A new device array holding the staged value. */
        abstract A toArray(VmValue v);

        /** Copies the staged value into the device array, which has the same length. */
        abstract void copyInto(VmValue v, A a);

        @Override
        String typeName() {
            return elem.qemuName;
        }

        /** The number of elements the device has now. */
        private int count(T obj) {
            if (!variable()) {
                return fixedLength;
            }
            long n = lengthRef.valueOf(obj);
            if (n < 0 || n > Integer.MAX_VALUE) {
                throw new IllegalStateException("array " + name + ": length field " + lengthField + " holds " + n);
            }
            return (int) n;
        }

        private A source(T obj, int count) {
            A a = get.apply(obj);
            int have = a == null ? 0 : length(a);
            if (variable() ? have < count : have != count) {
                throw new IllegalStateException("array " + name + " has " + (a == null ? "null" : have + " elements")
                        + ", " + (variable() ? "length field " + lengthField + " says " : "declared ") + count);
            }
            return a;
        }

        @Override
        void save(MigrationFile f, T obj, VmsdNode desc) throws IOException {
            int count = count(obj);
            A a = source(obj, count);
            if (count > 0) {
                write(f, a, count);
            }
            describe(desc, descName, count, elem.qemuName, elem.size);
        }

        @Override
        VmValue decode(MigrationFile f, Map<String, VmValue> earlier) throws IOException {
            int count = fixedLength;
            if (variable()) {
                if (!(earlier.get(lengthField) instanceof VmValue.Int len)) {
                    throw new IllegalStateException("array " + name + ": length field " + lengthField + " not decoded");
                }
                long n = len.value();
                long limitElems = elem.size == 1
                        ? VmStateCodec.MAX_VAR_ARRAY_BYTES
                        : Math.min(VmStateCodec.MAX_VAR_ARRAY_ELEMENTS, VmStateCodec.MAX_VAR_ARRAY_BYTES / elem.size);
                if (n < 0 || n > limitElems) {
                    StreamFormatException e = new StreamFormatException("array " + name + ": length " + lengthField
                            + " = " + len + " is outside 0.." + limitElems, f.position());
                    f.setError(e);
                    throw e;
                }
                count = (int) n;
            }
            return read(f, count);
        }

        @Override
        VmValue capture(T obj) {
            int count = count(obj);
            return snapshot(source(obj, count), count);
        }

        @Override
        void check(VmValue v, T obj, Map<String, VmValue> staged, String path) throws VmStateException {
            int n = stagedLength(v);
            if (n < 0) {
                throw misfit(path, "expected an array of " + elem.qemuName + ", staged " + v);
            }
            if (variable()) {
                VmValue len = staged.get(lengthField);
                if (!(len instanceof VmValue.Int i) || i.value() != n) {
                    throw misfit(path, n + " elements staged but length field " + lengthField + " is " + len);
                }
                if (set == null) {
                    throw misfit(path, "variable array has no setter");
                }
            } else {
                if (n != fixedLength) {
                    throw misfit(path, n + " elements staged, declared " + fixedLength);
                }
                A a = get.apply(obj);
                if (a == null || length(a) != fixedLength) {
                    throw misfit(path, "device array has " + (a == null ? "null" : length(a) + " elements")
                            + ", declared " + fixedLength);
                }
            }
        }

        @Override
        void apply(T obj, VmValue v, String path) throws VmStateException {
            if (variable()) {
                set.accept(obj, toArray(v));
                return;
            }
            A a = get.apply(obj);
            if (a == null || length(a) != stagedLength(v)) {
                throw misfit(path, "device array changed size during load");
            }
            copyInto(v, a);
        }

        @Override
        VmStateSchema.Field schema(List<VmField<T>> siblings) {
            String count = variable() ? "#" + siblings.indexOf(lengthRef) : Integer.toString(fixedLength);
            return new VmStateSchema.Field(name, elem.qemuName, count, 0, since, null);
        }
    }

    static final class ByteArray<T> extends ArrayField<T, byte[]> {
        ByteArray(String name, int fixedLength, String lengthField, Function<T, byte[]> get,
                BiConsumer<T, byte[]> set) {
            super(name, ScalarType.UINT8, fixedLength, lengthField, get, set);
        }

        @Override
        int length(byte[] a) {
            return a.length;
        }

        @Override
        void write(MigrationFile f, byte[] a, int count) throws IOException {
            f.putBytes(a, 0, count);
        }

        @Override
        VmValue read(MigrationFile f, int count) throws IOException {
            return new VmValue.Bytes(f.getBytes(count));
        }

        @Override
        VmValue snapshot(byte[] a, int count) {
            return new VmValue.Bytes(a == null ? new byte[0] : Arrays.copyOf(a, count));
        }

        @Override
        int stagedLength(VmValue v) {
            return v instanceof VmValue.Bytes b ? b.value().length : -1;
        }

        @Override
        byte[] toArray(VmValue v) {
            return ((VmValue.Bytes) v).value().clone();
        }

        @Override
        void copyInto(VmValue v, byte[] a) {
            byte[] src = ((VmValue.Bytes) v).value();
            System.arraycopy(src, 0, a, 0, src.length);
        }
    }

    /** Shared checks of arrays staged as {@link VmValue.Array} of {@link VmValue.Int}. */
    private static int intArrayLength(VmValue v, ScalarType elem) {
        if (!(v instanceof VmValue.Array arr)) {
            return -1;
        }
        for (VmValue e : arr.elements()) {
            if (!(e instanceof VmValue.Int i) || !i.type().equals(elem.qemuName) || !elem.inRange(i.value())) {
                return -1;
            }
        }
        return arr.elements().size();
    }

    static final class IntArray<T> extends ArrayField<T, int[]> {
        IntArray(String name, int fixedLength, String lengthField, Function<T, int[]> get, BiConsumer<T, int[]> set) {
            super(name, ScalarType.UINT32, fixedLength, lengthField, get, set);
        }

        @Override
        int length(int[] a) {
            return a.length;
        }

        @Override
        void write(MigrationFile f, int[] a, int count) throws IOException {
            for (int i = 0; i < count; i++) {
                f.putBe32(a[i]);
            }
        }

        @Override
        VmValue read(MigrationFile f, int count) throws IOException {
            List<VmValue> l = new ArrayList<>(count);
            for (int i = 0; i < count; i++) {
                l.add(new VmValue.Int("uint32", f.getBe32() & 0xFFFF_FFFFL));
            }
            return new VmValue.Array(l);
        }

        @Override
        VmValue snapshot(int[] a, int count) {
            List<VmValue> l = new ArrayList<>(count);
            for (int i = 0; i < count; i++) {
                l.add(new VmValue.Int("uint32", a[i] & 0xFFFF_FFFFL));
            }
            return new VmValue.Array(l);
        }

        @Override
        int stagedLength(VmValue v) {
            return intArrayLength(v, elem);
        }

        @Override
        int[] toArray(VmValue v) {
            List<VmValue> l = ((VmValue.Array) v).elements();
            int[] a = new int[l.size()];
            copyInto(v, a);
            return a;
        }

        @Override
        void copyInto(VmValue v, int[] a) {
            List<VmValue> l = ((VmValue.Array) v).elements();
            for (int i = 0; i < a.length; i++) {
                a[i] = (int) ((VmValue.Int) l.get(i)).value();
            }
        }
    }

    static final class LongArray<T> extends ArrayField<T, long[]> {
        LongArray(String name, int fixedLength, Function<T, long[]> get) {
            super(name, ScalarType.UINT64, fixedLength, null, get, null);
        }

        @Override
        int length(long[] a) {
            return a.length;
        }

        @Override
        void write(MigrationFile f, long[] a, int count) throws IOException {
            for (int i = 0; i < count; i++) {
                f.putBe64(a[i]);
            }
        }

        @Override
        VmValue read(MigrationFile f, int count) throws IOException {
            List<VmValue> l = new ArrayList<>(count);
            for (int i = 0; i < count; i++) {
                l.add(new VmValue.Int("uint64", f.getBe64()));
            }
            return new VmValue.Array(l);
        }

        @Override
        VmValue snapshot(long[] a, int count) {
            List<VmValue> l = new ArrayList<>(count);
            for (int i = 0; i < count; i++) {
                l.add(new VmValue.Int("uint64", a[i]));
            }
            return new VmValue.Array(l);
        }

        @Override
        int stagedLength(VmValue v) {
            return intArrayLength(v, elem);
        }

        @Override
        long[] toArray(VmValue v) {
            long[] a = new long[((VmValue.Array) v).elements().size()];
            copyInto(v, a);
            return a;
        }

        @Override
        void copyInto(VmValue v, long[] a) {
            List<VmValue> l = ((VmValue.Array) v).elements();
            for (int i = 0; i < a.length; i++) {
                a[i] = ((VmValue.Int) l.get(i)).value();
            }
        }
    }

    // ------------------------------------------------------------------ structs

    /** A nested VMSD on an object reached through {@code get}; loaded in place. */
    static final class StructField<T, U> extends VmField<T> {
        final VMStateDescription<U> vmsd;
        private final Function<T, U> get;

        StructField(String name, VMStateDescription<U> vmsd, Function<T, U> get) {
            super(name);
            this.vmsd = Objects.requireNonNull(vmsd, "vmsd");
            this.get = Objects.requireNonNull(get, "get");
        }

        private U nested(T obj) {
            U u = get.apply(obj);
            if (u == null) {
                throw new IllegalStateException("struct " + name + " (" + vmsd.name() + ") is null on the device");
            }
            return u;
        }

        @Override
        String typeName() {
            return "struct";
        }

        @Override
        void bind(T obj) {
            U u = get.apply(obj);
            if (u != null) {
                vmsd.bind(u);
            }
        }

        @Override
        void save(MigrationFile f, T obj, VmsdNode desc) throws IOException {
            VmsdNode node = desc == null ? null : new VmsdNode(vmsd.name(), vmsd.versionId());
            long start = f.position();
            VmStateCodec.saveBody(f, vmsd, nested(obj), node);
            if (desc != null) {
                desc.fields.add(new FieldNode(descName, -1, -1, "struct", node, f.position() - start));
            }
        }

        @Override
        VmValue decode(MigrationFile f, Map<String, VmValue> earlier) throws IOException {
            // a nested struct is always written at its own current version
            return VmStateCodec.decodeBody(f, vmsd, vmsd.versionId());
        }

        @Override
        VmValue capture(T obj) {
            return VmStateCodec.captureBody(vmsd, nested(obj));
        }

        @Override
        void check(VmValue v, T obj, Map<String, VmValue> staged, String path) throws VmStateException {
            if (!(v instanceof VmValue.Struct s)) {
                throw misfit(path, "expected struct " + vmsd.name() + ", staged " + v);
            }
            U u = get.apply(obj);
            if (u == null) {
                throw misfit(path, "struct object is null on the device");
            }
            VmStateCodec.checkBody(vmsd, u, s, path);
        }

        @Override
        void apply(T obj, VmValue v, String path) throws VmStateException {
            VmStateCodec.applyBody(vmsd, get.apply(obj), (VmValue.Struct) v, path);
        }

        @Override
        VmStateSchema.Field schema(List<VmField<T>> siblings) {
            return new VmStateSchema.Field(name, "struct", null, 0, since, vmsd.schema());
        }
    }

    /**
     * A fixed-length array of nested VMSDs over a device list. Declared with a length, or without:
     * then the length is taken once from the first device object bound (registration, save,
     * capture or apply) and every later object must agree.
     */
    static final class StructArray<T, U> extends VmField<T> {
        final VMStateDescription<U> vmsd;
        private final Function<T, List<U>> get;
        private volatile int length;

        StructArray(String name, int length, VMStateDescription<U> vmsd, Function<T, List<U>> get) {
            super(name);
            if (length < -1) {
                throw new IllegalArgumentException("struct array " + name + ": negative length " + length);
            }
            this.length = length;
            this.vmsd = Objects.requireNonNull(vmsd, "vmsd");
            this.get = Objects.requireNonNull(get, "get");
        }

        /** The element count, or -1 while not yet learned. */
        int length() {
            return length;
        }

        @Override
        String typeName() {
            return "struct";
        }

        @Override
        synchronized void bind(T obj) {
            List<U> l = get.apply(obj);
            if (l == null) {
                return;
            }
            if (length == -1) {
                length = l.size();
            } else if (l.size() != length) {
                throw new IllegalStateException("struct array " + name + " has " + length + " elements, this device "
                        + l.size());
            }
            if (!l.isEmpty() && l.getFirst() != null) {
                vmsd.bind(l.getFirst());
            }
        }

        private List<U> elements(T obj) {
            bind(obj);
            List<U> l = get.apply(obj);
            if (l == null || l.size() != length) {
                throw new IllegalStateException("struct array " + name + " is " + (l == null ? "null" : l.size())
                        + " long, declared " + length);
            }
            return l;
        }

        /**
         * QEMU describes only the first element of an array whose element layout cannot vary:
         * none of the nested VMSDs, down the tree of struct fields, declares subsections.
         */
        boolean compressible() {
            return layoutFixed(vmsd);
        }

        private static boolean layoutFixed(VMStateDescription<?> d) {
            if (!d.subsections().isEmpty()) {
                return false;
            }
            for (VmField<?> fl : d.fields()) {
                if (fl instanceof StructField<?, ?> sf && !layoutFixed(sf.vmsd)) {
                    return false;
                }
                if (fl instanceof StructArray<?, ?> sa && !layoutFixed(sa.vmsd)) {
                    return false;
                }
            }
            return true;
        }

        @Override
        void save(MigrationFile f, T obj, VmsdNode desc) throws IOException {
            List<U> l = elements(obj);
            int n = l.size();
            boolean compress = compressible();
            for (int i = 0; i < n; i++) {
                boolean described = desc != null && (i == 0 || !compress);
                VmsdNode node = described ? new VmsdNode(vmsd.name(), vmsd.versionId()) : null;
                long start = f.position();
                U u = l.get(i);
                if (u == null) {
                    throw new IllegalStateException("struct array " + name + ": element " + i + " is null");
                }
                VmStateCodec.saveBody(f, vmsd, u, node);
                if (described) {
                    int arrayLen = n > 1 && compress ? n : -1;
                    int index = n > 1 && !compress ? i : -1;
                    desc.fields.add(new FieldNode(descName, arrayLen, index, "struct", node, f.position() - start));
                }
            }
        }

        @Override
        VmValue decode(MigrationFile f, Map<String, VmValue> earlier) throws IOException {
            int n = length;
            if (n < 0) {
                throw new IllegalStateException("struct array " + name + " (" + vmsd.name() + "): length unknown;"
                        + " declare it or register the device before decoding");
            }
            List<VmValue> l = new ArrayList<>(n);
            for (int i = 0; i < n; i++) {
                l.add(VmStateCodec.decodeBody(f, vmsd, vmsd.versionId()));
            }
            return new VmValue.Array(l);
        }

        @Override
        VmValue capture(T obj) {
            List<U> l = elements(obj);
            List<VmValue> out = new ArrayList<>(l.size());
            for (U u : l) {
                out.add(VmStateCodec.captureBody(vmsd, u));
            }
            return new VmValue.Array(out);
        }

        @Override
        void check(VmValue v, T obj, Map<String, VmValue> staged, String path) throws VmStateException {
            List<U> l = get.apply(obj);
            if (!(v instanceof VmValue.Array arr)) {
                throw misfit(path, "expected an array of struct " + vmsd.name() + ", staged " + v);
            }
            if (l == null || l.size() != arr.elements().size() || (length >= 0 && length != l.size())) {
                throw misfit(path, arr.elements().size() + " elements staged, device has "
                        + (l == null ? "null" : l.size()) + (length >= 0 ? ", declared " + length : ""));
            }
            for (int i = 0; i < l.size(); i++) {
                if (!(arr.elements().get(i) instanceof VmValue.Struct s) || l.get(i) == null) {
                    throw misfit(path + "[" + i + "]", "expected struct " + vmsd.name());
                }
                VmStateCodec.checkBody(vmsd, l.get(i), s, path + "[" + i + "]");
            }
        }

        @Override
        void apply(T obj, VmValue v, String path) throws VmStateException {
            List<U> l = get.apply(obj);
            List<VmValue> staged = ((VmValue.Array) v).elements();
            if (l == null || l.size() != staged.size()) {
                throw misfit(path, "device list changed size during load");
            }
            for (int i = 0; i < staged.size(); i++) {
                VmStateCodec.applyBody(vmsd, l.get(i), (VmValue.Struct) staged.get(i), path + "[" + i + "]");
            }
        }

        @Override
        VmStateSchema.Field schema(List<VmField<T>> siblings) {
            String count = length < 0 ? "?" : Integer.toString(length);
            return new VmStateSchema.Field(name, "struct", count, 0, since, vmsd.schema());
        }
    }
}
