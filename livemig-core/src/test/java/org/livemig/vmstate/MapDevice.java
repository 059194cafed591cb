package org.livemig.vmstate;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;

/**
 * A generic device for tests: field values by name (Long, Boolean, byte[], int[], long[],
 * MapDevice for structs, List of MapDevice for struct arrays) and the names of the subsections it
 * needs. Descriptions over it are made with {@link #scalar} and friends.
 */
final class MapDevice {
    final Map<String, Object> values = new LinkedHashMap<>();
    final Set<String> needed = new HashSet<>();
    /** Hook calls in order, for tests of hook order. */
    final List<String> log = new ArrayList<>();

    Object get(String name) {
        return values.get(name);
    }

    long getLong(String name) {
        return (Long) values.get(name);
    }

    MapDevice put(String name, Object v) {
        values.put(name, v);
        return this;
    }

    MapDevice struct(String name) {
        return (MapDevice) values.get(name);
    }

    @SuppressWarnings("unchecked")
    List<MapDevice> structs(String name) {
        return (List<MapDevice>) values.get(name);
    }

    /** A copy sharing nothing mutable with this one. */
    MapDevice deepCopy() {
        MapDevice c = new MapDevice();
        for (Map.Entry<String, Object> e : values.entrySet()) {
            c.values.put(e.getKey(), copyValue(e.getValue()));
        }
        c.needed.addAll(needed);
        return c;
    }

    static Object copyValue(Object v) {
        return switch (v) {
            case byte[] b -> b.clone();
            case int[] a -> a.clone();
            case long[] a -> a.clone();
            case MapDevice d -> d.deepCopy();
            case List<?> l -> {
                List<Object> out = new ArrayList<>();
                for (Object o : l) {
                    out.add(copyValue(o));
                }
                yield out;
            }
            case null -> null;
            default -> v;
        };
    }

    static boolean deepEquals(Object a, Object b) {
        if (a instanceof MapDevice x && b instanceof MapDevice y) {
            if (!x.values.keySet().equals(y.values.keySet()) || !x.needed.equals(y.needed)) {
                return false;
            }
            for (String k : x.values.keySet()) {
                if (!deepEquals(x.values.get(k), y.values.get(k))) {
                    return false;
                }
            }
            return true;
        }
        if (a instanceof List<?> x && b instanceof List<?> y) {
            if (x.size() != y.size()) {
                return false;
            }
            for (int i = 0; i < x.size(); i++) {
                if (!deepEquals(x.get(i), y.get(i))) {
                    return false;
                }
            }
            return true;
        }
        return Objects.deepEquals(a, b);
    }

    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder("{");
        for (Map.Entry<String, Object> e : values.entrySet()) {
            Object v = e.getValue();
            String s = switch (v) {
                case byte[] b -> Arrays.toString(b);
                case int[] a -> Arrays.toString(a);
                case long[] a -> Arrays.toString(a);
                case null -> "null";
                default -> v.toString();
            };
            sb.append(e.getKey()).append('=').append(s).append(", ");
        }
        return sb.append("needed=").append(needed).append('}').toString();
    }
}
