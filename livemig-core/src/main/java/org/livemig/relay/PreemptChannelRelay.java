package org.livemig.relay;

import java.io.IOException;
import java.nio.channels.WritableByteChannel;
import java.util.List;

import org.livemig.transport.MigrationConnection;

/**
 * Forwards a relayed migration's postcopy preempt channel, source to destination, unchanged, on
 * its own thread ({@code relay-preempt}). It carries the pages a destination's vCPUs wait for,
 * in the main stream's RAM record format but with no header; it is counted, not decoded. The
 * destination sends nothing back on it.
 */
final class PreemptChannelRelay implements Runnable {
    private final MigrationConnection source;
    private final MigrationConnection destination;
    private final WritableByteChannel out;
    private final ForwardingChannel forward;
    volatile IOException error;

    /** @param out the destination's connection, through a faulty link if faults apply */
    PreemptChannelRelay(MigrationConnection source, MigrationConnection destination, WritableByteChannel out,
                        Runnable progress) {
        this.source = source;
        this.destination = destination;
        this.out = out;
        this.forward = new ForwardingChannel(source.in(), List.of(out), progress);
    }

    long bytes() {
        return forward.bytes();
    }

    /** Shuts both connections down (the relay is ending). */
    void shutdown() {
        source.shutdown();
        destination.shutdown();
    }

    @Override
    public void run() {
        try {
            forward.drain();
            FaultyLink.flush(out);
            MigrationRelay.halfClose(destination.out());
        } catch (IOException e) {
            error = e;
            shutdown();
        }
    }
}
