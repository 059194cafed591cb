package org.livemig.transport;

import java.util.List;

/**
 * The named points of a migration where a {@link FaultSpec} may stall or cut
 * ({@code stall:point=P,ms=T}, {@code cut:point=P}): places no byte count can find reliably,
 * since what comes before them depends on how fast the guest dirties memory. The migration
 * calls {@link FaultInjectingConnection#reached} on its connection as it passes each one.
 */
public final class FaultPoints {
    /** Source: the header and every setup section are sent; the migration is not yet active. */
    public static final String SETUP = "setup";
    /** Source: the guest is stopped for the switchover (status device); no device state is sent yet. */
    public static final String DEVICE = "device";
    /**
     * Source: the last byte is sent (device state, EOF, the vmdesc; multifd channels finished);
     * the destination's acknowledgement (SHUT) is not yet read.
     */
    public static final String COMPLETE = "complete";
    /** Destination: the whole stream is loaded; its acknowledgement (SHUT 0) is not yet sent. */
    public static final String LOADED = "loaded";

    /**
     * Destination of a paused postcopy: the source's recovery connection is accepted; the
     * handshake (RECV_BITMAP, RESUME) has not begun. The source waits in postcopy-recover.
     */
    public static final String RECOVER = "recover";

    /** Every point, in the order a migration passes them. */
    public static final List<String> ALL = List.of(SETUP, DEVICE, COMPLETE, LOADED, RECOVER);

    private FaultPoints() {}

    static void check(String point) {
        if (!ALL.contains(point)) {
            throw new IllegalArgumentException("unknown fault point '" + point + "' (expected " + String.join(", ", ALL) + ")");
        }
    }
}
