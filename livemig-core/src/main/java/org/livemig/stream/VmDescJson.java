package org.livemig.stream;

/**
 * The vmdesc trailer's JSON (the VMDESCRIPTION record after EOF, format doc section 4): the one
 * description of its shape and the names of its members, written by {@code vmstate.VmDesc} and
 * read by {@code analyze.VmDescription}. For every FULL section in stream order, each field with
 * the bytes it produced, so that a reader without the devices can walk or skip any section:
 * <pre>
 * {"page_size": 4096, "devices": [{"name": idstr, "instance_id": n, "vmsd_name": s, "version": n,
 *   "fields": [{"name": s, ["array_len": n | "index": i], "type": s, ["struct": {...}], "size": n}, ...],
 *   ["subsections": [{"vmsd_name": s, "version": n, "fields": [...], ["subsections": [...]]}, ...]]}, ...]}
 * </pre>
 * QEMU writes it with {@code ", "} and {@code ": "} separators and {@link JsonText#quoteAsQemu}'s
 * strings; a {@code "struct"} member holds a nested VMSD's description (vmsd_name, version, fields,
 * subsections) in a field of type {@code "struct"}, which has no size of its own.
 */
public final class VmDescJson {
    private VmDescJson() {}

    /** The members, as QEMU names them. */
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
}
