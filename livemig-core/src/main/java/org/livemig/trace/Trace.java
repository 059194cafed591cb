package org.livemig.trace;

import jdk.jfr.FlightRecorder;

/**
 * Emits livemig's trace events only while Flight Recorder is up. Loading the first JFR event
 * class into a JVM where no recording was ever started costs about 100-200 ms (JFR instruments
 * it on the spot), which a migration would otherwise pay at its switchover. With a recording
 * started at launch ({@code -XX:StartFlightRecording}) that work is done at startup; one started
 * later (jcmd JFR.start) makes the next event pay it once.
 */
public final class Trace {
    private Trace() {}

    /** True when a recording has been started in this JVM (the events then cost little). */
    public static boolean recording() {
        return FlightRecorder.isInitialized();
    }

    /** One precopy switchover's phases (see {@link SwitchoverEvent}); nanoseconds each. */
    public static void switchover(long stopNanos, long devicesNanos, long ramNanos, long flushNanos, long ackNanos,
                                  long pendingBytes, long bandwidth) {
        if (!recording()) {
            return;
        }
        SwitchoverEvent e = new SwitchoverEvent();
        if (e.shouldCommit()) {
            e.stopNanos = stopNanos;
            e.devicesNanos = devicesNanos;
            e.ramNanos = ramNanos;
            e.flushNanos = flushNanos;
            e.ackNanos = ackNanos;
            e.downtimeNanos = stopNanos + devicesNanos + ramNanos + flushNanos + ackNanos;
            e.pendingBytes = pendingBytes;
            e.bandwidth = bandwidth;
            e.commit();
        }
    }
}
