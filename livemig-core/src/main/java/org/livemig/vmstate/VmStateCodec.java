package org.livemig.vmstate;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.QemuStream;
import org.livemig.stream.StreamFormatException;
import org.livemig.vmstate.VmDesc.VmsdNode;

/**
 * Encodes and decodes VMSD bodies as QEMU does (format doc, section 5): fields in declaration
 * order with no tags, big-endian; then, for each subsection whose {@code needed} holds,
 * {@code 0x05, counted name, be32 version, body}.
 *
 * <p>Loading is split in two so that no lock is held while bytes arrive: {@link #decode} reads a
 * body into a {@link VmValue.Struct} without touching any device, and {@link #apply} assigns it
 * under the BQL. Codec only: the section header and footer are the caller's.
 */
public final class VmStateCodec {
    /** Largest variable-length array accepted from a stream, in bytes on the wire (64 MiB). */
    public static final long MAX_VAR_ARRAY_BYTES = 64L << 20;
    /** Largest element count of a variable array of wider-than-byte elements (each becomes an object). */
    public static final int MAX_VAR_ARRAY_ELEMENTS = 1 << 20;

    private VmStateCodec() {}

    /**
     * Called with the BQL held (it reads device state): writes {@code obj} as QEMU does, preSave,
     * fields, then needed subsections (recursively). When {@code desc} is given it receives this
     * VMSD's vmdesc entry, with each field's real byte size.
     */
    public static <T> void save(MigrationFile f, VMStateDescription<T> vmsd, T obj, VmDesc.Device desc)
            throws IOException {
        Objects.requireNonNull(obj, "obj");
        vmsd.bind(obj);
        VmsdNode node = desc == null ? null : desc.resetBody();
        saveBody(f, vmsd, obj, node);
    }

    /**
     * Called without the BQL: reads one VMSD body written at {@code streamVersion} into a value
     * tree, touching no device object. Fails with a {@link StreamFormatException} carrying the byte
     * offset for a version outside {@code [minimumVersionId, versionId]}, an unknown or repeated
     * subsection, a variable length beyond the limits, or truncation.
     */
    public static VmValue.Struct decode(MigrationFile f, VMStateDescription<?> vmsd, int streamVersion)
            throws IOException {
        return decodeBody(f, vmsd, streamVersion);
    }

    /**
     * Called with the BQL held: applies a staged tree. Checks first that it fits the description
     * and the device (nothing is assigned if not), then runs preLoad, assigns fields (nested
     * structs the same way), applies subsections in stream order, and runs postLoad, which may
     * refuse the state.
     */
    public static <T> void apply(VMStateDescription<T> vmsd, T obj, VmValue.Struct staged) throws VmStateException {
        apply(vmsd, obj, staged, HookLock.HELD);
    }

    /**
     * As {@link #apply(VMStateDescription, Object, VmValue.Struct)}, called with or without the
     * BQL as {@code lock} says: each step (preLoad, the fields with the check that precedes them,
     * each subsection's steps, postLoad) runs through {@code lock}, which takes the BQL only for
     * the steps the description {@linkplain VMStateDescription#needsBql says need it} — once for
     * the whole apply when every step needs it.
     */
    public static <T> void apply(VMStateDescription<T> vmsd, T obj, VmValue.Struct staged, HookLock lock)
            throws VmStateException {
        Objects.requireNonNull(obj, "obj");
        Objects.requireNonNull(staged, "staged");
        Objects.requireNonNull(lock, "lock");
        if (lock != HookLock.HELD && vmsd.needsBqlThroughout()) {
            // Every step needs the lock: take it once, so that no one sees the device half-applied.
            lock.run(true, () -> apply(vmsd, obj, staged, HookLock.HELD));
            return;
        }
        lock.run(vmsd.needsBql(LoadHook.FIELDS), () -> {
            try {
                vmsd.bind(obj);
            } catch (IllegalStateException e) {
                throw new VmStateException(vmsd.name() + ": " + e.getMessage(), e);
            }
            checkBody(vmsd, obj, staged, vmsd.name());
        });
        applyBody(vmsd, obj, staged, vmsd.name(), lock);
    }

    /**
     * Called with the BQL held: the current state of {@code obj} as a value tree, equal to what
     * saving then decoding would give. Runs the preSave hooks like {@link #save}.
     */
    public static <T> VmValue.Struct capture(VMStateDescription<T> vmsd, T obj) {
        Objects.requireNonNull(obj, "obj");
        vmsd.bind(obj);
        return captureBody(vmsd, obj);
    }

    // ------------------------------------------------------------------ save

    static <T> void saveBody(MigrationFile f, VMStateDescription<T> vmsd, T obj, VmsdNode desc) throws IOException {
        vmsd.runPreSave(obj);
        if (desc != null) {
            desc.vmsdName = vmsd.name();
            desc.version = vmsd.versionId();
        }
        for (VmField<T> field : vmsd.fields()) {
            field.save(f, obj, desc);
        }
        for (VMStateDescription<T> sub : vmsd.subsections()) {
            if (!sub.isNeeded(obj)) {
                continue;
            }
            VmsdNode subDesc = desc == null ? null : desc.addSubsection(sub.name(), sub.versionId());
            f.putByte(QemuStream.SECTION_SUBSECTION);
            f.putCountedString(sub.name());
            f.putBe32(sub.versionId());
            saveBody(f, sub, obj, subDesc);
        }
    }

    // ------------------------------------------------------------------ decode

    /** A decode error already naming its field; passed through unchanged by enclosing bodies. */
    static final class FieldFormatException extends StreamFormatException {
        FieldFormatException(String message, long offset, Throwable cause) {
            super(message, offset, null, cause);
        }
    }

    private static StreamFormatException fail(MigrationFile f, String message, long offset) {
        StreamFormatException e = new FieldFormatException(message, offset, null);
        f.setError(e);
        return e;
    }

    /** The message without the offset suffix that {@link StreamFormatException#getMessage()} adds. */
    private static String bareMessage(StreamFormatException e) {
        String m = e.getMessage();
        String suffix = " (at byte offset " + e.offset() + ")";
        return e.section() == null && m.endsWith(suffix) ? m.substring(0, m.length() - suffix.length()) : m;
    }

    static VmValue.Struct decodeBody(MigrationFile f, VMStateDescription<?> vmsd, int version) throws IOException {
        if (version > vmsd.versionId()) {
            throw fail(f, vmsd.name() + ": incoming version_id " + version + " is too new for local version_id "
                    + vmsd.versionId(), f.position());
        }
        if (version < vmsd.minimumVersionId()) {
            throw fail(f, vmsd.name() + ": incoming version_id " + version + " is too old for local minimum version_id "
                    + vmsd.minimumVersionId(), f.position());
        }
        LinkedHashMap<String, VmValue> fields = new LinkedHashMap<>();
        for (VmField<?> field : vmsd.fields()) {
            if (field.since > version) {
                continue;
            }
            long start = f.position();
            VmValue v;
            try {
                v = field.decode(f, fields);
            } catch (FieldFormatException e) {
                throw e;
            } catch (StreamFormatException e) {
                throw new FieldFormatException(vmsd.name() + "." + field.name + " (" + field.typeName()
                        + ", stream version " + version + ", field starts at " + start + "): " + bareMessage(e),
                        e.offset(), e);
            }
            if (v != null) {
                fields.put(field.name, v);
            }
        }
        List<VmValue.Struct> subs = decodeSubsections(f, vmsd);
        return new VmValue.Struct(vmsd.name(), version, fields, subs);
    }

    /**
     * Reads subsections while the next bytes look like one of ours, as QEMU's loader peeks:
     * 0x05, a length of at least len(parent)+1, and a name starting with the parent's name.
     * Anything else (a footer, the parent's next field, end of data) ends the list. Data that ends
     * after a 0x05 while the bytes still spell one of ours is a truncation error where QEMU would
     * stop (in a real stream a body is always followed by more: a footer, EOF). An unknown
     * name of the form {@code parent/...} is an error, as in QEMU. Two cases where QEMU fails or
     * misreads end the list instead, which still loads every stream QEMU writes: an unknown name that
     * only shares the prefix ({@code dev/sub10} after {@code dev/sub1}), and a subsection already
     * read in this body.
     */
    private static List<VmValue.Struct> decodeSubsections(MigrationFile f, VMStateDescription<?> vmsd)
            throws IOException {
        byte[] parent = vmsd.name().getBytes(StandardCharsets.UTF_8);
        List<VmValue.Struct> subs = new ArrayList<>();
        Set<String> seen = new HashSet<>();
        while (f.peekByte(0) == QemuStream.SECTION_SUBSECTION) {
            int len = f.peekByte(1);
            if (len < 0) {
                throw fail(f, vmsd.name() + ": stream truncated after a subsection marker", f.position() + 1);
            }
            if (len < parent.length + 1) {
                break;
            }
            byte[] nameBytes = new byte[len];
            boolean ours = true;
            for (int i = 0; i < len && ours; i++) {
                int b = f.peekByte(2 + i);
                if (b < 0) {
                    // data ends inside a name that so far spells ours: a cut subsection header
                    throw fail(f, vmsd.name() + ": stream truncated inside a subsection header ("
                            + i + " of " + len + " name bytes)", f.position() + 2 + i);
                }
                nameBytes[i] = (byte) b;
                ours = i >= parent.length || b == (parent[i] & 0xFF);
            }
            if (!ours) {
                break;
            }
            long offset = f.position();
            String subName = new String(nameBytes, StandardCharsets.UTF_8);
            VMStateDescription<?> sub = vmsd.subsection(subName);
            if (sub == null) {
                if (!subName.startsWith(vmsd.name() + "/")) {
                    // "dev/sub10" after the body of "dev/sub1": a sibling, not ours (QEMU would fail here)
                    break;
                }
                throw fail(f, vmsd.name() + ": unknown subsection '" + subName + "'", offset);
            }
            if (!seen.add(subName)) {
                // the same subsection again can only belong to a following body, such as the next
                // element of a struct array whose fields took no bytes (QEMU would load it twice)
                break;
            }
            f.skip(2L + len);
            int subVersion = f.getBe32();
            subs.add(decodeBody(f, sub, subVersion));
        }
        return subs;
    }

    // ------------------------------------------------------------------ capture

    static <T> VmValue.Struct captureBody(VMStateDescription<T> vmsd, T obj) {
        vmsd.runPreSave(obj);
        LinkedHashMap<String, VmValue> fields = new LinkedHashMap<>();
        for (VmField<T> field : vmsd.fields()) {
            VmValue v = field.capture(obj);
            if (v != null) {
                fields.put(field.name, v);
            }
        }
        List<VmValue.Struct> subs = new ArrayList<>();
        for (VMStateDescription<T> sub : vmsd.subsections()) {
            if (sub.isNeeded(obj)) {
                subs.add(captureBody(sub, obj));
            }
        }
        return new VmValue.Struct(vmsd.name(), vmsd.versionId(), fields, subs);
    }

    // ------------------------------------------------------------------ apply

    /** Throws unless {@code staged} can be applied to {@code obj} as {@code vmsd}; mutates nothing. */
    static <T> void checkBody(VMStateDescription<T> vmsd, T obj, VmValue.Struct staged, String path)
            throws VmStateException {
        if (!staged.vmsdName().equals(vmsd.name())) {
            throw new VmStateException(path + ": staged state is for '" + staged.vmsdName() + "', not '"
                    + vmsd.name() + "'");
        }
        int version = staged.version();
        if (version > vmsd.versionId() || version < vmsd.minimumVersionId()) {
            throw new VmStateException(path + ": staged version " + version + " outside " + vmsd.minimumVersionId()
                    + ".." + vmsd.versionId());
        }
        Map<String, VmValue> staging = staged.fields();
        Set<String> known = new HashSet<>();
        for (VmField<T> field : vmsd.fields()) {
            if (!field.hasValue()) {
                continue;
            }
            known.add(field.name);
            VmValue v = staging.get(field.name);
            String fieldPath = path + "." + field.name;
            if (field.since > version) {
                if (v != null) {
                    throw new VmStateException(fieldPath + ": present, but the field is newer (since " + field.since
                            + ") than the staged version " + version);
                }
            } else if (v == null) {
                throw new VmStateException(fieldPath + ": missing from the staged state");
            } else {
                field.check(v, obj, staging, fieldPath);
            }
        }
        for (String k : staging.keySet()) {
            if (!known.contains(k)) {
                throw new VmStateException(path + ": staged field '" + k + "' is not in the description");
            }
        }
        Set<String> seen = new HashSet<>();
        for (VmValue.Struct s : staged.subsections()) {
            VMStateDescription<T> sub = vmsd.subsection(s.vmsdName());
            if (sub == null) {
                throw new VmStateException(path + ": unknown subsection '" + s.vmsdName() + "'");
            }
            if (!seen.add(s.vmsdName())) {
                throw new VmStateException(path + ": subsection '" + s.vmsdName() + "' staged twice");
            }
            checkBody(sub, obj, s, s.vmsdName());
        }
    }

    /** Applies a checked body within a step that already holds what it needs (a nested struct's fields). */
    static <T> void applyBody(VMStateDescription<T> vmsd, T obj, VmValue.Struct staged, String path)
            throws VmStateException {
        applyBody(vmsd, obj, staged, path, HookLock.HELD);
    }

    private static <T> void applyBody(VMStateDescription<T> vmsd, T obj, VmValue.Struct staged, String path,
                                      HookLock lock) throws VmStateException {
        lock.run(vmsd.needsBql(LoadHook.PRE_LOAD), () -> vmsd.runPreLoad(obj));
        lock.run(vmsd.needsBql(LoadHook.FIELDS), () -> {
            for (VmField<T> field : vmsd.fields()) {
                VmValue v = field.hasValue() ? staged.fields().get(field.name) : null;
                if (v != null) {
                    field.apply(obj, v, path + "." + field.name);
                }
            }
        });
        for (VmValue.Struct s : staged.subsections()) {
            applyBody(vmsd.subsection(s.vmsdName()), obj, s, s.vmsdName(), lock);
        }
        lock.run(vmsd.needsBql(LoadHook.POST_LOAD), () -> vmsd.runPostLoad(obj, staged.version()));
    }
}
