package org.livemig.relay;

import java.io.IOException;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.MultifdPacket;
import org.livemig.stream.QemuStream;
import org.livemig.transport.MigrationConnection;

/**
 * Forwards one multifd channel of a relayed migration, source to destination, unchanged, on its
 * own thread ({@code relay-multifd-n}), reading QEMU 7.2's packets on the way to count them. A
 * packet that cannot be read stops the counting, not the forwarding: the rest goes undecoded.
 * The channel carries nothing back, so there is no return direction.
 */
final class MultifdChannelRelay implements Runnable {
    /** Offset slots a packet may have: QEMU 7.2 uses 128; later versions may use more. */
    private static final int MAX_SLOTS = 1 << 16;

    private final MigrationConnection source;
    private final MigrationConnection destination;
    private final Runnable progress;
    private final ForwardingChannel forward;
    final AtomicLong packets = new AtomicLong();
    final AtomicLong pages = new AtomicLong();
    final AtomicLong syncs = new AtomicLong();
    volatile int channelId = -1;
    volatile String decodeError;
    volatile IOException error;

    private final java.nio.channels.WritableByteChannel out;

    /**
     * @param out      the destination's connection, through a faulty link if faults apply
     * @param holdBack whether a fault waits for a SYNC packet (see {@link ForwardingChannel})
     */
    MultifdChannelRelay(MigrationConnection source, MigrationConnection destination,
                        java.nio.channels.WritableByteChannel out, boolean holdBack, Runnable progress) {
        this.source = source;
        this.destination = destination;
        this.progress = progress;
        this.out = out;
        this.forward = new ForwardingChannel(source.in(), List.of(out), progress, holdBack);
    }

    long bytes() {
        return forward.bytes();
    }

    @Override
    public void run() {
        try {
            MigrationFile f = MigrationFile.forReading(forward);
            try {
                channelId = MultifdPacket.readInit(f).channelId();
                while (!f.atEof()) {
                    MultifdPacket.Packet p = MultifdPacket.readPacket(f, MAX_SLOTS, QemuStream.TARGET_PAGE_SIZE,
                            Integer.MAX_VALUE);
                    if (p instanceof MultifdPacket.DeviceStateHeader d) {
                        // a device's state (QEMU 10 VFIO, livemig's accelerators): passed on, not decoded
                        f.skip(d.size());
                        packets.incrementAndGet();
                        continue;
                    }
                    MultifdPacket.Header h = (MultifdPacket.Header) p;
                    long headerEnd = f.position();
                    if (h.normalPages() > 0) {
                        f.skip(Integer.toUnsignedLong(h.nextPacketSize()));
                        pages.addAndGet(h.normalPages());
                    }
                    packets.incrementAndGet();
                    if (h.sync()) {
                        syncs.incrementAndGet();
                        if (out instanceof FaultyLink l) {
                            l.reached(FaultPoint.Kind.SYNC, null, headerEnd);
                        }
                    }
                }
            } catch (IOException e) {
                decodeError = forward.forwardRestUndecoded(e, "multifd channel from " + source.description()
                        + " ended in the middle of a packet");
            }
            forward.flushPending();
            FaultyLink.flush(out);
            MigrationRelay.halfClose(destination.out());
            progress.run();
        } catch (IOException e) {
            error = e;
            source.shutdown();
            destination.shutdown();
        }
    }
}
