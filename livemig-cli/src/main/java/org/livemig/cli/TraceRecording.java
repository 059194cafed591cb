package org.livemig.cli;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import jdk.jfr.Recording;

/**
 * {@code run --trace FILE}: a Flight Recorder recording of livemig's trace events (and nothing
 * else), written to FILE when the process ends.
 */
final class TraceRecording implements AutoCloseable {
    /** livemig's event types: every trace point of org.livemig.trace. */
    static final String[] EVENTS = {"livemig.MigrationStatus", "livemig.Pass", "livemig.Switchover",
        "livemig.PageRequest", "livemig.MultifdBatch", "livemig.ColoCheckpoint", "livemig.QmpCommand"};

    private final Recording recording;
    private final Path file;
    private boolean closed;

    private TraceRecording(Recording recording, Path file) {
        this.recording = recording;
        this.file = file;
    }

    static TraceRecording start(Path file) throws IOException {
        Recording r = new Recording();
        r.setName("livemig trace");
        for (String e : EVENTS) {
            r.enable(e).withThreshold(Duration.ZERO).withStackTrace();
        }
        r.setToDisk(true);
        r.setDestination(file);
        r.start();
        return new TraceRecording(r, file);
    }

    /** Stops the recording and writes its file (once). */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        try {
            recording.stop(); // writes the destination
            System.err.println("livemig run: trace written to " + file);
        } catch (RuntimeException e) {
            System.err.println("livemig run: could not write the trace to " + file + ": " + e.getMessage());
        } finally {
            recording.close();
        }
    }
}
