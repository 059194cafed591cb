package org.livemig.relay;

import java.util.Objects;

/**
 * Where in a channel's stream a {@link Fault}'s byte count starts: the first byte, just after the
 * header of the first section with a given idstr (main stream), just after the postcopy package
 * (main stream: the destination holds all it needs to run the guest and postcopy's page traffic
 * begins), or just after the header of the k-th multifd packet flagged SYNC (a multifd channel).
 *
 * @param idstr the section's idstr, for {@link Kind#SECTION}
 * @param nth   which occurrence, from 1, for {@link Kind#SYNC}
 */
public record FaultPoint(Kind kind, String idstr, int nth) {
    /** The points the relay can see. */
    public enum Kind { START, SECTION, PACKAGE, SYNC }

    public static final FaultPoint START = new FaultPoint(Kind.START, null, 1);
    public static final FaultPoint PACKAGE = new FaultPoint(Kind.PACKAGE, null, 1);

    public FaultPoint {
        if ((kind == Kind.SECTION) != (idstr != null) || (kind == Kind.SECTION && idstr.isEmpty())) {
            throw new IllegalArgumentException("a section point, and only it, names an idstr");
        }
        if (nth < 1) {
            throw new IllegalArgumentException("occurrence " + nth + " is not 1 or more");
        }
    }

    public static FaultPoint section(String idstr) {
        return new FaultPoint(Kind.SECTION, Objects.requireNonNull(idstr), 1);
    }

    public static FaultPoint sync(int nth) {
        return new FaultPoint(Kind.SYNC, null, nth);
    }

    /** Whether this point can occur on {@code channel}. */
    public boolean occursOn(FaultChannel channel) {
        return switch (kind) {
            case START -> true;
            case SECTION, PACKAGE -> channel.type() == FaultChannel.Type.MAIN;
            case SYNC -> channel.type() == FaultChannel.Type.MULTIFD;
        };
    }

    /** As written in a fault spec: start, section:IDSTR, package, sync[:K]. */
    @Override
    public String toString() {
        return switch (kind) {
            case START -> "start";
            case SECTION -> "section:" + idstr;
            case PACKAGE -> "package";
            case SYNC -> nth == 1 ? "sync" : "sync:" + nth;
        };
    }
}
