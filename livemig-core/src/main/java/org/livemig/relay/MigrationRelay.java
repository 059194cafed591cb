package org.livemig.relay;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.SocketChannel;
import java.nio.channels.WritableByteChannel;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.livemig.analyze.Analysis;
import org.livemig.analyze.Analyzer;
import org.livemig.analyze.StreamVisitor;
import org.livemig.stream.RamPageRecord;
import org.livemig.stream.ReturnPathCodec;
import org.livemig.stream.StreamFormatException;
import org.livemig.transport.MigrationConnection;

/**
 * Called on one thread, which it blocks until the migration has passed. Sits between a migration
 * source and its destination: every byte the source sends goes to the destination (and to an
 * optional recording) as soon as it arrives, unchanged, while the same bytes are decoded section
 * by section; every byte the destination sends back (the return path) goes to the source,
 * unchanged, on a second thread named {@code relay-return-path}.
 *
 * <p>Nothing is re-encoded, so the destination sees exactly the source's stream even where the
 * decoder could not follow it: a decoding error is reported in the {@link Result} and the rest
 * is forwarded undecoded. End of stream in either direction is passed on as a half-close. Every
 * wait is bounded: no data in either direction for {@code idleTimeout} shuts both connections
 * down, and once the source's stream has ended the destination gets {@code drainTimeout} to
 * close the return path.
 */
public final class MigrationRelay {
    private MigrationRelay() {}

    /**
     * What passed.
     *
     * @param stats          the forward stream's sections, RAM records and commands
     * @param forwardBytes   bytes source to destination
     * @param returnBytes    bytes destination to source
     * @param returnMessages return-path messages by type name (complete messages only)
     * @param decodeError    why decoding stopped early (the rest was still forwarded), or null
     * @param preemptBytes   bytes on the postcopy preempt channel, or -1 when none came
     */
    public record Result(RelayStats stats, long forwardBytes, long returnBytes, Map<String, Integer> returnMessages,
                         String decodeError, List<MultifdChannel> multifd, long preemptBytes) {
        /** Lines for a person: sections, RAM records, commands, bytes. */
        public List<String> summary() {
            List<String> l = new ArrayList<>();
            l.add("bytes: " + forwardBytes + " source -> destination, " + returnBytes + " destination -> source");
            l.add("sections: " + stats.sections());
            l.add("pages: zero " + stats.ram(org.livemig.stream.RamPageRecord.Kind.ZERO)
                    + ", normal " + stats.ram(org.livemig.stream.RamPageRecord.Kind.PAGE)
                    + ", xbzrle " + stats.ram(org.livemig.stream.RamPageRecord.Kind.XBZRLE)
                    + ", compressed " + stats.ram(org.livemig.stream.RamPageRecord.Kind.COMPRESS_PAGE));
            l.add("ram records: " + stats.ram());
            l.add("commands: " + stats.commands());
            if (stats.colo()) {
                l.add("colo: " + stats.coloCheckpoints() + " checkpoints, primary sent " + stats.coloMessages());
            }
            l.add("return path: " + returnMessages);
            l.add("stream: " + (stats.sawEof() ? "EOF" : "no EOF") + ", "
                    + (stats.sawVmdesc() ? "vmdesc trailer" : "no vmdesc trailer"));
            if (!multifd.isEmpty()) {
                l.add("multifd: " + multifd.size() + " channels, "
                        + multifd.stream().mapToLong(MultifdChannel::packets).sum() + " packets, "
                        + multifd.stream().mapToLong(MultifdChannel::pages).sum() + " pages, "
                        + multifd.stream().mapToLong(MultifdChannel::bytes).sum() + " bytes");
                for (MultifdChannel c : multifd) {
                    l.add("  channel " + c.id() + ": " + c.packets() + " packets, " + c.pages() + " pages, "
                            + c.syncs() + " syncs, " + c.bytes() + " bytes"
                            + (c.decodeError() == null ? "" : "; not decoded further: " + c.decodeError()));
                }
            }
            if (preemptBytes >= 0) {
                l.add("preempt: " + preemptBytes + " bytes source -> destination");
            }
            if (decodeError != null) {
                l.add("decoding stopped early (the rest was forwarded undecoded): " + decodeError);
            }
            return l;
        }
    }

    /** One relayed multifd channel: its id (from its initial packet), what passed, and a decoding error if any. */
    public record MultifdChannel(int id, long packets, long pages, long syncs, long bytes, String decodeError) {}

    /** As {@link #run(MigrationConnection, MigrationConnection, List, WritableByteChannel, Duration, Duration)} without multifd channels. */
    public static Result run(MigrationConnection source, MigrationConnection destination, WritableByteChannel record,
                             Duration idleTimeout, Duration drainTimeout) throws IOException {
        return run(source, destination, List.of(), record, idleTimeout, drainTimeout);
    }

    /**
     * Relays one migration and returns when both directions have ended. Does not close the
     * connections or the recording. Each multifd channel (a {source, destination} pair, the
     * destination's connected after the main one, as QEMU 7.2 expects) is forwarded on its own
     * thread; it is not recorded (the recording is the main stream).
     *
     * @param source       the accepted connection from the migration source
     * @param destination  the connection made to the destination
     * @param record       also receives the forward stream, or null
     * @param idleTimeout  longest time without a byte in either direction
     * @param drainTimeout how long the destination may keep the return path open after the
     *                     source's stream ended
     * @throws IOException naming the side that failed (the source or destination vanished, a
     *                     timeout), or when the source's stream ended in the middle
     */
    public static Result run(MigrationConnection source, MigrationConnection destination,
                             List<MigrationConnection[]> multifd, WritableByteChannel record,
                             Duration idleTimeout, Duration drainTimeout) throws IOException {
        return run(source, destination, multifd, record, idleTimeout, drainTimeout, FaultPlan.NONE);
    }

    /**
     * As above, injecting {@code faults} on the way (see {@link Fault}). A cut ends the relay with
     * an {@link IOException} saying what was cut where; {@link FaultPlan#events()} says what
     * every fault did. The recording holds the source's bytes as they came (no flip in it), up to
     * the last chunk forwarded whole before a cut.
     */
    public static Result run(MigrationConnection source, MigrationConnection destination,
                             List<MigrationConnection[]> multifd, WritableByteChannel record,
                             Duration idleTimeout, Duration drainTimeout, FaultPlan faults) throws IOException {
        return run(source, destination, multifd, record, idleTimeout, drainTimeout, faults, null);
    }

    /**
     * As above, with a postcopy preempt channel: {@code preempt} completes with its {source,
     * destination} pair whenever the source opens it (QEMU 7.2 right after the main connection,
     * livemig at the switch to postcopy), and it is then forwarded on its own thread; it may
     * never come. Its faults are those on {@link FaultChannel#PREEMPT}.
     */
    public static Result run(MigrationConnection source, MigrationConnection destination,
                             List<MigrationConnection[]> multifd, WritableByteChannel record,
                             Duration idleTimeout, Duration drainTimeout, FaultPlan faults,
                             java.util.concurrent.CompletionStage<MigrationConnection[]> preempt) throws IOException {
        try {
            return relay(source, destination, multifd, record, idleTimeout, drainTimeout, faults, preempt);
        } catch (IOException e) {
            FaultPlan.Event cut = faults.cut();
            if (cut != null && !(e instanceof FaultyLink.CutException)) {
                throw new IOException("cut by --fault " + cut.fault() + ": " + cut.what(), e);
            }
            throw e;
        } finally {
            faults.close();
        }
    }

    private static Result relay(MigrationConnection source, MigrationConnection destination,
                                List<MigrationConnection[]> multifd, WritableByteChannel record,
                                Duration idleTimeout, Duration drainTimeout, FaultPlan faults,
                                java.util.concurrent.CompletionStage<MigrationConnection[]> preempt) throws IOException {
        AtomicLong lastProgress = new AtomicLong(System.nanoTime());
        Runnable progress = () -> lastProgress.set(System.nanoTime());
        Preempt pre = new Preempt();
        if (preempt != null) {
            preempt.thenAccept(pair -> pre.start(pair, faults, progress));
        }
        List<MultifdChannelRelay> channels = new ArrayList<>();
        List<Thread> channelThreads = new ArrayList<>();
        for (MigrationConnection[] pair : multifd) {
            FaultChannel fc = FaultChannel.multifd(channels.size());
            WritableByteChannel out = faults.link(fc, pair[1].out(), () -> {
                pair[0].shutdown();
                pair[1].shutdown();
            });
            MultifdChannelRelay c = new MultifdChannelRelay(pair[0], pair[1], out, faults.needsPoints(fc), progress);
            channels.add(c);
            channelThreads.add(Thread.ofPlatform().name("relay-multifd-" + channels.size()).daemon().start(c));
        }
        Runnable cutMain = () -> {
            source.shutdown();
            destination.shutdown();
        };
        WritableByteChannel toDestination = faults.link(FaultChannel.MAIN, destination.out(), cutMain);
        List<WritableByteChannel> sinks = new ArrayList<>();
        sinks.add(side(toDestination, "writing to the destination"));
        if (record != null) {
            sinks.add(side(record, "writing the recording"));
        }
        ForwardingChannel forward = new ForwardingChannel(side(source.in(), "reading from the source"), sinks,
                progress, faults.needsPoints(FaultChannel.MAIN));
        RelayStats stats = new RelayStats();
        StreamVisitor visitor = toDestination instanceof FaultyLink l && faults.needsPoints(FaultChannel.MAIN)
                ? StreamVisitor.tee(stats, new FaultPointVisitor(l)) : stats;
        ReturnPath back = new ReturnPath(destination.in(), faults.link(FaultChannel.RETURN, source.out(), cutMain),
                source.out(), progress, stats::colo);
        Thread backThread = Thread.ofPlatform().name("relay-return-path").daemon().start(back);
        AtomicReference<String> timedOut = new AtomicReference<>();
        Thread watchdog = Thread.ofPlatform().name("relay-watchdog").daemon().start(() -> {
            while (!Thread.currentThread().isInterrupted()) {
                long idle = System.nanoTime() - lastProgress.get();
                if (idle > idleTimeout.toNanos()) {
                    timedOut.set("no data in either direction for " + idleTimeout.toSeconds() + " s");
                    source.shutdown();
                    destination.shutdown();
                    pre.end();
                    for (MigrationConnection[] pair : multifd) {
                        pair[0].shutdown();
                        pair[1].shutdown();
                    }
                    return;
                }
                try {
                    Thread.sleep(Math.min(200, Math.max(1, idleTimeout.toMillis() / 4)));
                } catch (InterruptedException e) {
                    return;
                }
            }
        });
        String decodeError = null;
        try {
            try (Analysis ignored = Analyzer.analyze(forward, Analyzer.Options.DEFAULT.withoutRam(), visitor)) {
                // the stats are what the relay reports; the analysis only drives the decoding
            } catch (StreamFormatException e) {
                decodeError = forward.forwardRestUndecoded(e, "the source's stream ended after " + forward.bytes()
                        + " bytes, before the migration was complete");
            }
            forward.flushPending();
            FaultyLink.flush(toDestination);
            halfClose(destination.out());
            backThread.join(drainTimeout.toMillis());
            if (backThread.isAlive()) {
                throw new IOException("the destination did not close the return path within "
                        + drainTimeout.toSeconds() + " s of the end of the stream");
            }
            if (back.error != null) {
                throw back.error;
            }
            for (int i = 0; i < channels.size(); i++) {
                channelThreads.get(i).join(drainTimeout.toMillis());
                if (channelThreads.get(i).isAlive()) {
                    throw new IOException("multifd channel " + (i + 1) + " of the source did not end within "
                            + drainTimeout.toSeconds() + " s of the end of the main stream");
                }
                if (channels.get(i).error != null) {
                    throw channels.get(i).error;
                }
            }
            pre.join(drainTimeout);
        } catch (IOException | RuntimeException e) {
            source.shutdown();
            destination.shutdown();
            pre.end();
            for (MigrationConnection[] pair : multifd) {
                pair[0].shutdown();
                pair[1].shutdown();
            }
            joinQuietly(backThread);
            channelThreads.forEach(MigrationRelay::joinQuietly);
            String why = timedOut.get();
            throw why != null ? new IOException(why, e) : e instanceof IOException io ? io : new IOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            source.shutdown();
            destination.shutdown();
            pre.end();
            throw new IOException("interrupted", e);
        } finally {
            watchdog.interrupt();
        }
        List<MultifdChannel> mfd = new ArrayList<>();
        for (MultifdChannelRelay c : channels) {
            mfd.add(new MultifdChannel(c.channelId, c.packets.get(), c.pages.get(), c.syncs.get(), c.bytes(), c.decodeError));
        }
        return new Result(stats, forward.bytes(), back.bytes.get(), back.messages(), decodeError, mfd, pre.bytes());
    }

    /** The preempt channel, once it comes; one that comes after the relay ended is shut down at once. */
    private static final class Preempt {
        private PreemptChannelRelay relay;
        private Thread thread;
        private boolean ended;

        synchronized void start(MigrationConnection[] pair, FaultPlan faults, Runnable progress) {
            if (ended) {
                pair[0].shutdown();
                pair[1].shutdown();
                return;
            }
            WritableByteChannel out = faults.link(FaultChannel.PREEMPT, pair[1].out(), () -> {
                pair[0].shutdown();
                pair[1].shutdown();
            });
            relay = new PreemptChannelRelay(pair[0], pair[1], out, progress);
            thread = Thread.ofPlatform().name("relay-preempt").daemon().start(relay);
        }

        /** Waits for the channel to end once the main stream has; throws its error. */
        void join(Duration drainTimeout) throws IOException, InterruptedException {
            Thread t;
            synchronized (this) {
                ended = true;
                t = thread;
            }
            if (t == null) {
                return;
            }
            t.join(drainTimeout.toMillis());
            if (t.isAlive()) {
                throw new IOException("the source's preempt channel did not end within " + drainTimeout.toSeconds()
                        + " s of the end of the main stream");
            }
            if (relay.error != null) {
                throw relay.error;
            }
        }

        synchronized void end() {
            ended = true;
            if (relay != null) {
                relay.shutdown();
            }
        }

        synchronized long bytes() {
            return relay == null ? -1 : relay.bytes();
        }
    }

    private static void joinQuietly(Thread t) {
        try {
            t.join(5_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** Passes an end of stream on: shuts a socket's output, leaving its input open. */
    static void halfClose(WritableByteChannel out) {
        if (out instanceof SocketChannel sc) {
            try {
                sc.shutdownOutput();
            } catch (IOException e) {
                // already closed: the peer has its end of stream anyway
            }
        }
    }

    /** Copies destination to source on its own thread, counting return-path messages as they pass. */
    private static final class ReturnPath implements Runnable {
        private final ReadableByteChannel from;
        private final WritableByteChannel to;
        private final WritableByteChannel rawTo;
        private final WritableByteChannel faulty;
        private final Runnable progress;
        final AtomicLong bytes = new AtomicLong();
        volatile IOException error;
        private final Map<String, Integer> messages = new LinkedHashMap<>();
        /** Header bytes of the message being counted; -1 once the parse cannot follow. */
        private final byte[] header = new byte[ReturnPathCodec.HEADER_LENGTH];
        private int headerFill;
        private long payloadLeft;
        private boolean lost;

        /** True once the forward stream said ENABLE_COLO: then this direction carries COLO messages. */
        private final java.util.function.BooleanSupplier colo;
        private final byte[] coloMessage = new byte[4];
        private int coloFill;

        /** @param to the source's connection, through a faulty link if faults apply; {@code rawTo} the connection itself */
        ReturnPath(ReadableByteChannel from, WritableByteChannel to, WritableByteChannel rawTo, Runnable progress,
                   java.util.function.BooleanSupplier colo) {
            this.colo = colo;
            this.from = side(from, "reading the return path from the destination");
            this.faulty = to;
            this.to = side(to, "writing the return path to the source");
            this.rawTo = rawTo;
            this.progress = progress;
        }

        @Override
        public void run() {
            ByteBuffer buf = ByteBuffer.allocate(4096);
            try {
                while (from.read(buf.clear()) >= 0) {
                    buf.flip();
                    count(buf.duplicate());
                    while (buf.hasRemaining()) {
                        to.write(buf);
                    }
                    bytes.addAndGet(buf.limit());
                    progress.run();
                }
                FaultyLink.flush(faulty);
                halfClose(rawTo);
            } catch (IOException e) {
                error = e;
            }
        }

        /** Follows message boundaries (header, payload); RECV_BITMAP's trailing bitmap is not followed. */
        private void count(ByteBuffer b) {
            if (colo.getAsBoolean() && headerFill == 0 && payloadLeft == 0) {
                countColo(b);
                return;
            }
            while (b.hasRemaining() && !lost) {
                if (payloadLeft > 0) {
                    int n = (int) Math.min(payloadLeft, b.remaining());
                    b.position(b.position() + n);
                    payloadLeft -= n;
                    continue;
                }
                header[headerFill++] = b.get();
                if (headerFill == header.length) {
                    headerFill = 0;
                    int type = (header[0] & 0xFF) << 8 | (header[1] & 0xFF);
                    payloadLeft = (header[2] & 0xFF) << 8 | (header[3] & 0xFF);
                    String name = ReturnPathCodec.typeName(type);
                    synchronized (messages) {
                        messages.merge(name, 1, Integer::sum);
                    }
                    if (type == org.livemig.stream.QemuStream.RP_RECV_BITMAP) {
                        lost = true;
                        synchronized (messages) {
                            messages.merge("(not followed after RECV_BITMAP)", 1, Integer::sum);
                        }
                    }
                }
            }
        }

        /** The secondary's COLO messages: be32 ids (QEMU 7.2 runs COLO without a return path). */
        private void countColo(ByteBuffer b) {
            while (b.hasRemaining()) {
                coloMessage[coloFill++] = b.get();
                if (coloFill == coloMessage.length) {
                    coloFill = 0;
                    int id = java.nio.ByteBuffer.wrap(coloMessage).getInt();
                    org.livemig.stream.ColoMessage m = org.livemig.stream.ColoMessage.of(id);
                    synchronized (messages) {
                        messages.merge(m == null ? "COLO(" + Integer.toUnsignedString(id) + ")" : "COLO " + m.qemuName(),
                                1, Integer::sum);
                    }
                }
            }
        }

        Map<String, Integer> messages() {
            synchronized (messages) {
                return new LinkedHashMap<>(messages);
            }
        }
    }

    /** Prefixes I/O errors with which side of the relay failed. */
    private static ReadableByteChannel side(ReadableByteChannel ch, String what) {
        return new ReadableByteChannel() {
            @Override
            public int read(ByteBuffer dst) throws IOException {
                try {
                    return ch.read(dst);
                } catch (IOException e) {
                    throw new IOException(what + ": " + e.getMessage(), e);
                }
            }

            @Override
            public boolean isOpen() {
                return ch.isOpen();
            }

            @Override
            public void close() throws IOException {
                ch.close();
            }
        };
    }

    private static WritableByteChannel side(WritableByteChannel ch, String what) {
        return new WritableByteChannel() {
            @Override
            public int write(ByteBuffer src) throws IOException {
                try {
                    return ch.write(src);
                } catch (IOException e) {
                    throw new IOException(what + ": " + e.getMessage(), e);
                }
            }

            @Override
            public boolean isOpen() {
                return ch.isOpen();
            }

            @Override
            public void close() throws IOException {
                ch.close();
            }
        };
    }
}
