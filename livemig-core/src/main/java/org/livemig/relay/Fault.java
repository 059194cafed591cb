package org.livemig.relay;

import java.time.Duration;
import java.util.Objects;

/**
 * One fault a relay injects into a migration passing through it ({@code livemig relay --fault}).
 * A fault acts on one direction ({@link FaultChannel}) from a trigger: {@code after} bytes past a
 * {@link FaultPoint} of that direction's stream. {@link Kind#DELAY} acts on every direction when
 * its channel is null.
 *
 * <ul>
 * <li>{@link Kind#CUT}: the bytes before the trigger pass, then the connection carrying the
 *     channel is shut down on both sides (the main stream and the return path share one);</li>
 * <li>{@link Kind#STALL}: nothing passes for {@code duration} at the trigger, then all goes on;</li>
 * <li>{@link Kind#RATE}: from the trigger on, at most {@code bytesPerSecond};</li>
 * <li>{@link Kind#DELAY}: every byte arrives {@code duration} later than it came, without
 *     lowering the throughput (a delay line);</li>
 * <li>{@link Kind#FLIP}: the byte at the trigger is XORed with {@code xor}.</li>
 * </ul>
 *
 * @param spec how the user wrote it, for messages (may be null: then {@link #toString()} is used)
 */
public record Fault(Kind kind, FaultChannel channel, FaultPoint at, long after, Duration duration,
                    long bytesPerSecond, int xor, String spec) {
    /** What a fault does. */
    public enum Kind { CUT, STALL, RATE, DELAY, FLIP }

    public Fault {
        Objects.requireNonNull(kind, "kind");
        Objects.requireNonNull(at, "at");
        if (channel == null && kind != Kind.DELAY) {
            throw new IllegalArgumentException(kind + " needs a channel");
        }
        if (channel != null && !at.occursOn(channel)) {
            throw new IllegalArgumentException("point " + at + " does not occur on channel " + channel);
        }
        if (after < 0) {
            throw new IllegalArgumentException("after=" + after + " is negative");
        }
        if ((kind == Kind.STALL || kind == Kind.DELAY) && (duration == null || duration.isNegative())) {
            throw new IllegalArgumentException(kind + " needs a duration of 0 or more");
        }
        if (kind == Kind.RATE && bytesPerSecond < 1) {
            throw new IllegalArgumentException("rate needs at least 1 byte per second");
        }
        if (kind == Kind.FLIP && (xor < 1 || xor > 0xFF)) {
            throw new IllegalArgumentException("flip needs a mask from 0x01 to 0xff");
        }
    }

    public static Fault cut(FaultChannel channel, FaultPoint at, long after) {
        return new Fault(Kind.CUT, channel, at, after, null, 0, 0, null);
    }

    public static Fault stall(FaultChannel channel, FaultPoint at, long after, Duration duration) {
        return new Fault(Kind.STALL, channel, at, after, duration, 0, 0, null);
    }

    public static Fault rate(FaultChannel channel, FaultPoint at, long after, long bytesPerSecond) {
        return new Fault(Kind.RATE, channel, at, after, null, bytesPerSecond, 0, null);
    }

    /** @param channel null for every direction */
    public static Fault delay(FaultChannel channel, Duration duration) {
        return new Fault(Kind.DELAY, channel, FaultPoint.START, 0, duration, 0, 0, null);
    }

    public static Fault flip(FaultChannel channel, FaultPoint at, long after, int xor) {
        return new Fault(Kind.FLIP, channel, at, after, null, 0, xor, null);
    }

    /** The same fault, shown as {@code spec} in messages. */
    public Fault withSpec(String spec) {
        return new Fault(kind, channel, at, after, duration, bytesPerSecond, xor, spec);
    }

    /** Whether it acts on {@code c}. */
    public boolean appliesTo(FaultChannel c) {
        return channel == null ? kind == Kind.DELAY : channel.equals(c);
    }

    /** The spec as written, or a canonical one. */
    @Override
    public String toString() {
        if (spec != null) {
            return spec;
        }
        StringBuilder b = new StringBuilder(kind.name().toLowerCase(java.util.Locale.ROOT));
        b.append(':');
        if (channel != null && (kind == Kind.DELAY || !channel.equals(FaultChannel.MAIN))) {
            b.append("channel=").append(channel).append(',');
        }
        if (at.kind() != FaultPoint.Kind.START) {
            b.append("at=").append(at).append(',');
        }
        if (after > 0) {
            b.append("after=").append(after).append(',');
        }
        switch (kind) {
            case STALL -> b.append("for=").append(duration.toMillis()).append("ms,");
            case DELAY -> b.append("ms=").append(duration.toMillis()).append(',');
            case RATE -> b.append("bps=").append(bytesPerSecond).append(',');
            case FLIP -> b.append("xor=0x").append(Integer.toHexString(xor)).append(',');
            default -> {
            }
        }
        return b.substring(0, b.length() - 1);
    }
}
