package org.livemig.transport;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.GatheringByteChannel;
import java.nio.channels.ReadableByteChannel;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.livemig.stream.RamPageRecord;

/**
 * What every transport must do, one subclass per transport. Streaming transports (tcp, unix)
 * connect and accept at once and carry both directions; store-and-forward ones (file, exec
 * writing to a file and reading it back) are written completely, then read.
 */
abstract class TransportContractTest {
    static final Duration CONNECT_TIMEOUT = Duration.ofSeconds(10);

    @TempDir
    Path dir;

    private final List<AutoCloseable> toClose = new ArrayList<>();

    /** The address the destination listens on. */
    abstract MigrationAddress listenAddress(Path dir);

    /** The address the source connects to, given the listener's bound address. */
    abstract MigrationAddress sourceAddress(Path dir, MigrationAddress bound);

    /** tcp and unix: the source connects while the destination accepts, and both directions work. */
    abstract boolean streaming();

    /** A connection whose {@code in()} will block (no data coming), or null if the transport has none. */
    MigrationConnection idleReader() throws Exception {
        Endpoints e = openStreaming();
        return e.destination();
    }

    /** A connection whose {@code out()} will block once buffers fill (nobody reads), or null. */
    MigrationConnection stuckWriter() throws Exception {
        Endpoints e = openStreaming();
        return e.source();
    }

    record Endpoints(MigrationConnection source, MigrationConnection destination) {}

    <T extends AutoCloseable> T closeLater(T c) {
        toClose.add(c);
        return c;
    }

    @AfterEach
    void closeAll() {
        for (AutoCloseable c : toClose.reversed()) {
            try {
                c.close();
            } catch (Exception e) {
                // the test already asserted what it needed
            }
        }
    }

    /** A connected pair for a streaming transport. */
    Endpoints openStreaming() throws Exception {
        assumeTrue(streaming());
        MigrationListener l = closeLater(Transports.listen(listenAddress(dir)));
        var accepted = TestThreads.start("test-accept", l::accept);
        MigrationConnection src = closeLater(Transports.connect(sourceAddress(dir, l.boundAddress()), CONNECT_TIMEOUT));
        MigrationConnection dst = closeLater(accepted.awaitResult());
        return new Endpoints(src, dst);
    }

    static byte[] randomBytes(long seed, int n) {
        byte[] b = new byte[n];
        new Random(seed).nextBytes(b);
        return b;
    }

    /** Writes {@code data} in gathering writes of mixed heap and direct buffers of random sizes. */
    static void writeGathering(GatheringByteChannel out, byte[] data, long seed) throws IOException {
        Random rnd = new Random(seed);
        int pos = 0;
        while (pos < data.length) {
            int count = 1 + rnd.nextInt(8);
            ByteBuffer[] bufs = new ByteBuffer[count];
            long total = 0;
            for (int i = 0; i < count; i++) {
                int len = Math.min(data.length - pos, rnd.nextInt(4) == 0 ? rnd.nextInt(16) : rnd.nextInt(96 * 1024));
                ByteBuffer b = rnd.nextBoolean() ? ByteBuffer.allocateDirect(len) : ByteBuffer.allocate(len);
                b.put(data, pos, len).flip();
                bufs[i] = b;
                pos += len;
                total += len;
            }
            long written = 0;
            while (written < total) {
                written += out.write(bufs);
            }
        }
    }

    /** Reads to end of stream with random buffer sizes. */
    static byte[] readAll(ReadableByteChannel in, long seed) throws IOException {
        Random rnd = new Random(seed);
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        while (true) {
            int len = 1 + rnd.nextInt(128 * 1024);
            ByteBuffer b = rnd.nextBoolean() ? ByteBuffer.allocateDirect(len) : ByteBuffer.allocate(len);
            int n = in.read(b);
            if (n < 0) {
                return bytes.toByteArray();
            }
            b.flip();
            byte[] chunk = new byte[b.remaining()];
            b.get(chunk);
            bytes.write(chunk);
        }
    }

    @Test
    void carriesMebibytesIntactAndInOrder() throws Exception {
        long seed = 0xC0FFEE + getClass().getSimpleName().hashCode();
        byte[] data = randomBytes(seed, 5 * 1024 * 1024 + 123);
        byte[] received;
        if (streaming()) {
            Endpoints e = openStreaming();
            var reader = TestThreads.start("test-reader", () -> readAll(e.destination().in(), seed));
            assertThat(e.source().out()).isInstanceOf(GatheringByteChannel.class);
            writeGathering((GatheringByteChannel) e.source().out(), data, seed);
            e.source().close();
            received = reader.awaitResult();
        } else {
            MigrationListener l = closeLater(preparedListener());
            try (MigrationConnection src = Transports.connect(sourceAddress(dir, l.boundAddress()), CONNECT_TIMEOUT)) {
                assertThat(src.out()).isInstanceOf(GatheringByteChannel.class);
                writeGathering((GatheringByteChannel) src.out(), data, seed);
            }
            try (MigrationConnection dst = l.accept()) {
                received = readAll(dst.in(), seed);
            }
        }
        assertThat(received.length).as("seed %d", seed).isEqualTo(data.length);
        assertThat(received).as("seed %d", seed).isEqualTo(data);
    }

    /** For store-and-forward transports, a listener made after the data exists (file: checks at listen). */
    MigrationListener preparedListener() throws IOException {
        return Transports.listen(listenAddress(dir));
    }

    @Test
    void migrationFileRoundTripsPagesWithVectoredWrites() throws Exception {
        int pages = 256;
        long seed = 0xFA6E5;
        try (var arena = java.lang.foreign.Arena.ofShared()) {
            var ram = arena.allocate(pages * 4096L, 4096);
            ram.asByteBuffer().put(randomBytes(seed, pages * 4096));
            var loaded = arena.allocate(pages * 4096L, 4096);
            MigrationConnection src;
            MigrationConnection dst;
            if (streaming()) {
                Endpoints e = openStreaming();
                src = e.source();
                dst = e.destination();
            } else {
                MigrationListener l = closeLater(preparedListener());
                src = Transports.connect(sourceAddress(dir, l.boundAddress()), CONNECT_TIMEOUT);
                dst = null;
            }
            var writer = TestThreads.start("test-mf-writer", () -> {
                try (var f = org.livemig.stream.MigrationFile.forWriting(src.out())) {
                    for (int i = 0; i < pages; i++) {
                        f.putBe64(i * 4096L | org.livemig.stream.RamPageRecord.FLAG_PAGE);
                        f.putRam(ram, i * 4096L, 4096);
                    }
                }
                return null;
            });
            if (!streaming()) {
                writer.awaitResult();
                dst = closeLater(Transports.listen(listenAddress(dir))).accept();
            }
            var f = org.livemig.stream.MigrationFile.forReading(dst.in());
            for (int i = 0; i < pages; i++) {
                assertThat(f.getBe64()).isEqualTo(i * 4096L | org.livemig.stream.RamPageRecord.FLAG_PAGE);
                f.readInto(loaded.asSlice(i * 4096L, 4096));
            }
            assertThat(f.atEof()).isTrue();
            writer.awaitResult();
            dst.close();
            assertThat(loaded.mismatch(ram)).isEqualTo(-1L);
        }
    }

    @Test
    void bothDirectionsCarryBytesAtOnce() throws Exception {
        Endpoints e = openStreaming();
        byte[] forth = randomBytes(1, 3 * 1024 * 1024);
        byte[] back = randomBytes(2, 3 * 1024 * 1024);
        var fwdReader = TestThreads.start("test-fwd-reader", () -> readAll(e.destination().in(), 3));
        var backReader = TestThreads.start("test-back-reader", () -> readAll(e.source().in(), 4));
        var backWriter = TestThreads.start("test-back-writer", () -> {
            writeGathering((GatheringByteChannel) e.destination().out(), back, 5);
            ((java.nio.channels.SocketChannel) e.destination().out()).shutdownOutput();
            return null;
        });
        writeGathering((GatheringByteChannel) e.source().out(), forth, 6);
        ((java.nio.channels.SocketChannel) e.source().out()).shutdownOutput();
        backWriter.awaitResult();
        assertThat(fwdReader.awaitResult()).isEqualTo(forth);
        assertThat(backReader.awaitResult()).isEqualTo(back);
    }

    @Test
    void shutdownUnblocksABlockedReader() throws Exception {
        MigrationConnection c = idleReader();
        assumeTrue(c != null, "no blocking reader for this transport");
        closeLater(c);
        var reader = TestThreads.start("test-blocked-reader", () -> c.in().read(ByteBuffer.allocate(4096)));
        reader.awaitInNative();
        c.shutdown();
        Throwable t = reader.awaitFailure();
        assertThat(t).isInstanceOf(IOException.class).hasMessageContaining("was shut down");
        // idempotent, and reads keep failing rather than reporting a clean end of stream
        c.shutdown();
        assertThatThrownBy(() -> c.in().read(ByteBuffer.allocate(1)))
                .isInstanceOf(IOException.class).hasMessageContaining("was shut down");
    }

    @Test
    void shutdownUnblocksABlockedWriter() throws Exception {
        MigrationConnection c = stuckWriter();
        assumeTrue(c != null, "no blocking writer for this transport");
        closeLater(c);
        long limit = 256L * 1024 * 1024;
        java.util.concurrent.atomic.AtomicLong written = new java.util.concurrent.atomic.AtomicLong();
        var writer = TestThreads.start("test-blocked-writer", () -> {
            ByteBuffer b = ByteBuffer.allocateDirect(256 * 1024);
            while (written.get() < limit) {
                b.clear();
                written.addAndGet(c.out().write(b));
            }
            return written.get();
        });
        // nobody reads: the writer fills the socket/pipe buffers and then blocks in the kernel
        writer.awaitInNative();
        c.shutdown();
        Throwable t = writer.awaitFailure();
        assertThat(t).as("writer ended after %d bytes", written.get()).isInstanceOf(IOException.class);
        assertThat(written.get()).isLessThan(limit);
    }

    @Test
    void closeIsIdempotentAndShutdownAfterCloseIsHarmless() throws Exception {
        MigrationConnection c;
        if (streaming()) {
            c = openStreaming().source();
        } else {
            MigrationListener l = closeLater(preparedListener());
            c = Transports.connect(sourceAddress(dir, l.boundAddress()), CONNECT_TIMEOUT);
        }
        assertThat(c.description()).isNotBlank();
        c.close();
        c.close();
        c.shutdown();
        c.shutdown();
    }

    @Test
    void closingTheListenerUnblocksAccept() throws Exception {
        assumeTrue(streaming());
        MigrationListener l = Transports.listen(listenAddress(dir));
        var acceptor = TestThreads.start("test-acceptor", l::accept);
        acceptor.awaitInNative();
        l.close();
        Throwable t = acceptor.awaitFailure();
        assertThat(t).isInstanceOf(IOException.class).hasMessageContaining("closed");
        assertThatThrownBy(l::accept).isInstanceOf(IOException.class).hasMessageContaining("is closed");
        l.close();
    }
}
