package org.livemig.transport;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.GatheringByteChannel;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.WritableByteChannel;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.lang.System.Logger.Level;

/**
 * Wraps a {@link MigrationConnection} and injects the faults of a {@link FaultSpec} at exact
 * byte counts: stalls, cuts, a flipped byte, a bandwidth limit. For tests of every layer above
 * the transport and for the command line's fault flags.
 *
 * <p>Bytes are counted per direction from the moment of wrapping. A transfer is split at every
 * byte count where a fault acts, so the fault happens exactly there whatever buffer sizes the
 * caller uses. Writes stay gathering: without a fault point inside a vectored write it goes to
 * the wrapped channel as one call. A flipped byte is written from a copy: the caller's buffer (a
 * view of guest RAM, say) is never modified; on reads the byte is flipped in the caller's buffer.
 *
 * <p>Threads: as the wrapped connection, one reader and one writer; each direction's state is
 * owned by the thread using it, its byte counter is readable from any thread.
 * {@link #shutdown()} from any thread also ends a stall or throttle wait at once.
 */
public final class FaultInjectingConnection implements MigrationConnection {
    private static final System.Logger LOG = System.getLogger(FaultInjectingConnection.class.getName());

    /** Time for stalls and throttling; tests pass a virtual clock. */
    public interface Clock {
        long nanoTime();

        /** Waits {@code nanos}, returning early once {@code wake} is counted down. */
        void park(long nanos, CountDownLatch wake) throws InterruptedException;

        /** The real clock. */
        Clock SYSTEM = new Clock() {
            @Override
            public long nanoTime() {
                return System.nanoTime();
            }

            @Override
            public void park(long nanos, CountDownLatch wake) throws InterruptedException {
                wake.await(nanos, TimeUnit.NANOSECONDS);
            }
        };
    }

    private final MigrationConnection delegate;
    private final FaultSpec spec;
    private final Clock clock;
    private final CountDownLatch shutdown = new CountDownLatch(1);
    /** The message of the cut once one fired; then both directions fail with it. */
    private final AtomicReference<String> cut = new AtomicReference<>();
    /** Points whose stall has fired (each stalls once). */
    private final java.util.Set<String> stalledAt = java.util.concurrent.ConcurrentHashMap.newKeySet();
    private final Flow inFlow;
    private final Flow outFlow;
    private final ReadableByteChannel in;
    private final GatheringByteChannel out;

    private FaultInjectingConnection(MigrationConnection delegate, FaultSpec spec, Clock clock) {
        this.delegate = Objects.requireNonNull(delegate, "delegate");
        this.spec = Objects.requireNonNull(spec, "spec");
        this.clock = Objects.requireNonNull(clock, "clock");
        this.inFlow = new Flow(false);
        this.outFlow = new Flow(true);
        this.in = new In();
        this.out = new Out();
    }

    public static FaultInjectingConnection wrap(MigrationConnection delegate, FaultSpec spec) {
        return new FaultInjectingConnection(delegate, spec, Clock.SYSTEM);
    }

    public static FaultInjectingConnection wrap(MigrationConnection delegate, FaultSpec spec, Clock clock) {
        return new FaultInjectingConnection(delegate, spec, clock);
    }

    /** {@code delegate} itself when {@code spec} is empty, else a wrapper. */
    public static MigrationConnection wrapIfAny(MigrationConnection delegate, FaultSpec spec) {
        return spec.isEmpty() ? delegate : wrap(delegate, spec);
    }

    public FaultSpec spec() {
        return spec;
    }

    /** Bytes read through {@link #in()} so far. Any thread. */
    public long bytesRead() {
        return inFlow.count;
    }

    /** Bytes written through {@link #out()} so far. Any thread. */
    public long bytesWritten() {
        return outFlow.count;
    }

    /**
     * The migration on this connection reached the named point {@code point} (see
     * {@link FaultPoints}): a {@code cut:point} fires now (later IO in either direction fails and
     * the peer sees the stream end), a {@code stall:point} makes the calling thread wait its time
     * once (a {@link #shutdown()} ends the wait). A no-op when no fault names the point.
     *
     * @throws IOException when the point's fault ended the wait through a shutdown or cut the connection
     */
    public void reached(String point) throws IOException {
        for (FaultSpec.Fault f : spec.faults()) {
            switch (f) {
                case FaultSpec.CutAt c when c.point().equals(point) -> {
                    LOG.log(Level.INFO, "fault point " + point + ": injected cut");
                    if (cut.compareAndSet(null, "injected cut at point " + point)) {
                        delegate.shutdown();
                    }
                    throw new IOException(cut.get());
                }
                case FaultSpec.StallAt st when st.point().equals(point) && stalledAt.add(point) -> {
                    // A line a test can wait for: this side is now held at the point.
                    LOG.log(Level.INFO, "fault point " + point + ": injected stall of " + st.duration().toMillis() + " ms");
                    try {
                        clock.park(st.duration().toNanos(), shutdown);
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                        InterruptedIOException ie = new InterruptedIOException("interrupted during an injected stall at " + point);
                        ie.initCause(e);
                        throw ie;
                    }
                    if (shutdown.getCount() == 0) {
                        throw shutdownError();
                    }
                }
                default -> { }
            }
        }
    }

    /** {@link #reached} on {@code c} when it injects faults; nothing for any other connection. */
    public static void reached(MigrationConnection c, String point) throws IOException {
        if (c instanceof FaultInjectingConnection f) {
            f.reached(point);
        }
    }

    /** True once a cut has fired. Any thread. */
    public boolean isCut() {
        return cut.get() != null;
    }

    @Override
    public ReadableByteChannel in() {
        return in;
    }

    @Override
    public WritableByteChannel out() {
        return out;
    }

    @Override
    public void shutdown() {
        shutdown.countDown();
        delegate.shutdown();
    }

    @Override
    public String description() {
        return delegate.description() + " [faults: " + spec + "]";
    }

    @Override
    public String toString() {
        return description();
    }

    @Override
    public void close() throws IOException {
        shutdown.countDown();
        delegate.close();
    }

    private IOException shutdownError() {
        return new IOException("migration connection " + description() + " was shut down");
    }

    /** One direction's faults and byte count. Owned by the thread using that direction. */
    private final class Flow {
        final boolean outgoing;
        final List<FaultSpec.Stall> stalls = new ArrayList<>();
        final List<FaultSpec.Cut> cuts = new ArrayList<>();
        /** Offsets to flip, each removed once passed. */
        final List<Long> flips = new ArrayList<>();
        /** The tightest throttle, or 0. */
        final long bytesPerSecond;
        /** Written by the owning thread, read by any. */
        volatile long count;
        /** Throttle: when the bytes passed so far have been paid for ({@link Clock#nanoTime()}). */
        long releaseAt = Long.MIN_VALUE;
        /** Throttle: the fraction of a nanosecond not yet added to {@link #releaseAt}. */
        double releaseCarry;
        /** Throttle: when the current transfer started. */
        long stepStart;

        Flow(boolean outgoing) {
            this.outgoing = outgoing;
            long bps = 0;
            for (FaultSpec.Fault f : spec.faults()) {
                if (!f.direction().covers(outgoing)) {
                    continue;
                }
                switch (f) {
                    case FaultSpec.Stall s -> stalls.add(s);
                    case FaultSpec.Cut c -> cuts.add(c);
                    case FaultSpec.Flip fl -> flips.add(fl.at());
                    case FaultSpec.Throttle t -> bps = bps == 0 ? t.bytesPerSecond() : Math.min(bps, t.bytesPerSecond());
                    case FaultSpec.StallAt st -> { } // acted on in reached()
                    case FaultSpec.CutAt c -> { }
                }
            }
            this.bytesPerSecond = bps;
        }

        /**
         * Acts on the faults due at the current count before {@code want} (&gt; 0) more bytes
         * pass, and returns how many may pass before the next fault point (at least 1).
         */
        long before(long want) throws IOException {
            String cutMessage = cut.get();
            if (cutMessage != null) {
                throw new IOException(cutMessage);
            }
            if (shutdown.getCount() == 0) {
                throw shutdownError();
            }
            long c = count;
            for (int i = 0; i < stalls.size(); i++) {
                FaultSpec.Stall s = stalls.get(i);
                if (s.after() == c) {
                    stalls.remove(i--);
                    park(s.duration().toNanos());
                }
            }
            for (FaultSpec.Cut k : cuts) {
                if (k.after() <= c) {
                    String message = "injected cut after " + k.after() + " bytes";
                    if (cut.compareAndSet(null, message)) {
                        delegate.shutdown();
                    }
                    throw new IOException(cut.get());
                }
            }
            long limit = want;
            for (FaultSpec.Stall s : stalls) {
                if (s.after() > c) {
                    limit = Math.min(limit, s.after() - c);
                }
            }
            for (FaultSpec.Cut k : cuts) {
                limit = Math.min(limit, k.after() - c);
            }
            if (outgoing) {
                // a write stops before a flip point; the flipped byte then goes alone (flipDue)
                for (long at : flips) {
                    if (at > c) {
                        limit = Math.min(limit, at - c);
                    } else if (at == c) {
                        limit = 1;
                    }
                }
            }
            if (bytesPerSecond > 0) {
                limit = Math.min(limit, Math.max(1, bytesPerSecond / 10));
            }
            return limit;
        }

        /** For writes: whether the next byte is one to flip. */
        boolean flipDue() {
            return flips.contains(count);
        }

        /** Records {@code n} bytes passed (and, for reads, flips any in {@code buf} from {@code start}). */
        void after(long n, ByteBuffer readBuffer, int start) throws IOException {
            long c = count;
            if (n <= 0) {
                return;
            }
            for (int i = 0; i < flips.size(); i++) {
                long at = flips.get(i);
                if (at >= c && at < c + n) {
                    if (readBuffer != null) {
                        int idx = start + (int) (at - c);
                        readBuffer.put(idx, (byte) (readBuffer.get(idx) ^ 0xFF));
                    }
                    flips.remove(i--);
                }
            }
            count = c + n;
            if (bytesPerSecond > 0) {
                // a leaky bucket: these bytes occupy the link for n / bps seconds from when it
                // was last free (idle time earns no credit for a later burst)
                double nanos = (double) n * 1e9 / bytesPerSecond + releaseCarry;
                long whole = (long) nanos;
                releaseCarry = nanos - whole;
                releaseAt = Math.max(releaseAt, stepStart) + whole;
                park(releaseAt - clock.nanoTime());
            }
        }

        /** Notes the start of a transfer, for the throttle. */
        void startClock() {
            if (bytesPerSecond > 0) {
                stepStart = clock.nanoTime();
            }
        }

        private void park(long nanos) throws IOException {
            if (nanos <= 0) {
                return;
            }
            try {
                clock.park(nanos, shutdown);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                InterruptedIOException ie = new InterruptedIOException("interrupted during an injected wait");
                ie.initCause(e);
                throw ie;
            }
            if (shutdown.getCount() == 0) {
                throw shutdownError();
            }
        }
    }

    private final class In implements ReadableByteChannel {
        @Override
        public int read(ByteBuffer dst) throws IOException {
            if (!dst.hasRemaining()) {
                return 0;
            }
            Flow f = inFlow;
            long limit = f.before(dst.remaining());
            f.startClock();
            int start = dst.position();
            int n;
            if (limit >= dst.remaining()) {
                n = delegate.in().read(dst);
            } else {
                ByteBuffer view = dst.slice(start, (int) limit);
                n = delegate.in().read(view);
                if (n > 0) {
                    dst.position(start + n);
                }
            }
            if (n > 0) {
                f.after(n, dst, start);
            }
            return n;
        }

        @Override
        public boolean isOpen() {
            return delegate.in().isOpen();
        }

        @Override
        public void close() throws IOException {
            FaultInjectingConnection.this.close();
        }
    }

    private final class Out implements GatheringByteChannel {
        private final ByteBuffer one = ByteBuffer.allocate(1);

        @Override
        public int write(ByteBuffer src) throws IOException {
            return (int) write(new ByteBuffer[] {src}, 0, 1);
        }

        @Override
        public long write(ByteBuffer[] srcs) throws IOException {
            return write(srcs, 0, srcs.length);
        }

        @Override
        public long write(ByteBuffer[] srcs, int offset, int length) throws IOException {
            Objects.checkFromIndexSize(offset, length, srcs.length);
            long total = 0;
            while (true) {
                long remaining = 0;
                for (int i = offset; i < offset + length; i++) {
                    remaining += srcs[i].remaining();
                }
                if (remaining == 0) {
                    return total;
                }
                total += step(srcs, offset, length, remaining);
            }
        }

        /** Writes up to the next fault point; returns the bytes written. */
        private long step(ByteBuffer[] srcs, int offset, int length, long remaining) throws IOException {
            Flow f = outFlow;
            long limit = f.before(remaining);
            f.startClock();
            WritableByteChannel target = delegate.out();
            long n;
            if (f.flipDue()) {
                ByteBuffer src = first(srcs, offset, length);
                one.clear();
                one.put(0, (byte) (src.get(src.position()) ^ 0xFF));
                writeFully(target, one);
                src.position(src.position() + 1);
                n = 1;
            } else if (limit >= remaining && target instanceof GatheringByteChannel g) {
                n = g.write(srcs, offset, length);
            } else {
                n = 0;
                for (int i = offset; i < offset + length && n < limit; i++) {
                    ByteBuffer src = srcs[i];
                    int take = (int) Math.min(src.remaining(), limit - n);
                    if (take == 0) {
                        continue;
                    }
                    ByteBuffer part = src.slice(src.position(), take);
                    writeFully(target, part);
                    src.position(src.position() + take);
                    n += take;
                }
            }
            f.after(n, null, 0);
            return n;
        }

        private ByteBuffer first(ByteBuffer[] srcs, int offset, int length) {
            for (int i = offset; i < offset + length; i++) {
                if (srcs[i].hasRemaining()) {
                    return srcs[i];
                }
            }
            throw new IllegalStateException("no bytes to write");
        }

        private void writeFully(WritableByteChannel target, ByteBuffer b) throws IOException {
            while (b.hasRemaining()) {
                target.write(b);
            }
        }

        @Override
        public boolean isOpen() {
            return delegate.out().isOpen();
        }

        @Override
        public void close() throws IOException {
            FaultInjectingConnection.this.close();
        }
    }
}
