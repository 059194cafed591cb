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

    /** A migration's status changed. */
    public static void status(String side, String from, String to) {
        if (!recording()) {
            return;
        }
        StatusEvent e = new StatusEvent();
        if (e.shouldCommit()) {
            e.side = side;
            e.from = from;
            e.to = to;
            e.commit();
        }
    }

    /** A precopy pass that began at {@code startNanos} (System.nanoTime) ended now. */
    public static void pass(long startNanos, long pass, long pagesDirtied, long bytesSent, long bandwidth,
                            long pendingBytes) {
        if (!recording()) {
            return;
        }
        PassEvent e = new PassEvent();
        if (e.shouldCommit()) {
            e.pass = pass;
            e.pagesDirtied = pagesDirtied;
            e.bytesSent = bytesSent;
            e.bandwidth = bandwidth;
            e.pendingBytes = pendingBytes;
            e.passNanos = System.nanoTime() - startNanos;
            e.commit();
        }
    }

    /** A requested postcopy page was placed {@code latencyNanos} after its fault. */
    public static void pageRequest(String block, long offset, long latencyNanos) {
        if (!recording()) {
            return;
        }
        PageRequestEvent e = new PageRequestEvent();
        if (e.shouldCommit()) {
            e.block = block;
            e.offset = offset;
            e.latency = latencyNanos;
            e.placedBy = Thread.currentThread().getName();
            e.commit();
        }
    }

    /** A started multifd packet event, or null when nothing records (commit it with {@link #end}). */
    public static MultifdBatchEvent multifdBegin() {
        if (!recording()) {
            return null;
        }
        MultifdBatchEvent e = new MultifdBatchEvent();
        e.begin();
        return e;
    }

    /** Ends and commits {@code e} (null: nothing). */
    public static void end(MultifdBatchEvent e, int channel, boolean sending, int pages, long bytes, boolean sync) {
        if (e == null) {
            return;
        }
        e.end();
        if (e.shouldCommit()) {
            e.channel = channel;
            e.sending = sending;
            e.pages = pages;
            e.bytes = bytes;
            e.sync = sync;
            e.commit();
        }
    }

    /** A COLO checkpoint ended. */
    public static void coloCheckpoint(String side, long number, long bytes, long ramBytes, long deviceBytes,
                                      long pauseNanos) {
        if (!recording()) {
            return;
        }
        ColoCheckpointEvent e = new ColoCheckpointEvent();
        if (e.shouldCommit()) {
            e.side = side;
            e.number = number;
            e.bytes = bytes;
            e.ramBytes = ramBytes;
            e.deviceBytes = deviceBytes;
            e.pause = pauseNanos;
            e.commit();
        }
    }

    /** A started QMP command event, or null when nothing records (commit it with {@link #end}). */
    public static QmpCommandEvent qmpBegin() {
        if (!recording()) {
            return null;
        }
        QmpCommandEvent e = new QmpCommandEvent();
        e.begin();
        return e;
    }

    /** Ends and commits {@code e} (null: nothing). */
    public static void end(QmpCommandEvent e, String command, boolean oob, long waitNanos, boolean error) {
        if (e == null) {
            return;
        }
        e.end();
        if (e.shouldCommit()) {
            e.command = command;
            e.oob = oob;
            e.wait = waitNanos;
            e.error = error;
            e.commit();
        }
    }
}
