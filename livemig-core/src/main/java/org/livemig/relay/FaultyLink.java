package org.livemig.relay;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.WritableByteChannel;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * Called without the BQL (the relay has none); blocks on IO. One direction of a relayed migration
 * with faults in it: a sink that counts the bytes written to it (its stream offset) and, at each
 * fault's trigger, cuts, stalls, starts capping the rate or flips a byte, and may delay everything
 * through a delay line. A trigger that waits for a point is resolved by {@link #reached} once the
 * relay's decoder sees the point; one resolved behind what already passed acts on the next byte,
 * and its event says so.
 *
 * <p>Not thread-safe: one writing thread, which also reports points. The delay line writes to the
 * real sink on a thread of its own ({@code relay-delay-CHANNEL}).
 */
final class FaultyLink implements WritableByteChannel {
    /** Thrown by {@link #write} once the link has been cut. */
    static final class CutException extends IOException {
        CutException(String message) {
            super(message);
        }
    }

    /** One fault and its trigger offset (-1 until its point is seen). */
    private static final class Armed {
        final Fault fault;
        long trigger;
        int seen;
        boolean done;
        String point;
        long pointEnd;

        Armed(Fault fault) {
            this.fault = fault;
            this.trigger = fault.at().kind() == FaultPoint.Kind.START ? fault.after() : -1;
            this.point = fault.at().kind() == FaultPoint.Kind.START ? "the start" : null;
        }
    }

    private final FaultPlan plan;
    private final FaultChannel channel;
    private final WritableByteChannel sink;
    private final Runnable cutAction;
    private final List<Armed> armed = new ArrayList<>();
    private final DelayLine delay;
    private long pos;
    private boolean cut;
    private String cutMessage;
    private int pendingXor;
    private long rateBps;
    private long rateStart;
    private long rateBytes;

    FaultyLink(FaultPlan plan, FaultChannel channel, List<Fault> faults, WritableByteChannel sink, Runnable cutAction) {
        this.plan = plan;
        this.channel = channel;
        this.sink = sink;
        this.cutAction = cutAction;
        Duration d = null;
        for (Fault f : faults) {
            if (f.kind() == Fault.Kind.DELAY) {
                d = d == null || f.duration().compareTo(d) > 0 ? f.duration() : d;
                plan.fired(new FaultPlan.Event(f, channel, 0, "every byte of " + describe() + " delayed by "
                        + f.duration().toMillis() + " ms"));
            } else {
                armed.add(new Armed(f));
            }
        }
        this.delay = d == null || d.isZero() ? null : new DelayLine(d, sink, "relay-delay-" + channel);
    }

    /** Bytes written to this link so far: the offset of the next byte. */
    long position() {
        return pos;
    }

    /**
     * The relay's decoder saw {@code kind} (a section with {@code idstr}) end its header at
     * {@code offset} of this channel's stream.
     */
    void reached(FaultPoint.Kind kind, String idstr, long offset) {
        for (Armed a : armed) {
            FaultPoint p = a.fault.at();
            if (a.trigger >= 0 || p.kind() != kind || (kind == FaultPoint.Kind.SECTION && !p.idstr().equals(idstr))) {
                continue;
            }
            if (++a.seen < p.nth()) {
                continue;
            }
            a.trigger = offset + a.fault.after();
            a.pointEnd = offset;
            a.point = switch (kind) {
                case SECTION -> "the header of section " + idstr;
                case PACKAGE -> "the postcopy package";
                case SYNC -> "the header of multifd SYNC packet " + p.nth();
                case START -> "the start";
            };
        }
    }

    @Override
    public int write(ByteBuffer src) throws IOException {
        int total = src.remaining();
        while (src.hasRemaining()) {
            if (cut) {
                throw new CutException(cutMessage);
            }
            if (delay != null) {
                delay.check();
            }
            long next = Long.MAX_VALUE;
            for (Armed a : armed) {
                if (a.done || a.trigger < 0) {
                    continue;
                }
                if (a.trigger <= pos) {
                    fire(a);
                } else {
                    next = Math.min(next, a.trigger);
                }
            }
            int n = (int) Math.min(src.remaining(), next - pos);
            ByteBuffer piece = src.slice(src.position(), n);
            src.position(src.position() + n);
            if (pendingXor != 0) {
                byte[] copy = new byte[n];
                piece.get(copy);
                copy[0] ^= (byte) pendingXor;
                pendingXor = 0;
                piece = ByteBuffer.wrap(copy);
            }
            deliver(piece);
            pos += n;
        }
        return total;
    }

    private void fire(Armed a) throws IOException {
        a.done = true;
        Fault f = a.fault;
        String where = "at byte " + pos + " of " + describe();
        if (f.at().kind() != FaultPoint.Kind.START) {
            where += ", " + (f.after() > 0 ? f.after() + " bytes after " : "just after ") + a.point;
            if (a.trigger < pos) {
                where += " (which ended at byte " + a.pointEnd + ", already forwarded when the relay saw it)";
            } else if (f.after() > 0) {
                where += " (which ended at byte " + a.pointEnd + ")";
            }
        }
        switch (f.kind()) {
            case CUT -> {
                flush();
                cut = true;
                cutMessage = "cut by --fault " + f + ": cut " + where;
                plan.fired(new FaultPlan.Event(f, channel, pos, "cut " + where));
                cutAction.run();
                throw new CutException(cutMessage);
            }
            case STALL -> {
                flush();
                plan.fired(new FaultPlan.Event(f, channel, pos, "stalled " + f.duration().toMillis() + " ms " + where));
                sleep(f.duration().toNanos());
            }
            case RATE -> {
                rateBps = f.bytesPerSecond();
                rateStart = System.nanoTime();
                rateBytes = 0;
                plan.fired(new FaultPlan.Event(f, channel, pos, "capped at " + rateBps + " bytes/s " + where.replaceFirst("^at ", "from ")));
            }
            case FLIP -> {
                pendingXor ^= f.xor();
                plan.fired(new FaultPlan.Event(f, channel, pos, "flipped a byte (xor 0x" + Integer.toHexString(f.xor())
                        + ") " + where));
            }
            case DELAY -> throw new AssertionError("a delay is not armed");
        }
    }

    private String describe() {
        return switch (channel.type()) {
            case MAIN -> "the main stream";
            case RETURN -> "the return path";
            case PREEMPT -> "the preempt channel";
            case MULTIFD -> "multifd channel " + channel.index();
        };
    }

    private void deliver(ByteBuffer piece) throws IOException {
        if (rateBps == 0) {
            send(piece);
            return;
        }
        // 20 slices a second at most, so that the cap holds over short spans too
        int slice = (int) Math.max(1, Math.min(piece.remaining(), rateBps / 20));
        while (piece.hasRemaining()) {
            int k = Math.min(slice, piece.remaining());
            // sent once the cap allows all of it, so that by any time t at most bps * t have gone
            long due = rateStart + (long) ((rateBytes + k) * 1e9 / rateBps);
            sleep(due - System.nanoTime());
            ByteBuffer part = piece.slice(piece.position(), k);
            piece.position(piece.position() + k);
            send(part);
            rateBytes += k;
        }
    }

    private void send(ByteBuffer b) throws IOException {
        if (delay != null) {
            delay.put(b);
            return;
        }
        while (b.hasRemaining()) {
            sink.write(b);
        }
    }

    /** Waits until everything written has reached the sink (the delay line is empty). */
    void flush() throws IOException {
        if (delay != null) {
            delay.flush();
        }
    }

    /** Flushes {@code ch} if it is a faulty link. */
    static void flush(WritableByteChannel ch) throws IOException {
        if (ch instanceof FaultyLink l) {
            l.flush();
        }
    }

    private static void sleep(long nanos) throws InterruptedIOException {
        if (nanos <= 0) {
            return;
        }
        try {
            TimeUnit.NANOSECONDS.sleep(nanos);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted while injecting a fault");
        }
    }

    @Override
    public boolean isOpen() {
        return !cut && sink.isOpen();
    }

    /** Stops the delay line; does not close the sink (the connection's owner does). */
    @Override
    public void close() {
        if (delay != null) {
            delay.close();
        }
    }

    /**
     * Holds each chunk for a fixed time, then writes it, on its own thread, so that a delay does
     * not lower the throughput. Bounded: at most {@link #SLOTS} chunks wait (64 MiB of 64 KiB
     * reads); a writer beyond that blocks, as a full socket buffer would.
     */
    private static final class DelayLine {
        private static final int SLOTS = 1024;
        private record Entry(long due, byte[] bytes, CountDownLatch done) {}

        private final long delayNanos;
        private final WritableByteChannel sink;
        private final BlockingQueue<Entry> queue = new ArrayBlockingQueue<>(SLOTS);
        private final Thread thread;
        private volatile IOException error;
        private volatile boolean closed;

        DelayLine(Duration delay, WritableByteChannel sink, String name) {
            this.delayNanos = delay.toNanos();
            this.sink = sink;
            this.thread = Thread.ofPlatform().name(name).daemon().start(this::run);
        }

        private void run() {
            try {
                while (!closed) {
                    Entry e = queue.poll(200, TimeUnit.MILLISECONDS);
                    if (e == null) {
                        continue;
                    }
                    if (e.bytes != null) {
                        long wait = e.due - System.nanoTime();
                        if (wait > 0) {
                            TimeUnit.NANOSECONDS.sleep(wait);
                        }
                        ByteBuffer b = ByteBuffer.wrap(e.bytes);
                        while (b.hasRemaining()) {
                            sink.write(b);
                        }
                    }
                    if (e.done != null) {
                        e.done.countDown();
                    }
                }
            } catch (IOException e) {
                error = e;
            } catch (InterruptedException e) {
                error = new InterruptedIOException("delay line interrupted");
            }
            // wake anyone flushing behind a failed write
            for (Entry e; (e = queue.poll()) != null; ) {
                if (e.done != null) {
                    e.done.countDown();
                }
            }
        }

        void check() throws IOException {
            if (error != null) {
                throw new IOException(error.getMessage(), error);
            }
        }

        void put(ByteBuffer b) throws IOException {
            byte[] copy = new byte[b.remaining()];
            b.get(copy);
            enqueue(new Entry(System.nanoTime() + delayNanos, copy, null));
        }

        private void enqueue(Entry e) throws IOException {
            try {
                while (!queue.offer(e, 200, TimeUnit.MILLISECONDS)) {
                    check();
                    if (!thread.isAlive()) {
                        throw new IOException("the delay line has stopped");
                    }
                }
            } catch (InterruptedException ex) {
                Thread.currentThread().interrupt();
                throw new InterruptedIOException("interrupted while delaying");
            }
        }

        /** Bounded: the delay plus 60 s for the sink to take the bytes. */
        void flush() throws IOException {
            CountDownLatch done = new CountDownLatch(1);
            enqueue(new Entry(0, null, done));
            try {
                if (!done.await(delayNanos + TimeUnit.SECONDS.toNanos(60), TimeUnit.NANOSECONDS)) {
                    throw new IOException("the delayed bytes were not taken within 60 s");
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new InterruptedIOException("interrupted while flushing the delay line");
            }
            check();
        }

        void close() {
            closed = true;
        }
    }
}
