package org.livemig.transport;

import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.StringJoiner;

/**
 * Which faults a {@link FaultInjectingConnection} injects, as values or as a compact string for
 * command-line flags:
 *
 * <pre>
 *   stall:ms=2000,after=1048576;cut:after=100000;flip:at=5000;throttle:bps=1000000
 * </pre>
 *
 * <ul>
 *   <li>{@code stall:ms=T,after=M} — once, when M bytes have passed, wait T ms before the next byte.
 *   <li>{@code cut:after=N} — pass exactly N bytes, then fail with "injected cut after N bytes"
 *       and shut the connection down (the peer sees the stream end there).
 *   <li>{@code flip:at=N} — XOR the byte at stream offset N with 0xFF (counting from 0).
 *   <li>{@code throttle:bps=B} — at most B bytes per second, as a link of that speed: waiting
 *       for data earns no credit for a later burst, and no more than a tenth of a second's
 *       worth passes in one call.
 *   <li>{@code stall:point=P,ms=T} — once, when the migration reaches its named point P (see
 *       {@link FaultPoints}), the thread that reached it waits T ms (a shutdown, as by yank or
 *       migrate_cancel, ends the wait at once).
 *   <li>{@code cut:point=P} — when the migration reaches point P, cut the connection there, as
 *       {@code cut:after} does ("injected cut at point P").
 * </ul>
 *
 * Each fault takes {@code dir=in}, {@code dir=out} or {@code dir=both} (the default): the
 * direction whose bytes it counts and acts on; with {@code both} each direction counts its own
 * bytes (so {@code flip:at=5000} flips byte 5000 of each direction that gets that far, and a cut
 * fires in whichever direction first reaches its count). Byte counts take an optional binary
 * suffix: {@code k} (1024), {@code m}, {@code g}. An empty string or {@code none} is no fault.
 */
public record FaultSpec(List<Fault> faults) {
    /** No fault. */
    public static final FaultSpec NONE = new FaultSpec(List.of());

    public FaultSpec {
        faults = List.copyOf(faults);
    }

    /** The direction a fault applies to, seen from the wrapped connection. */
    public enum Direction {
        /** Bytes read from {@link MigrationConnection#in()}. */
        IN,
        /** Bytes written to {@link MigrationConnection#out()}. */
        OUT,
        /** Each direction, counted separately. */
        BOTH;

        boolean covers(boolean outgoing) {
            return this == BOTH || (this == OUT) == outgoing;
        }
    }

    /** One fault. */
    public sealed interface Fault permits Stall, Cut, Flip, Throttle, StallAt, CutAt {
        Direction direction();
    }

    /** Once, after {@code after} bytes, wait {@code duration} before passing the next byte. */
    public record Stall(Duration duration, long after, Direction direction) implements Fault {
        public Stall {
            Objects.requireNonNull(duration, "duration");
            Objects.requireNonNull(direction, "direction");
            if (duration.isNegative() || after < 0) {
                throw new IllegalArgumentException("stall needs a duration and a byte count >= 0");
            }
        }
    }

    /** Pass exactly {@code after} bytes, then fail and shut the connection down. */
    public record Cut(long after, Direction direction) implements Fault {
        public Cut {
            Objects.requireNonNull(direction, "direction");
            if (after < 0) {
                throw new IllegalArgumentException("cut needs a byte count >= 0");
            }
        }
    }

    /** XOR the byte at stream offset {@code at} with 0xFF. */
    public record Flip(long at, Direction direction) implements Fault {
        public Flip {
            Objects.requireNonNull(direction, "direction");
            if (at < 0) {
                throw new IllegalArgumentException("flip needs an offset >= 0");
            }
        }
    }

    /** At most {@code bytesPerSecond} bytes per second. */
    public record Throttle(long bytesPerSecond, Direction direction) implements Fault {
        public Throttle {
            Objects.requireNonNull(direction, "direction");
            if (bytesPerSecond <= 0) {
                throw new IllegalArgumentException("throttle needs bytes per second > 0");
            }
        }
    }

    /** Once, when the migration reaches {@code point}, the thread reaching it waits {@code duration}. */
    public record StallAt(String point, Duration duration) implements Fault {
        public StallAt {
            FaultPoints.check(point);
            Objects.requireNonNull(duration, "duration");
            if (duration.isNegative()) {
                throw new IllegalArgumentException("stall needs a duration >= 0");
            }
        }

        @Override
        public Direction direction() {
            return Direction.BOTH;
        }
    }

    /** When the migration reaches {@code point}, the connection is cut there. */
    public record CutAt(String point) implements Fault {
        public CutAt {
            FaultPoints.check(point);
        }

        @Override
        public Direction direction() {
            return Direction.BOTH;
        }
    }

    public boolean isEmpty() {
        return faults.isEmpty();
    }

    public static Builder builder() {
        return new Builder();
    }

    /** Builds a spec; every method without a direction means {@link Direction#BOTH}. */
    public static final class Builder {
        private final List<Fault> faults = new ArrayList<>();

        private Builder() {}

        public Builder stall(Duration duration, long afterBytes) {
            return stall(Direction.BOTH, duration, afterBytes);
        }

        public Builder stall(Direction direction, Duration duration, long afterBytes) {
            faults.add(new Stall(duration, afterBytes, direction));
            return this;
        }

        public Builder cut(long afterBytes) {
            return cut(Direction.BOTH, afterBytes);
        }

        public Builder cut(Direction direction, long afterBytes) {
            faults.add(new Cut(afterBytes, direction));
            return this;
        }

        public Builder flip(long atOffset) {
            return flip(Direction.BOTH, atOffset);
        }

        public Builder flip(Direction direction, long atOffset) {
            faults.add(new Flip(atOffset, direction));
            return this;
        }

        public Builder throttle(long bytesPerSecond) {
            return throttle(Direction.BOTH, bytesPerSecond);
        }

        public Builder throttle(Direction direction, long bytesPerSecond) {
            faults.add(new Throttle(bytesPerSecond, direction));
            return this;
        }

        /** At the migration's named point (see {@link FaultPoints}), the thread reaching it waits {@code duration}. */
        public Builder stallAt(String point, Duration duration) {
            faults.add(new StallAt(point, duration));
            return this;
        }

        /** At the migration's named point, the connection is cut. */
        public Builder cutAt(String point) {
            faults.add(new CutAt(point));
            return this;
        }

        public FaultSpec build() {
            return new FaultSpec(faults);
        }
    }

    /**
     * Parses the compact form (see the class comment).
     *
     * @throws IllegalArgumentException naming the spec and what is wrong in it
     */
    public static FaultSpec parse(String spec) {
        Objects.requireNonNull(spec, "spec");
        String trimmed = spec.strip();
        if (trimmed.isEmpty() || trimmed.equalsIgnoreCase("none")) {
            return NONE;
        }
        Builder b = builder();
        for (String part : trimmed.split(";", -1)) {
            part = part.strip();
            if (part.isEmpty()) {
                throw bad(spec, "empty fault between ';'");
            }
            int colon = part.indexOf(':');
            String name = (colon < 0 ? part : part.substring(0, colon)).strip().toLowerCase(Locale.ROOT);
            Map<String, String> args = parseArgs(spec, name, colon < 0 ? "" : part.substring(colon + 1));
            switch (name) {
                case "stall" -> {
                    if (args.containsKey("point")) {
                        checkKeys(spec, name, args, Set.of("ms", "point"));
                        b.stallAt(point(spec, name, args), Duration.ofMillis(number(spec, name, args, "ms", false)));
                        continue;
                    }
                    checkKeys(spec, name, args, Set.of("ms", "after", "dir"));
                    b.stall(direction(spec, name, args), Duration.ofMillis(number(spec, name, args, "ms", false)),
                            number(spec, name, args, "after", true));
                }
                case "cut" -> {
                    if (args.containsKey("point")) {
                        checkKeys(spec, name, args, Set.of("point"));
                        b.cutAt(point(spec, name, args));
                        continue;
                    }
                    checkKeys(spec, name, args, Set.of("after", "dir"));
                    b.cut(direction(spec, name, args), number(spec, name, args, "after", true));
                }
                case "flip" -> {
                    checkKeys(spec, name, args, Set.of("at", "dir"));
                    b.flip(direction(spec, name, args), number(spec, name, args, "at", true));
                }
                case "throttle" -> {
                    checkKeys(spec, name, args, Set.of("bps", "dir"));
                    long bps = number(spec, name, args, "bps", true);
                    if (bps == 0) {
                        throw bad(spec, "throttle: bps must be > 0");
                    }
                    b.throttle(direction(spec, name, args), bps);
                }
                default -> throw bad(spec, "unknown fault '" + name + "' (expected stall, cut, flip, throttle)");
            }
        }
        return b.build();
    }

    private static Map<String, String> parseArgs(String spec, String name, String text) {
        Map<String, String> args = new LinkedHashMap<>();
        if (text.isBlank()) {
            return args;
        }
        for (String kv : text.split(",", -1)) {
            int eq = kv.indexOf('=');
            if (eq < 0) {
                throw bad(spec, name + ": '" + kv.strip() + "' is not key=value");
            }
            String key = kv.substring(0, eq).strip().toLowerCase(Locale.ROOT);
            String value = kv.substring(eq + 1).strip();
            if (args.put(key, value) != null) {
                throw bad(spec, name + ": '" + key + "' given twice");
            }
        }
        return args;
    }

    private static void checkKeys(String spec, String name, Map<String, String> args, Set<String> allowed) {
        for (String key : args.keySet()) {
            if (!allowed.contains(key)) {
                throw bad(spec, name + ": unknown key '" + key + "' (expected "
                        + String.join(", ", allowed.stream().sorted().toList()) + ")");
            }
        }
    }

    private static String point(String spec, String name, Map<String, String> args) {
        String p = args.get("point").toLowerCase(Locale.ROOT);
        if (!FaultPoints.ALL.contains(p)) {
            throw bad(spec, name + ": unknown point '" + args.get("point") + "' (expected " + String.join(", ", FaultPoints.ALL) + ")");
        }
        return p;
    }

    private static Direction direction(String spec, String name, Map<String, String> args) {
        String d = args.get("dir");
        if (d == null) {
            return Direction.BOTH;
        }
        return switch (d.toLowerCase(Locale.ROOT)) {
            case "in" -> Direction.IN;
            case "out" -> Direction.OUT;
            case "both" -> Direction.BOTH;
            default -> throw bad(spec, name + ": bad dir '" + d + "' (expected in, out, both)");
        };
    }

    private static long number(String spec, String name, Map<String, String> args, String key, boolean suffixes) {
        String text = args.get(key);
        if (text == null) {
            throw bad(spec, name + ": missing '" + key + "'");
        }
        long unit = 1;
        String digits = text;
        if (suffixes && !text.isEmpty()) {
            switch (Character.toLowerCase(text.charAt(text.length() - 1))) {
                case 'k' -> unit = 1L << 10;
                case 'm' -> unit = 1L << 20;
                case 'g' -> unit = 1L << 30;
                default -> unit = 1;
            }
            if (unit != 1) {
                digits = text.substring(0, text.length() - 1);
            }
        }
        if (digits.isEmpty() || digits.length() > 18 || !digits.chars().allMatch(c -> c >= '0' && c <= '9')) {
            throw bad(spec, name + ": bad number '" + text + "' for '" + key + "'");
        }
        try {
            return Math.multiplyExact(Long.parseLong(digits), unit);
        } catch (ArithmeticException e) {
            throw bad(spec, name + ": number '" + text + "' for '" + key + "' is too large");
        }
    }

    private static IllegalArgumentException bad(String spec, String what) {
        return new IllegalArgumentException("bad fault spec '" + spec + "': " + what);
    }

    /** The compact form; {@link #parse} reads it back to an equal spec. Empty for {@link #NONE}. */
    @Override
    public String toString() {
        StringJoiner sj = new StringJoiner(";");
        for (Fault f : faults) {
            String s = switch (f) {
                case Stall st -> "stall:ms=" + st.duration().toMillis() + ",after=" + st.after();
                case Cut c -> "cut:after=" + c.after();
                case Flip fl -> "flip:at=" + fl.at();
                case Throttle t -> "throttle:bps=" + t.bytesPerSecond();
                case StallAt st -> "stall:point=" + st.point() + ",ms=" + st.duration().toMillis();
                case CutAt c -> "cut:point=" + c.point();
            };
            if (f.direction() != Direction.BOTH) {
                s += ",dir=" + f.direction().name().toLowerCase(Locale.ROOT);
            }
            sj.add(s);
        }
        return sj.toString();
    }
}
