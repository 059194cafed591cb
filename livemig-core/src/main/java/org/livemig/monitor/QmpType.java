package org.livemig.monitor;

import java.math.BigInteger;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;

import tools.jackson.databind.JsonNode;

/**
 * A QAPI type, declared per command to validate its {@code arguments} before the handler runs.
 * Validation answers exactly what QEMU 7.2's input visitor answers for the same mistake:
 * "Parameter 'uri' is missing", "Invalid parameter type for 'uri', expected: string",
 * "Parameter 'foo' is unexpected", "Parameter 'capability' does not accept value 'x'",
 * "Parameter 'max-bandwidth' expects uint64", with QEMU's dotted and indexed names
 * ({@code capabilities[0].state}).
 *
 * <p>Immutable; share freely.
 */
public sealed interface QmpType permits QmpType.Scalar, QmpType.EnumType, QmpType.ArrayType, QmpType.Struct {

    /** QAPI {@code str}. */
    QmpType STR = new Scalar(Kind.STR);
    /** QAPI {@code int} (int64). */
    QmpType INT = new Scalar(Kind.INT);
    /** QAPI {@code uint8}. */
    QmpType UINT8 = new Scalar(Kind.UINT8);
    /** QAPI {@code uint16}. */
    QmpType UINT16 = new Scalar(Kind.UINT16);
    /** QAPI {@code uint32}. */
    QmpType UINT32 = new Scalar(Kind.UINT32);
    /** QAPI {@code uint64}; negative integers are accepted (and mean their two's complement), as QEMU does. */
    QmpType UINT64 = new Scalar(Kind.UINT64);
    /** QAPI {@code size}: a uint64 on the QMP wire. */
    QmpType SIZE = new Scalar(Kind.SIZE);
    /** QAPI {@code number} (double); integers are numbers too. */
    QmpType NUMBER = new Scalar(Kind.NUMBER);
    /** QAPI {@code bool}. */
    QmpType BOOL = new Scalar(Kind.BOOL);
    /** QAPI {@code any}: not checked. */
    QmpType ANY = new Scalar(Kind.ANY);
    /** QAPI alternate {@code StrOrNull} (e.g. tls-creds in migrate-set-parameters). */
    QmpType STR_OR_NULL = new Scalar(Kind.STR_OR_NULL);

    /** An enum: a string that must be one of {@code values}. */
    static EnumType enumOf(String name, String... values) {
        return new EnumType(name, List.of(values));
    }

    /** An array of {@code element}. */
    static ArrayType arrayOf(QmpType element) {
        return new ArrayType(element);
    }

    /** An object with these members, no others. */
    static Struct struct(Member... members) {
        return new Struct(List.of(members));
    }

    /** A required member. */
    static Member member(String name, QmpType type) {
        return new Member(name, type, false);
    }

    /** An optional member ({@code '*name'} in a QAPI schema). */
    static Member optional(String name, QmpType type) {
        return new Member(name, type, true);
    }

    /** The JSON type name QEMU's introspection gives this type ("str", "int", "bool", ...). */
    String jsonType();

    /**
     * Checks {@code value}, found under QEMU's full name {@code fullName} whose last component is
     * {@code leafName} (null for an array element).
     *
     * @throws QmpError GenericError with QEMU's text on the first mismatch
     */
    void check(JsonNode value, String fullName, String leafName);

    /** The primitive kinds. */
    enum Kind {
        STR("str"), INT("int"), UINT8("uint8"), UINT16("uint16"), UINT32("uint32"), UINT64("uint64"),
        SIZE("size"), NUMBER("number"), BOOL("bool"), ANY("any"), STR_OR_NULL("StrOrNull");

        private final String qapiName;

        Kind(String qapiName) {
            this.qapiName = qapiName;
        }

        public String qapiName() {
            return qapiName;
        }
    }

    /** A built-in scalar. */
    record Scalar(Kind kind) implements QmpType {
        private static final BigInteger INT64_MIN = BigInteger.valueOf(Long.MIN_VALUE);
        private static final BigInteger UINT64_MAX = BigInteger.ONE.shiftLeft(64).subtract(BigInteger.ONE);

        @Override
        public String jsonType() {
            return kind.qapiName();
        }

        @Override
        public void check(JsonNode v, String fullName, String leafName) {
            switch (kind) {
                case STR -> {
                    if (!v.isString()) {
                        throw wrongType(fullName, "string");
                    }
                }
                case STR_OR_NULL -> {
                    if (!v.isString() && !v.isNull()) {
                        throw wrongType(fullName, "StrOrNull");
                    }
                }
                case BOOL -> {
                    if (!v.isBoolean()) {
                        throw wrongType(fullName, "boolean");
                    }
                }
                case NUMBER -> {
                    if (!v.isNumber()) {
                        throw wrongType(fullName, "number");
                    }
                }
                case INT -> {
                    if (!v.isIntegralNumber() || !v.canConvertToLong()) {
                        throw wrongType(fullName, "integer");
                    }
                }
                case UINT64, SIZE -> checkUint64(v, fullName);
                case UINT8 -> checkUintN(v, fullName, leafName, 0xFFL, "uint8_t");
                case UINT16 -> checkUintN(v, fullName, leafName, 0xFFFFL, "uint16_t");
                case UINT32 -> checkUintN(v, fullName, leafName, 0xFFFF_FFFFL, "uint32_t");
                case ANY -> { }
            }
        }

        private static BigInteger checkUint64(JsonNode v, String fullName) {
            if (v.isIntegralNumber()) {
                BigInteger b = v.bigIntegerValue();
                if (b.compareTo(INT64_MIN) >= 0 && b.compareTo(UINT64_MAX) <= 0) {
                    return b.signum() < 0 ? b.add(UINT64_MAX).add(BigInteger.ONE) : b;
                }
            }
            throw QmpError.generic("Parameter '" + fullName + "' expects uint64");
        }

        private static void checkUintN(JsonNode v, String fullName, String leafName, long max, String cType) {
            BigInteger b = checkUint64(v, fullName);
            if (b.compareTo(BigInteger.valueOf(max)) > 0) {
                throw QmpError.generic("Parameter '" + (leafName == null ? "null" : leafName)
                        + "' expects " + cType);
            }
        }
    }

    /** A QAPI enum, checked by name. */
    record EnumType(String name, List<String> values) implements QmpType {
        public EnumType {
            Objects.requireNonNull(name, "name");
            values = List.copyOf(values);
        }

        @Override
        public String jsonType() {
            return "str";
        }

        @Override
        public void check(JsonNode v, String fullName, String leafName) {
            if (!v.isString()) {
                throw wrongType(fullName, "string");
            }
            if (!values.contains(v.stringValue())) {
                throw QmpError.generic("Parameter '" + (leafName == null ? "null" : leafName)
                        + "' does not accept value '" + v.stringValue() + "'");
            }
        }
    }

    /** A QAPI array type {@code [T]}. */
    record ArrayType(QmpType element) implements QmpType {
        public ArrayType {
            Objects.requireNonNull(element, "element");
        }

        @Override
        public String jsonType() {
            return "array";
        }

        @Override
        public void check(JsonNode v, String fullName, String leafName) {
            if (!v.isArray()) {
                throw wrongType(fullName, "array");
            }
            for (int i = 0; i < v.size(); i++) {
                element.check(v.get(i), fullName + "[" + i + "]", null);
            }
        }
    }

    /** One member of a {@link Struct}. */
    record Member(String name, QmpType type, boolean optional) {
        public Member {
            Objects.requireNonNull(name, "name");
            Objects.requireNonNull(type, "type");
        }
    }

    /** A QAPI struct: named members, each required or optional; unknown members are refused. */
    record Struct(List<Member> members) implements QmpType {
        /** No members: the arguments of {@code query-status}, {@code stop}, ... */
        public static final Struct EMPTY = new Struct(List.of());

        public Struct {
            members = List.copyOf(members);
            Set<String> seen = new HashSet<>();
            for (Member m : members) {
                if (!seen.add(m.name())) {
                    throw new IllegalArgumentException("duplicate member " + m.name());
                }
            }
        }

        @Override
        public String jsonType() {
            return "object";
        }

        /** Members by name, in declaration order. */
        public Map<String, Member> byName() {
            Map<String, Member> map = new LinkedHashMap<>();
            members.forEach(m -> map.put(m.name(), m));
            return map;
        }

        /** Checks a command's {@code arguments}: the root object, whose members have bare names. */
        public void checkArguments(JsonNode args) {
            check(args, null, null);
        }

        @Override
        public void check(JsonNode v, String fullName, String leafName) {
            if (!v.isObject()) {
                throw wrongType(fullName == null ? "<anonymous>" : fullName, "object");
            }
            for (Member m : members) {
                JsonNode value = v.get(m.name());
                if (value == null) {
                    if (!m.optional()) {
                        throw QmpError.generic("Parameter '" + memberName(fullName, m) + "' is missing");
                    }
                    continue;
                }
                m.type().check(value, memberName(fullName, m), m.name());
            }
            if (v.isEmpty()) {
                return; // nothing unexpected (and no map built: most commands come without arguments)
            }
            Map<String, Member> known = byName();
            for (String key : v.propertyNames()) {
                if (!known.containsKey(key)) {
                    throw QmpError.generic("Parameter '" + (fullName == null ? key : fullName + "." + key)
                            + "' is unexpected");
                }
            }
        }
    }

    private static String memberName(String fullName, Member m) {
        return fullName == null ? m.name() : fullName + "." + m.name();
    }

    private static QmpError wrongType(String fullName, String expected) {
        return QmpError.generic("Invalid parameter type for '" + fullName + "', expected: " + expected);
    }
}
