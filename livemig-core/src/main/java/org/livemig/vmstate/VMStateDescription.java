package org.livemig.vmstate;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.function.BiConsumer;
import java.util.function.Consumer;
import java.util.function.Function;
import java.util.function.ObjLongConsumer;
import java.util.function.Predicate;
import java.util.function.ToLongFunction;
import org.livemig.stream.QemuStream;

/**
 * QEMU's VMStateDescription: the declarative, versioned layout of one device's state (or of a
 * nested struct, or of a subsection), with getters and setters on the device object of type
 * {@code T}. {@link VmStateCodec} writes it byte for byte as QEMU does and reads it back.
 *
 * <p>Immutable once built and safe to share between machines (source and destination in one JVM)
 * and threads. The only exception is a struct array declared without a length, which learns the
 * length once from the first device object it is bound to.
 *
 * <p>Versions: {@code versionId} is what this build writes; streams from {@code minimumVersionId}
 * up to it can be read. A field added later is declared with {@link Builder#since(int)} and is
 * absent from older streams (the device keeps its current value on load). State that only some
 * guests have goes into a {@link Builder#subsection subsection} with a {@code needed} predicate.
 */
public final class VMStateDescription<T> {
    private final String name;
    private final int versionId;
    private final int minimumVersionId;
    private final List<VmField<T>> fields;
    private final List<VMStateDescription<T>> subsections;
    private final Predicate<T> needed;
    private final Consumer<T> preSave;
    private final Consumer<T> preLoad;
    private final PostLoad<T> postLoad;
    /** The load steps that need the BQL; all of them unless the description says otherwise. */
    private final java.util.EnumSet<LoadHook> bqlHooks;

    private VMStateDescription(Builder<T> b) {
        this.name = b.name;
        this.versionId = b.versionId;
        this.minimumVersionId = b.minimumVersionId == null ? b.versionId : b.minimumVersionId;
        this.fields = List.copyOf(b.fields);
        this.subsections = List.copyOf(b.subsections);
        this.needed = b.needed;
        this.preSave = b.preSave;
        this.preLoad = b.preLoad;
        this.postLoad = b.postLoad;
        this.bqlHooks = java.util.EnumSet.copyOf(b.bqlHooks);
    }

    public static <T> Builder<T> builder(String name) {
        return new Builder<>(name);
    }

    public String name() {
        return name;
    }

    public int versionId() {
        return versionId;
    }

    public int minimumVersionId() {
        return minimumVersionId;
    }

    /**
     * Whether applying this description's state takes the BQL for {@code hook}: true for every
     * step unless {@link Builder#bqlOnlyFor} named fewer.
     */
    public boolean needsBql(LoadHook hook) {
        return bqlHooks.contains(hook);
    }

    /** Whether every step of applying this description and its subsections takes the BQL (the default). */
    public boolean needsBqlThroughout() {
        if (bqlHooks.size() < LoadHook.values().length) {
            return false;
        }
        for (VMStateDescription<T> sub : subsections()) {
            if (!sub.needsBqlThroughout()) {
                return false;
            }
        }
        return true;
    }

    /** For subsections: whether {@code obj} needs it written. True when no predicate was given. */
    public boolean isNeeded(T obj) {
        return needed == null || needed.test(obj);
    }

    /** The subsections in declaration order (the order they are written in). */
    public List<VMStateDescription<T>> subsections() {
        return subsections;
    }

    /** The layout as a schema, to pin in tests and compare with {@link VmStateSchema#compatibilityProblems}. */
    public VmStateSchema schema() {
        List<VmStateSchema.Field> fs = new ArrayList<>(fields.size());
        for (VmField<T> f : fields) {
            fs.add(f.schema(fields));
        }
        List<VmStateSchema> subs = new ArrayList<>(subsections.size());
        for (VMStateDescription<T> s : subsections) {
            subs.add(s.schema());
        }
        return new VmStateSchema(name, versionId, minimumVersionId, fs, subs);
    }

    @Override
    public String toString() {
        return "VMStateDescription[" + name + " v" + versionId + " (min " + minimumVersionId + ")]";
    }

    List<VmField<T>> fields() {
        return fields;
    }

    VMStateDescription<T> subsection(String subName) {
        for (VMStateDescription<T> s : subsections) {
            if (s.name.equals(subName)) {
                return s;
            }
        }
        return null;
    }

    /** Learns lengths that the description leaves to the device (struct arrays without a length). */
    void bind(T obj) {
        for (VmField<T> f : fields) {
            f.bind(obj);
        }
        for (VMStateDescription<T> s : subsections) {
            s.bind(obj);
        }
    }

    void runPreSave(T obj) {
        if (preSave != null) {
            preSave.accept(obj);
        }
    }

    void runPreLoad(T obj) {
        if (preLoad != null) {
            preLoad.accept(obj);
        }
    }

    void runPostLoad(T obj, int version) throws VmStateException {
        if (postLoad != null) {
            postLoad.postLoad(obj, version);
        }
    }

    /** Collects fields in declaration order. Not thread-safe; use from one thread, then build. */
    public static final class Builder<T> {
        private final String name;
        private int versionId = 1;
        private Integer minimumVersionId;
        private final List<VmField<T>> fields = new ArrayList<>();
        private final List<VMStateDescription<T>> subsections = new ArrayList<>();
        private Predicate<T> needed;
        private Consumer<T> preSave;
        private Consumer<T> preLoad;
        private PostLoad<T> postLoad;
        private java.util.EnumSet<LoadHook> bqlHooks = java.util.EnumSet.allOf(LoadHook.class);

        private Builder(String name) {
            this.name = Objects.requireNonNull(name, "name");
            if (name.isEmpty() || name.getBytes(StandardCharsets.UTF_8).length > QemuStream.MAX_COUNTED_STRING) {
                throw new IllegalArgumentException("VMSD name must be 1..255 bytes: '" + name + "'");
            }
        }

        /** The version this build writes (default 1). */
        public Builder<T> version(int versionId) {
            if (versionId < 0) {
                throw new IllegalArgumentException(name + ": negative version " + versionId);
            }
            this.versionId = versionId;
            return this;
        }

        /** The oldest stream version this build reads (default: the version). */
        public Builder<T> minimumVersion(int minimumVersionId) {
            if (minimumVersionId < 0) {
                throw new IllegalArgumentException(name + ": negative minimum version " + minimumVersionId);
            }
            this.minimumVersionId = minimumVersionId;
            return this;
        }

        private Builder<T> add(VmField<T> f) {
            fields.add(f);
            return this;
        }

        private Builder<T> scalar(String n, ScalarType t, ToLongFunction<T> get, ObjLongConsumer<T> set) {
            return add(new VmField.Scalar<>(n, t, get, set));
        }

        public Builder<T> uint8(String name, ToLongFunction<T> get, ObjLongConsumer<T> set) {
            return scalar(name, ScalarType.UINT8, get, set);
        }

        public Builder<T> uint16(String name, ToLongFunction<T> get, ObjLongConsumer<T> set) {
            return scalar(name, ScalarType.UINT16, get, set);
        }

        public Builder<T> uint32(String name, ToLongFunction<T> get, ObjLongConsumer<T> set) {
            return scalar(name, ScalarType.UINT32, get, set);
        }

        public Builder<T> uint64(String name, ToLongFunction<T> get, ObjLongConsumer<T> set) {
            return scalar(name, ScalarType.UINT64, get, set);
        }

        public Builder<T> int8(String name, ToLongFunction<T> get, ObjLongConsumer<T> set) {
            return scalar(name, ScalarType.INT8, get, set);
        }

        public Builder<T> int16(String name, ToLongFunction<T> get, ObjLongConsumer<T> set) {
            return scalar(name, ScalarType.INT16, get, set);
        }

        public Builder<T> int32(String name, ToLongFunction<T> get, ObjLongConsumer<T> set) {
            return scalar(name, ScalarType.INT32, get, set);
        }

        public Builder<T> int64(String name, ToLongFunction<T> get, ObjLongConsumer<T> set) {
            return scalar(name, ScalarType.INT64, get, set);
        }

        public Builder<T> bool(String name, Predicate<T> get, BiConsumer<T, Boolean> set) {
            return add(new VmField.BoolField<>(name, get, set));
        }

        /** A fixed-size buffer; loads into the same array in place. */
        public Builder<T> buffer(String name, int size, Function<T, byte[]> array) {
            return add(new VmField.Buffer<>(name, size, array));
        }

        /** Bytes written as zeros and ignored on load, where a field used to be. */
        public Builder<T> unused(int size) {
            return add(new VmField.Unused<>(size));
        }

        public Builder<T> uint8Array(String name, int length, Function<T, byte[]> array) {
            return add(new VmField.ByteArray<>(name, length, null, array, null));
        }

        public Builder<T> uint32Array(String name, int length, Function<T, int[]> array) {
            return add(new VmField.IntArray<>(name, length, null, array, null));
        }

        public Builder<T> uint64Array(String name, int length, Function<T, long[]> array) {
            return add(new VmField.LongArray<>(name, length, array));
        }

        /**
         * A uint8 array whose length is the value of {@code lengthField}, an integer field declared
         * earlier in this VMSD. On save the device array may be longer (only that many are written);
         * on load the setter receives a new array of exactly that length.
         */
        public Builder<T> varUint8Array(String name, String lengthField, Function<T, byte[]> get,
                BiConsumer<T, byte[]> set) {
            return add(new VmField.ByteArray<>(name, -1, Objects.requireNonNull(lengthField), get,
                    Objects.requireNonNull(set, "set")));
        }

        /** As {@link #varUint8Array}, for uint32 elements. */
        public Builder<T> varUint32Array(String name, String lengthField, Function<T, int[]> get,
                BiConsumer<T, int[]> set) {
            return add(new VmField.IntArray<>(name, -1, Objects.requireNonNull(lengthField), get,
                    Objects.requireNonNull(set, "set")));
        }

        /** A nested struct: its fields, then its subsections. The nested object is loaded in place. */
        public <U> Builder<T> struct(String name, VMStateDescription<U> vmsd, Function<T, U> get) {
            return add(new VmField.StructField<>(name, vmsd, get));
        }

        /**
         * A fixed array of nested structs whose length is taken from the device list the first time
         * the description meets a device (registration, save, capture or apply); all devices must
         * then agree. Prefer {@link #structArray(String, int, VMStateDescription, Function)}, which
         * lets a description decode a stream before any device is bound.
         */
        public <U> Builder<T> structArray(String name, VMStateDescription<U> vmsd, Function<T, List<U>> get) {
            return add(new VmField.StructArray<>(name, -1, vmsd, get));
        }

        /** A fixed array of {@code length} nested structs over a device list of that size. */
        public <U> Builder<T> structArray(String name, int length, VMStateDescription<U> vmsd,
                Function<T, List<U>> get) {
            if (length < 0) {
                throw new IllegalArgumentException("struct array " + name + ": negative length " + length);
            }
            return add(new VmField.StructArray<>(name, length, vmsd, get));
        }

        /** Marks the last added field as present only in streams of version {@code version} or newer. */
        public Builder<T> since(int version) {
            if (fields.isEmpty()) {
                throw new IllegalStateException(name + ": since() needs a field before it");
            }
            if (version < 0) {
                throw new IllegalArgumentException(name + ": negative since version " + version);
            }
            fields.getLast().since = version;
            return this;
        }

        /**
         * Adds a subsection: a description over the same object, written after the fields when its
         * {@code needed} predicate holds. Its name must start with this name and a slash.
         */
        public Builder<T> subsection(VMStateDescription<T> sub) {
            Objects.requireNonNull(sub, "sub");
            if (!sub.name.startsWith(name + "/")) {
                throw new IllegalArgumentException("subsection '" + sub.name + "' must be named '" + name + "/...'");
            }
            for (VMStateDescription<T> s : subsections) {
                if (s.name.equals(sub.name)) {
                    throw new IllegalArgumentException(name + ": duplicate subsection " + sub.name);
                }
            }
            subsections.add(sub);
            return this;
        }

        public Builder<T> needed(Predicate<T> p) {
            this.needed = Objects.requireNonNull(p);
            return this;
        }

        /** Runs before the fields are written (and before a capture): sync derived state into fields. */
        public Builder<T> preSave(Consumer<T> hook) {
            this.preSave = Objects.requireNonNull(hook);
            return this;
        }

        /** Runs before staged fields are assigned; with the BQL held unless {@link #bqlOnlyFor} leaves it out. */
        public Builder<T> preLoad(Consumer<T> hook) {
            this.preLoad = Objects.requireNonNull(hook);
            return this;
        }

        /** Runs after fields and subsections are assigned; may refuse the state. With the BQL held unless {@link #bqlOnlyFor} leaves it out. */
        public Builder<T> postLoad(PostLoad<T> hook) {
            this.postLoad = Objects.requireNonNull(hook);
            return this;
        }

        /**
         * The load steps that need the BQL, and no others: the load path applies the rest without
         * it (the seed's open to-do, closed per device). By default every step takes it, as QEMU holds
         * the lock for a whole section; a device whose fields and pre-load touch nothing the
         * lock guards (state owned by the device, like guest RAM) says {@code bqlOnlyFor(POST_LOAD)},
         * or nothing at all.
         */
        public Builder<T> bqlOnlyFor(LoadHook... hooks) {
            java.util.EnumSet<LoadHook> s = java.util.EnumSet.noneOf(LoadHook.class);
            for (LoadHook h : hooks) {
                s.add(Objects.requireNonNull(h));
            }
            this.bqlHooks = s;
            return this;
        }

        /** Checks the description and freezes it. */
        public VMStateDescription<T> build() {
            int min = minimumVersionId == null ? versionId : minimumVersionId;
            if (min > versionId) {
                throw new IllegalArgumentException(name + ": minimum version " + min + " > version " + versionId);
            }
            Map<String, VmField<T>> byName = new HashMap<>();
            Map<String, Integer> occurrences = new HashMap<>();
            for (VmField<T> f : fields) {
                occurrences.merge(f.name, 1, Integer::sum);
            }
            Map<String, Integer> seen = new HashMap<>();
            Set<String> valueNames = new HashSet<>();
            for (VmField<T> f : fields) {
                if (f.since > versionId) {
                    throw new IllegalArgumentException(name + "." + f.name + ": since " + f.since
                            + " is newer than the version " + versionId);
                }
                if (f.hasValue() && !valueNames.add(f.name)) {
                    throw new IllegalArgumentException(name + ": duplicate field name " + f.name);
                }
                int k = seen.merge(f.name, 1, Integer::sum) - 1;
                f.descName = occurrences.get(f.name) > 1 ? f.name + "[" + k + "]" : f.name;
                if (f instanceof VmField.ArrayField<T, ?> a && a.variable()) {
                    if (!(byName.get(a.lengthField) instanceof VmField.Scalar<T> len)) {
                        throw new IllegalArgumentException(name + "." + f.name + ": length field " + a.lengthField
                                + " must be an integer field declared before it");
                    }
                    if (len.since > f.since) {
                        throw new IllegalArgumentException(name + "." + f.name + ": length field " + a.lengthField
                                + " is newer (since " + len.since + ") than the array (since " + f.since + ")");
                    }
                    a.lengthRef = len;
                }
                if (f.hasValue()) {
                    byName.put(f.name, f);
                }
            }
            return new VMStateDescription<>(this);
        }
    }
}
