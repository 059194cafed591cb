package org.livemig.security;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * QEMU's {@code -object} syntax: {@code TYPE,key=value,...} ({@code ,,} is a literal comma;
 * {@code rules.0.match=...} builds the list of an authz-list), parsed to what
 * {@link ObjectRegistry#add(String, Map)} takes. Values stay text ({@link Text}), so booleans
 * are read in QEMU's command-line spelling ({@code on}/{@code off}).
 */
public record ObjectOptions(String type, Map<String, Object> props) {

    /** A value as written on the command line. */
    public record Text(String value) {
    }

    public static ObjectOptions parse(String spec) {
        List<String> parts = new ArrayList<>();
        StringBuilder cur = new StringBuilder();
        for (int i = 0; i < spec.length(); i++) {
            char c = spec.charAt(i);
            if (c == ',') {
                if (i + 1 < spec.length() && spec.charAt(i + 1) == ',') {
                    cur.append(',');
                    i++;
                    continue;
                }
                parts.add(cur.toString());
                cur.setLength(0);
            } else {
                cur.append(c);
            }
        }
        parts.add(cur.toString());
        String type = parts.get(0);
        if (type.isEmpty() || type.contains("=")) {
            if (type.startsWith("qom-type=")) {
                type = type.substring("qom-type=".length());
            } else {
                throw new IllegalArgumentException("object '" + spec + "': expected TYPE,id=ID,... (e.g. tls-creds-x509,id=tls0,endpoint=server,dir=DIR)");
            }
        }
        Map<String, Object> props = new LinkedHashMap<>();
        Map<Integer, Map<String, Object>> rules = new TreeMap<>();
        for (String part : parts.subList(1, parts.size())) {
            int eq = part.indexOf('=');
            if (eq <= 0) {
                throw new IllegalArgumentException("object '" + spec + "': expected key=value, not '" + part + "'");
            }
            String key = part.substring(0, eq);
            String value = part.substring(eq + 1);
            if (key.startsWith("rules.")) {
                String[] k = key.split("\\.", 3);
                if (k.length != 3) {
                    throw new IllegalArgumentException("object '" + spec + "': expected rules.N.KEY=VALUE, not '" + part + "'");
                }
                int n;
                try {
                    n = Integer.parseInt(k[1]);
                } catch (NumberFormatException e) {
                    throw new IllegalArgumentException("object '" + spec + "': bad rule index in '" + part + "'");
                }
                rules.computeIfAbsent(n, x -> new LinkedHashMap<>()).put(k[2], value);
            } else if (props.put(key, key.equals("id") || !isBoolKey(key) ? value : new Text(value)) != null) {
                throw new IllegalArgumentException("object '" + spec + "': '" + key + "' given twice");
            }
        }
        if (!rules.isEmpty()) {
            props.put("rules", new ArrayList<>(rules.values()));
        }
        return new ObjectOptions(type, props);
    }

    private static boolean isBoolKey(String key) {
        return key.equals("verify-peer") || key.equals("sanity-check") || key.equals("loaded");
    }
}
