package org.livemig.migration.colo;

import java.io.IOException;
import java.lang.System.Logger.Level;
import java.util.ArrayDeque;
import org.livemig.machine.SerialOutput;
import org.livemig.stream.MigrationFile;
import org.livemig.transport.MigrationConnection;

/**
 * The primary's output comparison (QEMU's colo-compare, on livemig's one output, the serial
 * port): what the primary's guest writes is held back until the secondary's guest has written
 * the same bytes, then released to the real output. When they differ, a checkpoint is asked for
 * at once; at every checkpoint all that the primary held is released (after it, both guests are
 * in the primary's state, so the primary's output is the truth) and the secondary's unmatched
 * output is dropped.
 *
 * <p>The secondary's output arrives on a connection of its own, the compare channel, which the
 * primary opens to the secondary's migration address after the main connection (and any multifd
 * channels): frames of bytes, and a marker when the secondary applies checkpoint k, after which
 * its bytes belong to the next epoch ({@link OutputMirror} writes them).
 *
 * <pre>
 *   +------+----------+----------------+
 *   | 0x01 | be16 n   | n bytes        |    output
 *   +------+----------+----------------+
 *   | 0x02 | be64 k   |                     checkpoint k applied
 *   +------+----------+
 * </pre>
 *
 * <p>Threads: vCPUs call {@link #write} (no BQL); {@code colo-compare} reads the channel;
 * {@code mig/src/main} calls {@link #checkpointDone}. All state is guarded by this object's lock;
 * the real output is written under it too, which keeps its order.
 */
final class OutputCompare implements SerialOutput {
    private static final System.Logger LOG = System.getLogger(OutputCompare.class.getName());
    static final String THREAD_NAME = "colo-compare";
    static final int FRAME_OUTPUT = 1;
    static final int FRAME_CHECKPOINT = 2;
    /** Longest run of output in one frame. */
    static final int MAX_FRAME_BYTES = 0xFFFF;

    private final SerialOutput real;
    private final Runnable askCheckpoint;
    /** Bytes the primary wrote in this epoch and has not released. */
    private final ArrayDeque<Byte> held = new ArrayDeque<>();
    /** The secondary's bytes, each with its epoch in the high bits (epoch << 8 | byte). */
    private final ArrayDeque<Long> secondary = new ArrayDeque<>();
    /** The primary's epoch: checkpoints done. */
    private long epoch;
    /** The secondary's epoch as its markers say. */
    private long secondaryEpoch;
    /** The outputs differed in this epoch: hold everything until the checkpoint. */
    private boolean diverged;
    private long released;
    private long divergences;
    private volatile Thread reader;
    private volatile boolean closed;

    OutputCompare(SerialOutput real, Runnable askCheckpoint) {
        this.real = real;
        this.askCheckpoint = askCheckpoint;
    }

    /** Starts {@code colo-compare} on the secondary's compare channel. */
    void start(MigrationConnection channel) {
        Thread t = Thread.ofPlatform().name(THREAD_NAME).daemon(true).unstarted(() -> readLoop(channel));
        reader = t;
        t.start();
    }

    private void readLoop(MigrationConnection channel) {
        MigrationFile in = MigrationFile.forReading(channel.in());
        try {
            while (!closed) {
                int kind = in.getByte();
                if (kind == FRAME_OUTPUT) {
                    int n = in.getBe16();
                    byte[] bytes = in.getBytes(n);
                    secondaryWrote(bytes);
                } else if (kind == FRAME_CHECKPOINT) {
                    secondaryCheckpoint(in.getBe64());
                } else {
                    throw new IOException(String.format("compare channel: frame kind 0x%02x at byte %d", kind,
                            in.position() - 1));
                }
            }
        } catch (IOException e) {
            if (!closed) {
                LOG.log(Level.DEBUG, "colo-compare: the secondary's output channel ended: " + e.getMessage());
            }
        }
    }

    @Override
    public synchronized void write(byte b) {
        if (closed) {
            real.write(b);
            return;
        }
        held.add(b);
        match();
    }

    private synchronized void secondaryWrote(byte[] bytes) {
        for (byte b : bytes) {
            secondary.add(secondaryEpoch << 8 | (b & 0xFF));
        }
        match();
    }

    private synchronized void secondaryCheckpoint(long k) {
        secondaryEpoch = k;
        dropStale();
        match();
    }

    /** Releases what both wrote alike; at the first difference asks for a checkpoint. */
    private void match() {
        while (!diverged && !held.isEmpty() && !secondary.isEmpty()) {
            long s = secondary.peekFirst();
            if (s >>> 8 != epoch) {
                if (s >>> 8 < epoch) {
                    secondary.pollFirst();
                    continue;
                }
                return; // the secondary is ahead: its bytes wait for this epoch to end
            }
            if ((byte) s == held.peekFirst()) {
                secondary.pollFirst();
                real.write(held.pollFirst());
                released++;
            } else {
                diverged = true;
                divergences++;
                askCheckpoint.run();
            }
        }
    }

    private void dropStale() {
        while (!secondary.isEmpty() && secondary.peekFirst() >>> 8 < epoch) {
            secondary.pollFirst();
        }
    }

    /**
     * Checkpoint {@code k} is done (both guests stopped in the same state): everything the primary
     * held is released, the secondary's bytes of earlier epochs go, comparing starts over.
     */
    synchronized void checkpointDone(long k) {
        while (!held.isEmpty()) {
            real.write(held.pollFirst());
            released++;
        }
        epoch = k;
        diverged = false;
        dropStale();
    }

    /** Bytes released to the real output so far. */
    synchronized long released() {
        return released;
    }

    /** Bytes held back now. */
    synchronized int held() {
        return held.size();
    }

    /** Times the outputs differed. */
    synchronized long divergences() {
        return divergences;
    }

    /** COLO ended: what is held goes out, and from now on the output passes straight through. */
    synchronized void close() {
        closed = true;
        while (!held.isEmpty()) {
            real.write(held.pollFirst());
            released++;
        }
        secondary.clear();
    }
}
