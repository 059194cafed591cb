package org.livemig.cli;

import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.livemig.relay.Fault;
import org.livemig.relay.FaultChannel;
import org.livemig.relay.FaultPoint;

import picocli.CommandLine.ITypeConverter;
import picocli.CommandLine.TypeConversionException;

/**
 * {@code livemig relay --fault SPEC}: reads a fault spec into a {@link Fault}.
 *
 * <pre>
 * SPEC     = KIND [":" PARAM *("," PARAM)]
 * KIND     = cut | stall | rate | delay | flip
 * PARAM    = channel=CHANNEL | at=POINT | after=SIZE | offset=SIZE (flip; same as after)
 *          | for=DURATION (stall) | bps=SIZE (rate) | ms=N (delay) | xor=BYTE (flip)
 * CHANNEL  = main | return | preempt | multifdN     (default main; delay: every channel, each way)
 * POINT    = start | section:IDSTR | package | sync[:K]   (default start)
 * SIZE     = N[K|M|G|T]  (binary units)           DURATION = N(ms|s)       BYTE = N | 0xHH
 * </pre>
 *
 * Every mistake is refused with the spec and what is wrong in it.
 */
final class FaultConverter implements ITypeConverter<Fault> {
    static final String GRAMMAR = "KIND[:key=value,...] with KIND cut|stall|rate|delay|flip";

    private static final Map<Fault.Kind, Set<String>> KEYS = Map.of(
            Fault.Kind.CUT, Set.of("channel", "at", "after"),
            Fault.Kind.STALL, Set.of("channel", "at", "after", "for"),
            Fault.Kind.RATE, Set.of("channel", "at", "after", "bps"),
            Fault.Kind.DELAY, Set.of("channel", "ms"),
            Fault.Kind.FLIP, Set.of("channel", "at", "after", "offset", "xor"));
    private static final List<String> KEY_ORDER = List.of("channel", "at", "after", "offset", "for", "bps", "ms", "xor");
    private static final Pattern SIZE = Pattern.compile("(\\d+)([KMGT]?)", Pattern.CASE_INSENSITIVE);
    private static final Pattern DURATION = Pattern.compile("(\\d+)(ms|s)");
    private static final Pattern MULTIFD = Pattern.compile("multifd(\\d+)");

    @Override
    public Fault convert(String value) {
        try {
            return parse(value);
        } catch (IllegalArgumentException e) {
            throw new TypeConversionException(e.getMessage());
        }
    }

    /** @throws IllegalArgumentException naming the spec and what is wrong in it */
    static Fault parse(String spec) {
        String s = spec.trim();
        if (s.isEmpty()) {
            throw new IllegalArgumentException("empty fault spec (expected " + GRAMMAR + ")");
        }
        int colon = s.indexOf(':');
        String kindName = colon < 0 ? s : s.substring(0, colon);
        Fault.Kind kind;
        try {
            kind = Fault.Kind.valueOf(kindName.toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw bad(spec, "unknown fault '" + kindName + "' (one of cut, stall, rate, delay, flip)");
        }
        Map<String, String> params = new LinkedHashMap<>();
        if (colon >= 0) {
            for (String p : s.substring(colon + 1).split(",", -1)) {
                int eq = p.indexOf('=');
                if (eq <= 0) {
                    throw bad(spec, "'" + p + "' is not key=value");
                }
                String key = p.substring(0, eq).trim();
                if (!KEYS.get(kind).contains(key)) {
                    throw bad(spec, kindName + " does not take '" + key + "' (it takes "
                            + String.join(", ", KEY_ORDER.stream().filter(KEYS.get(kind)::contains).toList()) + ")");
                }
                if (params.put(key, p.substring(eq + 1).trim()) != null) {
                    throw bad(spec, "'" + key + "' is given twice");
                }
            }
        }
        if (params.containsKey("after") && params.containsKey("offset")) {
            throw bad(spec, "give after or offset, not both (they mean the same)");
        }
        FaultChannel channel = params.containsKey("channel") ? channel(spec, params.get("channel"))
                : kind == Fault.Kind.DELAY ? null : FaultChannel.MAIN;
        FaultPoint at = params.containsKey("at") ? point(spec, params.get("at")) : FaultPoint.START;
        if (channel != null && !at.occursOn(channel)) {
            throw bad(spec, "at=" + at + " is a point of " + (at.kind() == FaultPoint.Kind.SYNC
                    ? "a multifd channel" : "the main stream") + ", not of channel " + channel);
        }
        String afterText = params.containsKey("after") ? params.get("after") : params.get("offset");
        long after = afterText == null ? 0 : size(spec, params.containsKey("after") ? "after" : "offset", afterText);
        Fault f = switch (kind) {
            case CUT -> Fault.cut(channel, at, after);
            case STALL -> Fault.stall(channel, at, after, duration(spec, "for", require(spec, params, "for", "DURATION")));
            case RATE -> {
                long bps = size(spec, "bps", require(spec, params, "bps", "SIZE (bytes per second)"));
                if (bps < 1) {
                    throw bad(spec, "bps=" + params.get("bps") + " is below 1 byte per second");
                }
                yield Fault.rate(channel, at, after, bps);
            }
            case DELAY -> {
                String ms = require(spec, params, "ms", "N (milliseconds)");
                if (!ms.matches("\\d{1,9}")) {
                    throw bad(spec, "ms=" + ms + " is not a whole number of milliseconds");
                }
                yield Fault.delay(channel, Duration.ofMillis(Long.parseLong(ms)));
            }
            case FLIP -> Fault.flip(channel, at, after, xor(spec, params.getOrDefault("xor", "0xff")));
        };
        return f.withSpec(spec);
    }

    private static String require(String spec, Map<String, String> params, String key, String what) {
        String v = params.get(key);
        if (v == null) {
            throw bad(spec, spec.split(":", 2)[0] + " needs " + key + "=" + what);
        }
        return v;
    }

    private static FaultChannel channel(String spec, String v) {
        switch (v) {
            case "main" -> {
                return FaultChannel.MAIN;
            }
            case "return" -> {
                return FaultChannel.RETURN;
            }
            case "preempt" -> {
                return FaultChannel.PREEMPT;
            }
            default -> {
                Matcher m = MULTIFD.matcher(v);
                if (m.matches() && m.group(1).length() <= 3) {
                    return FaultChannel.multifd(Integer.parseInt(m.group(1)));
                }
                throw bad(spec, "unknown channel '" + v + "' (main, return, preempt or multifdN, N from 0)");
            }
        }
    }

    private static FaultPoint point(String spec, String v) {
        if (v.equals("start")) {
            return FaultPoint.START;
        }
        if (v.equals("package")) {
            return FaultPoint.PACKAGE;
        }
        if (v.startsWith("section:")) {
            String idstr = v.substring("section:".length());
            if (idstr.isEmpty() || idstr.length() > 255) {
                throw bad(spec, "at=section: needs an idstr of 1 to 255 characters (e.g. section:ram)");
            }
            return FaultPoint.section(idstr);
        }
        if (v.equals("sync")) {
            return FaultPoint.sync(1);
        }
        if (v.startsWith("sync:")) {
            String k = v.substring("sync:".length());
            if (!k.matches("[1-9]\\d{0,8}")) {
                throw bad(spec, "at=" + v + ": the SYNC to wait for is a number from 1");
            }
            return FaultPoint.sync(Integer.parseInt(k));
        }
        throw bad(spec, "unknown point '" + v + "' (start, section:IDSTR, package or sync[:K])");
    }

    private static long size(String spec, String key, String v) {
        Matcher m = SIZE.matcher(v);
        if (!m.matches()) {
            throw bad(spec, key + "=" + v + " is not a size (N, or N with K, M, G or T)");
        }
        int shift = switch (m.group(2).toUpperCase(Locale.ROOT)) {
            case "K" -> 10;
            case "M" -> 20;
            case "G" -> 30;
            case "T" -> 40;
            default -> 0;
        };
        try {
            long n = Long.parseLong(m.group(1));
            if (n > Long.MAX_VALUE >> shift) {
                throw new NumberFormatException();
            }
            return n << shift;
        } catch (NumberFormatException e) {
            throw bad(spec, key + "=" + v + " is too large");
        }
    }

    private static Duration duration(String spec, String key, String v) {
        Matcher m = DURATION.matcher(v);
        if (!m.matches() || m.group(1).length() > 9) {
            throw bad(spec, key + "=" + v + " is not a duration (N followed by ms or s, e.g. 500ms, 2s)");
        }
        long n = Long.parseLong(m.group(1));
        return m.group(2).equals("s") ? Duration.ofSeconds(n) : Duration.ofMillis(n);
    }

    private static int xor(String spec, String v) {
        int x;
        try {
            x = v.startsWith("0x") || v.startsWith("0X") ? Integer.parseInt(v.substring(2), 16) : Integer.parseInt(v);
        } catch (NumberFormatException e) {
            throw bad(spec, "xor=" + v + " is not a byte (0x01 to 0xff, or 1 to 255)");
        }
        if (x < 1 || x > 0xFF) {
            throw bad(spec, "xor=" + v + " is not a byte that changes anything (0x01 to 0xff)");
        }
        return x;
    }

    private static IllegalArgumentException bad(String spec, String what) {
        return new IllegalArgumentException("bad fault '" + spec + "': " + what);
    }
}
