package org.livemig.relay;

/**
 * One direction of a relayed migration that a {@link Fault} applies to: the main stream (source to
 * destination), the return path (destination to source on the main connection), the postcopy
 * preempt channel, or multifd channel {@code index} (the index-th multifd connection the source
 * opened, from 0).
 */
public record FaultChannel(Type type, int index) {
    /** The kinds of direction. */
    public enum Type { MAIN, RETURN, PREEMPT, MULTIFD }

    public static final FaultChannel MAIN = new FaultChannel(Type.MAIN, 0);
    public static final FaultChannel RETURN = new FaultChannel(Type.RETURN, 0);
    public static final FaultChannel PREEMPT = new FaultChannel(Type.PREEMPT, 0);

    public FaultChannel {
        if (index < 0 || (type != Type.MULTIFD && index != 0)) {
            throw new IllegalArgumentException("bad channel index " + index + " for " + type);
        }
    }

    public static FaultChannel multifd(int index) {
        return new FaultChannel(Type.MULTIFD, index);
    }

    /** As written in a fault spec: main, return, preempt, multifdN. */
    @Override
    public String toString() {
        return type == Type.MULTIFD ? "multifd" + index : type.name().toLowerCase(java.util.Locale.ROOT);
    }
}
