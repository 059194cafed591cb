package org.livemig.analyze;

import java.util.List;

/**
 * A decoded piece of device state: either a leaf (the bytes of one field element, with the type
 * the description gave it) or a struct (fields in stream order, then the subsections that were
 * present). Leaves keep their raw bytes, so re-encoding a decoded section gives the same bytes.
 */
public sealed interface StreamValue permits StreamValue.Leaf, StreamValue.Struct {

    /** How a leaf's bytes are read and shown, following analyze-migration.py's field readers. */
    enum Kind {
        /** Big-endian two's complement; shown as hex of the unsigned value, plus "(n)" when negative. */
        INT_SIGNED,
        /** Big-endian unsigned; shown as zero-padded hex. */
        INT_UNSIGNED,
        /** One byte (or more); true when the first is non-zero. */
        BOOL,
        /** Opaque bytes, shown as space-separated hex pairs. */
        BYTES,
        /** A counted string (configuration capabilities). */
        CAPABILITY,
        /** A NULL array-of-pointers element: one marker byte. */
        NULLPTR;

        /** The kind analyze-migration.py uses for a vmdesc type name. */
        public static Kind ofType(String type) {
            return switch (type) {
                case "bool" -> BOOL;
                case "int8", "int16", "int32", "int64", "int32 equal", "int32 le", "int64 equal",
                     "uint8 equal", "uint16 equal" -> INT_SIGNED;
                case "uint8", "uint16", "uint32", "uint64", "uint32 equal" -> INT_UNSIGNED;
                case "capability" -> CAPABILITY;
                case "nullptr" -> NULLPTR;
                default -> BYTES;
            };
        }
    }

    /** One field element: its vmdesc type, how to show it, and its bytes as they were in the stream. */
    record Leaf(String type, Kind kind, byte[] raw) implements StreamValue {
    }

    /** A VMSD body: its fields in stream order, then its subsections in stream order. */
    record Struct(List<Field> fields, List<Subsection> subsections) implements StreamValue {
    }

    /** A field element; {@code index} is the array index, or -1 for a field that is not an array. */
    record Field(String name, int index, StreamValue value) {
    }

    /** A subsection as it was in the stream: name (raw bytes as ISO-8859-1), version, body. */
    record Subsection(String name, int version, Struct body) {
    }
}
