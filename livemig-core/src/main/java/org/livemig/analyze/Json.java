package org.livemig.analyze;

import org.livemig.stream.StreamFormatException;

import tools.jackson.core.JacksonException;
import tools.jackson.core.StreamReadConstraints;
import tools.jackson.core.json.JsonFactory;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.json.JsonMapper;

/** Strict, bounded JSON access for descriptions that come from untrusted streams. */
final class Json {
    private Json() {}

    static final JsonMapper MAPPER = JsonMapper.builder(JsonFactory.builder()
            .streamReadConstraints(StreamReadConstraints.builder().maxNestingDepth(256).build())
            .build()).build();

    /** Parses JSON text; a syntax error becomes a format error at {@code offset}. */
    static JsonNode parse(byte[] json, long offset, String what) throws StreamFormatException {
        try {
            JsonNode n = MAPPER.readTree(json);
            if (n == null || n.isMissingNode()) {
                throw new StreamFormatException(what + " is empty", offset);
            }
            return n;
        } catch (JacksonException | StackOverflowError e) {
            throw new StreamFormatException(what + " is not valid JSON: " + firstLine(e.getMessage()), offset);
        }
    }

    private static String firstLine(String s) {
        if (s == null) {
            return "";
        }
        int nl = s.indexOf('\n');
        return nl < 0 ? s : s.substring(0, nl);
    }

    static String string(JsonNode obj, String key, String ctx, long offset) throws StreamFormatException {
        JsonNode v = obj.get(key);
        if (v == null || !v.isString()) {
            throw new StreamFormatException(ctx + ": \"" + key + "\" is missing or not a string", offset);
        }
        return v.stringValue();
    }

    /** An int member in [min, max]; {@code dflt} when absent (or error if dflt is null). */
    static int integer(JsonNode obj, String key, Integer dflt, long min, long max, String ctx, long offset)
            throws StreamFormatException {
        JsonNode v = obj.get(key);
        if (v == null || v.isNull()) {
            if (dflt != null) {
                return dflt;
            }
            throw new StreamFormatException(ctx + ": \"" + key + "\" is missing", offset);
        }
        if (!v.isIntegralNumber() || !v.canConvertToLong() || v.longValue() < min || v.longValue() > max) {
            throw new StreamFormatException(ctx + ": \"" + key + "\" is not an integer in [" + min + ", " + max + "]",
                    offset);
        }
        return (int) v.longValue();
    }
}
