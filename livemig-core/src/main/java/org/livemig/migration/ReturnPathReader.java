package org.livemig.migration;

import java.io.IOException;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import org.livemig.memory.RamBlock;
import org.livemig.stream.LastRequestedBlock;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.ReturnPathCodec;
import org.livemig.stream.ReturnPathMessage;
import org.livemig.stream.StreamFormatException;

/**
 * Thread {@code mig/src/rp_thr}: reads the return path on the source (QEMU's
 * source_return_path_thread): PONG, SHUT, SWITCHOVER_ACK, and in postcopy the page requests, which it checks
 * and queues for {@code mig/src/main}. A request for an unknown block or outside a block is
 * refused: the return path fails with an error naming it, and the migration with it.
 * In postcopy recovery it also takes the destination's RECV_BITMAP answers and its RESUME_ACK.
 *
 * <p>One reader per connection: a recovered postcopy starts a new one on the new connection.
 */
public final class ReturnPathReader implements Runnable {
    /** A checked page request: one page of one block. */
    public record PageRequest(RamBlock block, long page, long requestedAtNanos) {}

    private final MigrationFile in;
    private final RamSaver saver;
    private final CountDownLatch shut = new CountDownLatch(1);
    private final ConcurrentHashMap<Integer, Long> pongs = new ConcurrentHashMap<>();
    private final ConcurrentHashMap<Integer, Long> pingsSent = new ConcurrentHashMap<>();
    private final ConcurrentLinkedQueue<PageRequest> requests = new ConcurrentLinkedQueue<>();
    private final LastRequestedBlock lastBlock = new LastRequestedBlock();
    private volatile Thread consumer;
    /** postcopy-preempt: sends requested pages from this thread, at once (QEMU 7.2's preempt-full). */
    private volatile RequestSender direct;

    /** Sends one requested page on the preempt channel; false when it cannot (then it is queued). */
    public interface RequestSender {
        boolean send(RamBlock block, long page) throws IOException;
    }
    private volatile long pongRoundTripNanos = -1;
    private volatile int shutStatus = -1;
    private volatile IOException error;
    /** Set by {@link #abortShutWait}: a failure on this side that ends the wait for SHUT. */
    private volatile IOException shutWaitAborted;
    /** The error was a page request the source refused (not a network fault). */
    private volatile boolean refused;
    /** Postcopy recovery: the destination's received bitmaps, by block, and its RESUME_ACK. */
    private final ConcurrentHashMap<String, long[]> recvBitmaps = new ConcurrentHashMap<>();
    private volatile boolean resumeAcked;
    /** switchover-ack: the destination's SWITCHOVER_ACK arrived. */
    private volatile boolean switchoverAcked;

    public ReturnPathReader(MigrationFile in, RamSaver saver) {
        this.in = in;
        this.saver = saver;
    }

    /** Records that PING {@code value} was just sent (for the round-trip time). */
    public void pingSent(int value) {
        pingsSent.put(value, System.nanoTime());
    }

    /** postcopy-preempt: from now on requested pages go out from this thread through {@code s}. */
    public void sendDirectly(RequestSender s) {
        direct = s;
    }

    /** The thread to wake when a page request arrives. */
    public void setConsumer(Thread t) {
        consumer = t;
    }

    @Override
    public void run() {
        try {
            while (true) {
                long at = in.position();
                ReturnPathMessage m = ReturnPathCodec.read(in, saver.maxBitmapBytes());
                switch (m) {
                    case ReturnPathMessage.Pong p -> {
                        long now = System.nanoTime();
                        pongs.put(p.value(), now);
                        Long sent = pingsSent.get(p.value());
                        if (sent != null) {
                            pongRoundTripNanos = now - sent;
                        }
                    }
                    case ReturnPathMessage.Shut s -> {
                        shutStatus = s.status();
                        shut.countDown();
                        return;
                    }
                    case ReturnPathMessage.PageRequest r -> queue(r, at);
                    case ReturnPathMessage.RecvBitmap b -> {
                        recvBitmaps.put(b.block(), b.words());
                        wakeWaiters();
                    }
                    case ReturnPathMessage.ResumeAck a -> {
                        resumeAcked = true;
                        wakeWaiters();
                    }
                    case ReturnPathMessage.SwitchoverAck a -> {
                        switchoverAcked = true;
                        wakeWaiters();
                        Thread c = consumer;
                        if (c != null) {
                            LockSupport.unpark(c);
                        }
                    }
                    default -> throw new StreamFormatException("unexpected return-path message " + m, at);
                }
            }
        } catch (IOException e) {
            error = e;
        } finally {
            shut.countDown();
            wakeWaiters();
            Thread c = consumer;
            if (c != null) {
                LockSupport.unpark(c);
            }
        }
    }

    private void queue(ReturnPathMessage.PageRequest r, long at) throws IOException {
        String name = lastBlock.blockOf(r, at);
        long start = r.start();
        long length = r.length();
        RamBlock b = saver.block(name);
        if (b == null) {
            refused = true;
            throw new StreamFormatException("refused page request for unknown RAM block '" + name + "'", at);
        }
        if (length == 0 || !r.isWithin(b.usedLength(), RamBlock.PAGE_SIZE)) {
            refused = true;
            throw new StreamFormatException(String.format(
                    "refused page request for 0x%x+0x%x outside RAM block '%s' of size 0x%x (or not page-aligned)",
                    start, length, name, b.usedLength()), at);
        }
        long now = System.nanoTime();
        RequestSender d = direct;
        boolean queued = false;
        for (long off = start; off < start + length; off += RamBlock.PAGE_SIZE) {
            if (d == null || !d.send(b, off >>> RamBlock.PAGE_BITS)) {
                requests.add(new PageRequest(b, off >>> RamBlock.PAGE_BITS, now));
                queued = true;
            }
        }
        if (!queued) {
            return;
        }
        Thread c = consumer;
        if (c != null) {
            LockSupport.unpark(c);
        }
    }

    /** The next queued page request, or null. */
    public PageRequest pollRequest() {
        return requests.poll();
    }

    /** True when the return path failed because the source refused a page request. */
    public boolean refusedRequest() {
        return refused;
    }

    /** The return path's error, or null while it is healthy. */
    public IOException error() {
        return error;
    }

    /**
     * Ends a current or later {@link #awaitShut} with {@code e} unless SHUT has arrived: something
     * on this side that the destination needs failed (a multifd channel's last packets). Any thread.
     */
    public void abortShutWait(IOException e) {
        shutWaitAborted = e;
        shut.countDown();
    }

    /** Waits for SHUT; returns its status, or throws when the return path failed or timed out. */
    public int awaitShut(long timeoutMillis) throws IOException {
        try {
            if (!shut.await(timeoutMillis, TimeUnit.MILLISECONDS)) {
                throw new IOException("destination did not confirm the load within " + timeoutMillis + " ms");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted waiting for the destination", e);
        }
        IOException aborted = shutWaitAborted;
        if (shutStatus < 0 && aborted != null) {
            throw aborted;
        }
        if (shutStatus < 0 && error != null) {
            throw new IOException("return path failed: " + error.getMessage(), error);
        }
        if (shutStatus < 0) {
            throw new IOException("return path closed without SHUT");
        }
        return shutStatus;
    }

    /** Waits until PONG {@code value} arrives; returns when it arrived (nanoTime), or -1 on timeout or failure. */
    public long awaitPong(int value, long timeoutMillis) {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMillis);
        while (System.nanoTime() < deadline && error == null && shut.getCount() > 0) {
            Long t = pongs.get(value);
            if (t != null) {
                return t;
            }
            LockSupport.parkNanos(100_000);
        }
        Long t = pongs.get(value);
        return t == null ? -1 : t;
    }

    private synchronized void wakeWaiters() {
        notifyAll();
    }

    /**
     * Postcopy recovery: waits for the destination's received bitmap of {@code block} and
     * returns its words (bit i = page i received). Throws when the path fails or time runs out.
     */
    public long[] awaitRecvBitmap(String block, long timeoutMillis) throws IOException, InterruptedException {
        long[] w = awaitControl(() -> recvBitmaps.remove(block), timeoutMillis, "RECV_BITMAP for block '" + block + "'");
        return w;
    }

    /** Whether SWITCHOVER_ACK has arrived (switchover-ack). */
    public boolean switchoverAcked() {
        return switchoverAcked;
    }

    /**
     * Waits up to {@code timeoutMillis} for SWITCHOVER_ACK; returns whether it has arrived. Ends
     * early when the return path fails or ends (then the caller's next check finds out).
     */
    public boolean awaitSwitchoverAck(long timeoutMillis) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMillis);
        synchronized (this) {
            while (!switchoverAcked && error == null && shut.getCount() > 0) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    break;
                }
                TimeUnit.NANOSECONDS.timedWait(this, left);
            }
        }
        return switchoverAcked;
    }

    /** Postcopy recovery: waits for RESUME_ACK. */
    public void awaitResumeAck(long timeoutMillis) throws IOException, InterruptedException {
        awaitControl(() -> resumeAcked ? Boolean.TRUE : null, timeoutMillis, "RESUME_ACK");
    }

    private <T> T awaitControl(java.util.function.Supplier<T> poll, long timeoutMillis, String what)
            throws IOException, InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMillis);
        synchronized (this) {
            while (true) {
                T v = poll.get();
                if (v != null) {
                    return v;
                }
                if (error != null) {
                    throw new IOException("return path failed waiting for " + what + ": " + error.getMessage(), error);
                }
                if (shut.getCount() == 0) {
                    throw new IOException("return path ended (SHUT " + shutStatus + ") waiting for " + what);
                }
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    throw new IOException("no " + what + " from the destination within " + timeoutMillis + " ms");
                }
                TimeUnit.NANOSECONDS.timedWait(this, left);
            }
        }
    }

    public long pongRoundTripNanos() {
        return pongRoundTripNanos;
    }
}
