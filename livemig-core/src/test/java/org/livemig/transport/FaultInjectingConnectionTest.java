package org.livemig.transport;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.GatheringByteChannel;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.function.LongSupplier;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class FaultInjectingConnectionTest {
    private static final int SIZE = 400_000;

    /** Virtual time: a park advances it at once and is recorded with the byte count then. */
    static final class FakeClock implements FaultInjectingConnection.Clock {
        long now = 5_000_000_000L;
        final List<long[]> parks = new ArrayList<>();
        LongSupplier probe = () -> -1;

        @Override
        public long nanoTime() {
            return now;
        }

        @Override
        public void park(long nanos, CountDownLatch wake) {
            parks.add(new long[] {nanos, probe.getAsLong()});
            now += nanos;
        }
    }

    private static byte[] data(long seed) {
        return TransportContractTest.randomBytes(seed, SIZE);
    }

    /** Reads through {@code c} until it fails or ends; returns the bytes and the failure. */
    private record ReadResult(byte[] bytes, IOException failure) {}

    private static ReadResult readUntilFailure(MigrationConnection c, long seed) {
        Random rnd = new Random(seed);
        ByteArrayOutputStream got = new ByteArrayOutputStream();
        try {
            while (true) {
                ByteBuffer b = rnd.nextBoolean() ? ByteBuffer.allocate(1 + rnd.nextInt(70_000))
                        : ByteBuffer.allocateDirect(1 + rnd.nextInt(70_000));
                int n = c.in().read(b);
                if (n < 0) {
                    return new ReadResult(got.toByteArray(), null);
                }
                b.flip();
                byte[] chunk = new byte[n];
                b.get(chunk);
                got.write(chunk, 0, n);
            }
        } catch (IOException e) {
            return new ReadResult(got.toByteArray(), e);
        }
    }

    @ParameterizedTest
    @ValueSource(longs = {1, 2, 3, 4, 5, 6, 7, 8})
    void cutOnWritesPassesExactlyTheCountThenFailsBothDirections(long seed) {
        Random rnd = new Random(seed);
        long n = seed == 1 ? 0 : seed == 2 ? SIZE - 1 : rnd.nextInt(SIZE);
        byte[] data = data(seed);
        MemoryConnection mem = new MemoryConnection(data, 1000);
        var c = FaultInjectingConnection.wrap(mem, FaultSpec.builder().cut(FaultSpec.Direction.OUT, n).build());
        assertThatThrownBy(() -> TransportContractTest.writeGathering((GatheringByteChannel) c.out(), data, seed))
                .as("seed %d", seed)
                .isInstanceOf(IOException.class).hasMessage("injected cut after " + n + " bytes");
        assertThat(mem.written()).as("seed %d", seed).isEqualTo(Arrays.copyOf(data, (int) n));
        assertThat(c.bytesWritten()).isEqualTo(n);
        assertThat(c.isCut()).isTrue();
        assertThat(mem.shutdowns).isEqualTo(1);
        assertThatThrownBy(() -> c.out().write(ByteBuffer.allocate(1))).hasMessage("injected cut after " + n + " bytes");
        assertThatThrownBy(() -> c.in().read(ByteBuffer.allocate(1))).hasMessage("injected cut after " + n + " bytes");
        assertThat(c.bytesRead()).isZero();
    }

    @ParameterizedTest
    @ValueSource(longs = {11, 12, 13, 14, 15})
    void cutOnReadsDeliversExactlyTheCount(long seed) {
        Random rnd = new Random(seed);
        long n = seed == 11 ? 0 : rnd.nextInt(SIZE);
        byte[] data = data(seed);
        var c = FaultInjectingConnection.wrap(new MemoryConnection(data, 1 + rnd.nextInt(50_000)),
                FaultSpec.parse("cut:after=" + n + ",dir=in"));
        ReadResult r = readUntilFailure(c, seed);
        assertThat(r.failure()).as("seed %d", seed).hasMessage("injected cut after " + n + " bytes");
        assertThat(r.bytes()).as("seed %d", seed).isEqualTo(Arrays.copyOf(data, (int) n));
        assertThat(c.bytesRead()).isEqualTo(n);
    }

    @Test
    void aCutInBothDirectionsFiresInTheFirstToGetThere() throws Exception {
        byte[] data = data(21);
        MemoryConnection mem = new MemoryConnection(data, 100);
        var c = FaultInjectingConnection.wrap(mem, FaultSpec.parse("cut:after=250"));
        c.out().write(ByteBuffer.allocate(200));
        ReadResult r = readUntilFailure(c, 21);
        assertThat(r.bytes()).hasSize(250);
        assertThat(r.failure()).hasMessage("injected cut after 250 bytes");
        assertThatThrownBy(() -> c.out().write(ByteBuffer.allocate(1))).hasMessage("injected cut after 250 bytes");
        assertThat(mem.written()).hasSize(200);
    }

    @ParameterizedTest
    @ValueSource(longs = {31, 32, 33, 34, 35, 36})
    void flipOnWritesChangesExactlyThatByteAndNotTheCallersBuffer(long seed) throws Exception {
        Random rnd = new Random(seed);
        long at = seed == 31 ? 0 : seed == 32 ? SIZE - 1 : rnd.nextInt(SIZE);
        byte[] data = data(seed);
        MemoryConnection mem = new MemoryConnection(new byte[0], 1);
        var c = FaultInjectingConnection.wrap(mem, FaultSpec.builder().flip(FaultSpec.Direction.OUT, at).build());
        TransportContractTest.writeGathering((GatheringByteChannel) c.out(), data, seed);
        byte[] expected = data.clone();
        expected[(int) at] ^= (byte) 0xFF;
        assertThat(mem.written()).as("seed %d at %d", seed, at).isEqualTo(expected);
        assertThat(c.bytesWritten()).isEqualTo(SIZE);

        // the caller's bytes (guest RAM, say) stay as they were
        byte[] page = data.clone();
        MemoryConnection mem2 = new MemoryConnection(new byte[0], 1);
        var c2 = FaultInjectingConnection.wrap(mem2, FaultSpec.parse("flip:at=" + at));
        ByteBuffer whole = ByteBuffer.wrap(page);
        assertThat(c2.out().write(whole)).isEqualTo(SIZE);
        assertThat(page).isEqualTo(data);
        assertThat(mem2.written()).isEqualTo(expected);
    }

    @ParameterizedTest
    @ValueSource(longs = {41, 42, 43, 44})
    void flipOnReadsChangesExactlyThatByte(long seed) {
        Random rnd = new Random(seed);
        long at = seed == 41 ? 0 : rnd.nextInt(SIZE);
        byte[] data = data(seed);
        var c = FaultInjectingConnection.wrap(new MemoryConnection(data, 1 + rnd.nextInt(9000)),
                FaultSpec.parse("flip:at=" + at + ",dir=in"));
        ReadResult r = readUntilFailure(c, seed);
        assertThat(r.failure()).isNull();
        byte[] expected = data.clone();
        expected[(int) at] ^= (byte) 0xFF;
        assertThat(r.bytes()).as("seed %d at %d", seed, at).isEqualTo(expected);
    }

    @Test
    void aFlipPastTheEndChangesNothing() throws Exception {
        byte[] data = data(51);
        MemoryConnection mem = new MemoryConnection(data, 4096);
        var c = FaultInjectingConnection.wrap(mem, FaultSpec.parse("flip:at=" + SIZE));
        TransportContractTest.writeGathering((GatheringByteChannel) c.out(), data, 51);
        assertThat(mem.written()).isEqualTo(data);
        assertThat(readUntilFailure(c, 51).bytes()).isEqualTo(data);
    }

    @ParameterizedTest
    @ValueSource(longs = {61, 62, 63})
    void stallWaitsOnceAtExactlyTheCountInEachDirection(long seed) throws Exception {
        Random rnd = new Random(seed);
        long after = seed == 61 ? 0 : rnd.nextInt(SIZE);
        byte[] data = data(seed);
        FakeClock clock = new FakeClock();
        MemoryConnection mem = new MemoryConnection(data, 1 + rnd.nextInt(30_000));
        var c = FaultInjectingConnection.wrap(mem, FaultSpec.parse("stall:ms=2000,after=" + after), clock);

        clock.probe = c::bytesWritten;
        TransportContractTest.writeGathering((GatheringByteChannel) c.out(), data, seed);
        assertThat(clock.parks).hasSize(1);
        assertThat(clock.parks.getFirst()).as("seed %d", seed).containsExactly(2_000_000_000L, after);
        assertThat(mem.written()).isEqualTo(data);

        clock.parks.clear();
        clock.probe = c::bytesRead;
        assertThat(readUntilFailure(c, seed).bytes()).isEqualTo(data);
        assertThat(clock.parks).hasSize(1);
        assertThat(clock.parks.getFirst()).containsExactly(2_000_000_000L, after);
    }

    @Test
    void aStallAtTheVeryEndNeverFires() throws Exception {
        FakeClock clock = new FakeClock();
        var c = FaultInjectingConnection.wrap(new MemoryConnection(new byte[0], 1),
                FaultSpec.parse("stall:ms=1,after=10"), clock);
        c.out().write(ByteBuffer.allocate(10));
        assertThat(clock.parks).isEmpty();
        c.out().write(ByteBuffer.allocate(1));
        assertThat(clock.parks).hasSize(1);
    }

    @Test
    void aCutAtANamedPointFiresThereAndOnlyThere() throws Exception {
        byte[] data = data(72);
        MemoryConnection mem = new MemoryConnection(data, 1000);
        var c = FaultInjectingConnection.wrap(mem, FaultSpec.parse("cut:point=complete"));
        c.out().write(ByteBuffer.wrap(data, 0, 500));
        c.reached(FaultPoints.DEVICE); // another point: nothing
        assertThatThrownBy(() -> c.reached(FaultPoints.COMPLETE)).isInstanceOf(IOException.class)
                .hasMessage("injected cut at point complete");
        assertThat(c.isCut()).isTrue();
        assertThat(mem.shutdowns).isEqualTo(1);
        assertThatThrownBy(() -> c.out().write(ByteBuffer.wrap(data, 500, 10))).hasMessage("injected cut at point complete");
        assertThatThrownBy(() -> c.in().read(ByteBuffer.allocate(10))).hasMessage("injected cut at point complete");
        assertThat(mem.written()).isEqualTo(Arrays.copyOf(data, 500));
        // Any other connection reaching a point is left alone.
        FaultInjectingConnection.reached(new MemoryConnection(data, 1), FaultPoints.COMPLETE);
    }

    @Test
    void aStallAtANamedPointHoldsTheThreadThatReachedItOnceAndAShutdownEndsIt() throws Exception {
        FakeClock clock = new FakeClock();
        var once = FaultInjectingConnection.wrap(new MemoryConnection(new byte[0], 1),
                FaultSpec.parse("stall:point=setup,ms=250"), clock);
        once.reached(FaultPoints.SETUP);
        once.reached(FaultPoints.SETUP);
        assertThat(clock.parks).hasSize(1);
        assertThat(clock.parks.getFirst()[0]).isEqualTo(250_000_000L);

        MemoryConnection mem = new MemoryConnection(new byte[0], 1);
        var c = FaultInjectingConnection.wrap(mem, FaultSpec.parse("stall:point=device,ms=600000"));
        var held = TestThreads.start("test-held-at-point", () -> {
            c.reached(FaultPoints.DEVICE);
            return null;
        });
        await().atMost(TestThreads.BOUND).until(() -> held.thread().getState() == Thread.State.TIMED_WAITING);
        c.shutdown();
        assertThat(held.awaitFailure()).isInstanceOf(IOException.class).hasMessageContaining("was shut down");
    }

    @Test
    void shutdownEndsAStallAtOnce() throws Exception {
        byte[] data = data(71);
        MemoryConnection mem = new MemoryConnection(data, 1000);
        var c = FaultInjectingConnection.wrap(mem, FaultSpec.parse("stall:ms=600000,after=1234"));
        var writer = TestThreads.start("test-stalled-writer", () -> c.out().write(ByteBuffer.wrap(data)));
        await().atMost(TestThreads.BOUND).until(() -> c.bytesWritten() == 1234
                && writer.thread().getState() == Thread.State.TIMED_WAITING);
        c.shutdown();
        assertThat(writer.awaitFailure()).isInstanceOf(IOException.class).hasMessageContaining("was shut down");
        assertThat(mem.written()).isEqualTo(Arrays.copyOf(data, 1234));
        assertThat(mem.shutdowns).isEqualTo(1);
    }

    @Test
    void throttleKeepsToTheRateInVirtualTime() throws Exception {
        byte[] data = data(81);
        FakeClock clock = new FakeClock();
        MemoryConnection mem = new MemoryConnection(data, 65536);
        var c = FaultInjectingConnection.wrap(mem, FaultSpec.parse("throttle:bps=100000"), clock);
        long start = clock.now;
        TransportContractTest.writeGathering((GatheringByteChannel) c.out(), data, 81);
        // 400 000 bytes at 100 000 B/s: 4 s, the last chunk's wait included
        assertThat(clock.now - start).isBetween(3_999_999_000L, 4_000_001_000L);
        assertThat(mem.written()).isEqualTo(data);
        // no burst larger than a tenth of a second's worth reaches the channel
        assertThat(mem.singleWrites).allMatch(n -> n <= 10_000);
        assertThat(mem.gatheringWrites).allMatch(n -> n <= 10_000);

        long readStart = clock.now;
        assertThat(readUntilFailure(c, 81).bytes()).isEqualTo(data);
        assertThat(clock.now - readStart).isBetween(3_999_999_000L, 4_000_001_000L);
    }

    /** A clock whose time also moves while the caller is away, as when the source has nothing to send. */
    @Test
    void idleTimeEarnsNoCreditForABurst() throws Exception {
        FakeClock clock = new FakeClock();
        MemoryConnection mem = new MemoryConnection(new byte[0], 1);
        var c = FaultInjectingConnection.wrap(mem, FaultSpec.parse("throttle:bps=1000"), clock);
        c.out().write(ByteBuffer.allocate(100)); // 0.1 s
        clock.now += 60_000_000_000L; // a minute with nothing to send
        long before = clock.now;
        c.out().write(ByteBuffer.allocate(2000)); // must still take 2 s
        assertThat(clock.now - before).isBetween(1_999_999_000L, 2_000_001_000L);
    }

    @Test
    void theTightestOfSeveralThrottlesApplies() throws Exception {
        FakeClock clock = new FakeClock();
        var c = FaultInjectingConnection.wrap(new MemoryConnection(new byte[0], 1),
                FaultSpec.parse("throttle:bps=1000000;throttle:bps=50000,dir=out;throttle:bps=1,dir=in"), clock);
        long start = clock.now;
        c.out().write(ByteBuffer.allocate(100_000));
        assertThat(clock.now - start).isBetween(1_999_999_000L, 2_000_001_000L);
    }

    @Test
    void writesWithoutAFaultPointInsideStayOneGatheringCall() throws Exception {
        MemoryConnection mem = new MemoryConnection(new byte[0], 1);
        var c = FaultInjectingConnection.wrap(mem, FaultSpec.parse("cut:after=10m;flip:at=20m;stall:ms=1,after=30m"));
        GatheringByteChannel out = (GatheringByteChannel) c.out();
        ByteBuffer[] bufs = {ByteBuffer.allocate(1000), ByteBuffer.allocateDirect(4096), ByteBuffer.allocate(7)};
        assertThat(out.write(bufs)).isEqualTo(5103);
        assertThat(mem.gatheringWrites).containsExactly(5103L);
        assertThat(mem.singleWrites).isEmpty();
        assertThat(c.bytesWritten()).isEqualTo(5103);
    }

    @Test
    void descriptionNamesTheFaultsAndNoFaultMeansNoWrapper() {
        MemoryConnection mem = new MemoryConnection(new byte[0], 1);
        assertThat(FaultInjectingConnection.wrapIfAny(mem, FaultSpec.NONE)).isSameAs(mem);
        MigrationConnection c = FaultInjectingConnection.wrapIfAny(mem, FaultSpec.parse("cut:after=5"));
        assertThat(c).isInstanceOf(FaultInjectingConnection.class);
        assertThat(c.description()).isEqualTo("memory [faults: cut:after=5]");
    }

    // ------------------------------------------------------------ over a real socket

    @TempDir
    Path dir;

    private record Pair(FaultInjectingConnection source, MigrationConnection destination, MigrationListener listener)
            implements AutoCloseable {
        @Override
        public void close() throws Exception {
            source.close();
            destination.close();
            listener.close();
        }
    }

    private Pair unixPair(FaultSpec spec) throws Exception {
        MigrationListener l = Transports.listen(new MigrationAddress.Unix(dir.resolve("f.sock")));
        var accepted = TestThreads.start("test-accept", l::accept);
        MigrationConnection src = Transports.connect(l.boundAddress(), Duration.ofSeconds(10));
        return new Pair(FaultInjectingConnection.wrap(src, spec), accepted.awaitResult(), l);
    }

    @Test
    void aCutSourceEndsTheDestinationsStreamAtExactlyTheCount() throws Exception {
        byte[] data = TransportContractTest.randomBytes(91, 1 << 20);
        try (Pair p = unixPair(FaultSpec.parse("cut:after=100000"))) {
            var reader = TestThreads.start("test-reader", () -> TransportContractTest.readAll(p.destination().in(), 91));
            assertThatThrownBy(() -> TransportContractTest.writeGathering((GatheringByteChannel) p.source().out(), data, 91))
                    .hasMessage("injected cut after 100000 bytes");
            assertThat(reader.awaitResult()).isEqualTo(Arrays.copyOf(data, 100_000));
        }
    }

    @Test
    void aFlippedByteArrivesFlipped() throws Exception {
        byte[] data = TransportContractTest.randomBytes(92, 1 << 20);
        try (Pair p = unixPair(FaultSpec.parse("flip:at=5000"))) {
            var reader = TestThreads.start("test-reader", () -> TransportContractTest.readAll(p.destination().in(), 92));
            TransportContractTest.writeGathering((GatheringByteChannel) p.source().out(), data, 92);
            p.source().close();
            byte[] expected = data.clone();
            expected[5000] ^= (byte) 0xFF;
            assertThat(reader.awaitResult()).isEqualTo(expected);
        }
    }
}
