package org.livemig.migration.colo;

import java.io.IOException;
import java.lang.System.Logger.Level;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.livemig.machine.SerialOutput;
import org.livemig.stream.MigrationFile;
import org.livemig.transport.MigrationConnection;

/**
 * The secondary's half of the output comparison: what its guest writes to the serial port goes
 * to the primary on the compare channel (see {@link OutputCompare} for the frames), not to any
 * real output, and a marker goes after each checkpoint it applies.
 *
 * <p>Threads: vCPUs call {@link #write} (no BQL) and only queue; {@code mig/dst/colo} queues the
 * markers; {@code colo-compare} writes the channel, so that no vCPU ever blocks on the network.
 */
final class OutputMirror implements SerialOutput {
    private static final System.Logger LOG = System.getLogger(OutputMirror.class.getName());
    /** Queue entries: a byte (0..255), or a marker (negative: -1 - checkpoint). */
    private final LinkedBlockingQueue<Long> queue = new LinkedBlockingQueue<>();
    private final MigrationConnection channel;
    private final Thread writer;
    private volatile boolean closed;

    OutputMirror(MigrationConnection channel) {
        this.channel = channel;
        this.writer = Thread.ofPlatform().name(OutputCompare.THREAD_NAME).daemon(true).unstarted(this::writeLoop);
        writer.start();
    }

    @Override
    public void write(byte b) {
        if (!closed) {
            queue.add((long) (b & 0xFF));
        }
    }

    /** Checkpoint {@code k} is applied: the guest's output from here on belongs to the next epoch. */
    void checkpointApplied(long k) {
        if (!closed) {
            queue.add(-1 - k);
        }
    }

    private void writeLoop() {
        MigrationFile out = MigrationFile.forWriting(channel.out());
        byte[] run = new byte[OutputCompare.MAX_FRAME_BYTES];
        try {
            while (!closed) {
                Long first = queue.poll(100, TimeUnit.MILLISECONDS);
                if (first == null) {
                    continue;
                }
                java.util.List<Long> batch = new java.util.ArrayList<>();
                batch.add(first);
                queue.drainTo(batch, 4096);
                int n = 0;
                for (long v : batch) {
                    if (v < 0) {
                        flushRun(out, run, n);
                        n = 0;
                        out.putByte(OutputCompare.FRAME_CHECKPOINT);
                        out.putBe64(-1 - v);
                    } else {
                        run[n++] = (byte) v;
                        if (n == run.length) {
                            flushRun(out, run, n);
                            n = 0;
                        }
                    }
                }
                flushRun(out, run, n);
                out.flush();
            }
        } catch (IOException e) {
            if (!closed) {
                LOG.log(Level.DEBUG, "colo-compare: output channel to the primary ended: " + e.getMessage());
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private static void flushRun(MigrationFile out, byte[] run, int n) throws IOException {
        if (n > 0) {
            out.putByte(OutputCompare.FRAME_OUTPUT);
            out.putBe16(n);
            out.putBytes(run, 0, n);
        }
    }

    /** COLO ended: the channel is shut and the writer stops. */
    void close() {
        closed = true;
        channel.shutdown();
    }
}
