package org.livemig.migration;

import java.io.IOException;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.QemuStream;
import org.livemig.stream.StreamFormatException;

/**
 * Thread {@code mig/src/rp_thr}: reads the return path on the source (QEMU's
 * source_return_path_thread). Handles PONG and SHUT; any other message is an error here.
 */
final class ReturnPathReader implements Runnable {
    private static final int MAX_MESSAGE = 512;

    private final MigrationFile in;
    private final CountDownLatch shut = new CountDownLatch(1);
    private final AtomicLong lastPong = new AtomicLong(-1);
    private volatile long pingSentNanos;
    private volatile long pongRoundTripNanos = -1;
    private volatile int shutStatus = -1;
    private volatile IOException error;

    ReturnPathReader(MigrationFile in) {
        this.in = in;
    }

    void pingSent() {
        pingSentNanos = System.nanoTime();
    }

    @Override
    public void run() {
        try {
            while (true) {
                long at = in.position();
                int type = in.getBe16();
                int len = in.getBe16();
                if (len > MAX_MESSAGE) {
                    throw new StreamFormatException("return-path message " + type + " too long: " + len, at);
                }
                switch (type) {
                    case QemuStream.RP_PONG -> {
                        expect(len, 4, "PONG", at);
                        lastPong.set(in.getBe32() & 0xFFFFFFFFL);
                        if (pingSentNanos != 0) {
                            pongRoundTripNanos = System.nanoTime() - pingSentNanos;
                        }
                    }
                    case QemuStream.RP_SHUT -> {
                        expect(len, 4, "SHUT", at);
                        shutStatus = in.getBe32();
                        shut.countDown();
                        return;
                    }
                    default -> throw new StreamFormatException("unexpected return-path message type " + type
                            + " (length " + len + ")", at);
                }
            }
        } catch (IOException e) {
            error = e;
        } finally {
            shut.countDown();
        }
    }

    private static void expect(int len, int want, String what, long at) throws StreamFormatException {
        if (len != want) {
            throw new StreamFormatException("return-path " + what + " has length " + len + ", expected " + want, at);
        }
    }

    /** Waits for SHUT; returns its status, or throws when the return path failed or timed out. */
    int awaitShut(long timeoutMillis) throws IOException {
        try {
            if (!shut.await(timeoutMillis, TimeUnit.MILLISECONDS)) {
                throw new IOException("destination did not confirm the load within " + timeoutMillis + " ms");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted waiting for the destination", e);
        }
        if (shutStatus < 0 && error != null) {
            throw new IOException("return path failed: " + error.getMessage(), error);
        }
        if (shutStatus < 0) {
            throw new IOException("return path closed without SHUT");
        }
        return shutStatus;
    }

    long lastPong() {
        return lastPong.get();
    }

    long pongRoundTripNanos() {
        return pongRoundTripNanos;
    }
}
