package org.livemig.relay;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.WritableByteChannel;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;

import org.junit.jupiter.api.Test;

/**
 * Each fault on a byte stream of seeded random data written in random chunks: where exactly a
 * cut, a flip or a stall happens, and that a rate and a delay hold. A failure names its seed.
 */
class FaultyLinkTest {
    private static final int ROUNDS = 25;

    /** A sink that keeps what it got, and when each byte range arrived. */
    static final class Sink implements WritableByteChannel {
        final ByteArrayOutputStream got = new ByteArrayOutputStream();
        final List<long[]> arrivals = new ArrayList<>(); // {offset, length, nanoTime}

        @Override
        public synchronized int write(ByteBuffer src) {
            int n = src.remaining();
            byte[] b = new byte[n];
            src.get(b);
            arrivals.add(new long[] {got.size(), n, System.nanoTime()});
            got.write(b, 0, n);
            return n;
        }

        synchronized byte[] bytes() {
            return got.toByteArray();
        }

        @Override
        public boolean isOpen() {
            return true;
        }

        @Override
        public void close() {
        }
    }

    private static byte[] data(Random r, int max) {
        byte[] d = new byte[1 + r.nextInt(max)];
        r.nextBytes(d);
        return d;
    }

    /** Writes {@code d} in random chunks of 1 to 70000 bytes; returns the offset of the chunk that threw, or -1. */
    private static long writeInChunks(WritableByteChannel link, byte[] d, Random r) throws IOException {
        int off = 0;
        while (off < d.length) {
            int n = Math.min(d.length - off, 1 + r.nextInt(70_000));
            try {
                link.write(ByteBuffer.wrap(d, off, n));
            } catch (FaultyLink.CutException e) {
                return off;
            }
            off += n;
        }
        return -1;
    }

    @Test
    void aCutAfterNBytesPassesExactlyTheFirstNAndShutsTheConnectionOnce() throws Exception {
        long seed0 = System.nanoTime();
        for (int round = 0; round < ROUNDS; round++) {
            long seed = seed0 + round;
            Random r = new Random(seed);
            byte[] d = data(r, 1 << 20);
            long n = r.nextInt(d.length);
            Sink sink = new Sink();
            AtomicInteger cuts = new AtomicInteger();
            FaultPlan plan = new FaultPlan(List.of(Fault.cut(FaultChannel.MAIN, FaultPoint.START, n)));
            WritableByteChannel link = plan.link(FaultChannel.MAIN, sink, cuts::incrementAndGet);
            long threwAt = writeInChunks(link, d, r);
            assertThat(threwAt).as("seed %d: the write that reached byte %d threw", seed, n).isNotNegative()
                    .isLessThanOrEqualTo(n);
            assertThat(sink.bytes()).as("seed %d", seed).isEqualTo(Arrays.copyOf(d, (int) n));
            assertThat(cuts.get()).as("seed %d", seed).isEqualTo(1);
            assertThat(plan.cut().offset()).as("seed %d", seed).isEqualTo(n);
            assertThat(plan.cut().what()).startsWith("cut at byte " + n + " of the main stream");
            assertThatThrownBy(() -> link.write(ByteBuffer.wrap(new byte[1]))).isInstanceOf(FaultyLink.CutException.class);
        }
    }

    @Test
    void aFlipChangesExactlyTheByteAtItsOffset() throws Exception {
        long seed0 = System.nanoTime();
        for (int round = 0; round < ROUNDS; round++) {
            long seed = seed0 + round;
            Random r = new Random(seed);
            byte[] d = data(r, 1 << 20);
            int at = r.nextInt(d.length);
            int xor = 1 + r.nextInt(255);
            Sink sink = new Sink();
            FaultPlan plan = new FaultPlan(List.of(Fault.flip(FaultChannel.RETURN, FaultPoint.START, at, xor)));
            WritableByteChannel link = plan.link(FaultChannel.RETURN, sink, () -> { });
            assertThat(writeInChunks(link, d, r)).isEqualTo(-1);
            byte[] want = d.clone();
            want[at] ^= (byte) xor;
            byte[] got = sink.bytes();
            assertThat(Arrays.mismatch(got, d)).as("seed %d: first changed byte", seed).isEqualTo(at);
            assertThat(got).as("seed %d", seed).isEqualTo(want);
            assertThat(plan.events()).singleElement().extracting(FaultPlan.Event::offset).isEqualTo((long) at);
        }
    }

    @Test
    void aCutAtAPointLandsAfterThePointsEndPlusAfter() throws Exception {
        long seed0 = System.nanoTime();
        for (int round = 0; round < ROUNDS; round++) {
            long seed = seed0 + round;
            Random r = new Random(seed);
            byte[] d = data(r, 1 << 20);
            int pointEnd = r.nextInt(d.length);
            int after = r.nextInt(d.length - pointEnd);
            Sink sink = new Sink();
            FaultPlan plan = new FaultPlan(List.of(
                    Fault.cut(FaultChannel.MAIN, FaultPoint.section("0000:00:02.0/virtio-net"), after)));
            FaultyLink link = (FaultyLink) plan.link(FaultChannel.MAIN, sink, () -> { });
            // the decoder sees the point before the bytes that end it are forwarded; another section first
            link.write(ByteBuffer.wrap(d, 0, pointEnd / 2));
            link.reached(FaultPoint.Kind.SECTION, "ram", pointEnd / 2);
            link.reached(FaultPoint.Kind.SECTION, "0000:00:02.0/virtio-net", pointEnd);
            link.reached(FaultPoint.Kind.SECTION, "0000:00:02.0/virtio-net", pointEnd + 1); // only the first counts
            byte[] rest = Arrays.copyOfRange(d, pointEnd / 2, d.length);
            writeInChunks(link, rest, r);
            assertThat(sink.bytes()).as("seed %d", seed).isEqualTo(Arrays.copyOf(d, pointEnd + after));
            assertThat(plan.cut().what()).as("seed %d", seed)
                    .contains("at byte " + (pointEnd + after), "the header of section 0000:00:02.0/virtio-net");
        }
    }

    @Test
    void aPointSeenLateActsOnTheNextByteAndSaysSo() throws Exception {
        Sink sink = new Sink();
        FaultPlan plan = new FaultPlan(List.of(Fault.flip(FaultChannel.MAIN, FaultPoint.PACKAGE, 0, 0xff)));
        FaultyLink link = (FaultyLink) plan.link(FaultChannel.MAIN, sink, () -> { });
        byte[] d = new byte[100];
        link.write(ByteBuffer.wrap(d, 0, 60));
        link.reached(FaultPoint.Kind.PACKAGE, null, 40);
        link.write(ByteBuffer.wrap(d, 60, 40));
        byte[] got = sink.bytes();
        assertThat(Arrays.mismatch(got, d)).isEqualTo(60);
        assertThat(got[60]).isEqualTo((byte) 0xff);
        assertThat(plan.events().getFirst().what()).contains("at byte 60", "ended at byte 40, already forwarded");
    }

    @Test
    void theKthSyncIsThePoint() throws Exception {
        Sink sink = new Sink();
        FaultPlan plan = new FaultPlan(List.of(Fault.cut(FaultChannel.multifd(1), FaultPoint.sync(2), 3)));
        assertThat(plan.link(FaultChannel.multifd(0), sink, () -> { })).isSameAs(sink);
        FaultyLink link = (FaultyLink) plan.link(FaultChannel.multifd(1), sink, () -> { });
        byte[] d = new byte[1000];
        new Random(7).nextBytes(d);
        link.reached(FaultPoint.Kind.SYNC, null, 100);
        link.reached(FaultPoint.Kind.SYNC, null, 500);
        assertThatThrownBy(() -> link.write(ByteBuffer.wrap(d))).isInstanceOf(FaultyLink.CutException.class)
                .hasMessageContaining("at byte 503 of multifd channel 1, 3 bytes after the header of multifd SYNC packet 2");
        assertThat(sink.bytes()).isEqualTo(Arrays.copyOf(d, 503));
    }

    @Test
    void aStallHoldsTheBytesFromItsOffsetForItsDuration() throws Exception {
        long seed = System.nanoTime();
        Random r = new Random(seed);
        byte[] d = data(r, 200_000);
        int at = r.nextInt(d.length);
        Sink sink = new Sink();
        FaultPlan plan = new FaultPlan(List.of(Fault.stall(FaultChannel.MAIN, FaultPoint.START, at, Duration.ofMillis(300))));
        WritableByteChannel link = plan.link(FaultChannel.MAIN, sink, () -> { });
        long t0 = System.nanoTime();
        writeInChunks(link, d, r);
        assertThat(sink.bytes()).as("seed %d", seed).isEqualTo(d);
        long before = sink.arrivals.stream().filter(a -> a[0] < at).mapToLong(a -> a[2]).max().orElse(t0);
        long[] first = sink.arrivals.stream().filter(a -> a[0] == at).findFirst().orElseThrow();
        assertThat(first[2] - before).as("seed %d: gap before byte %d", seed, at).isGreaterThanOrEqualTo(300_000_000L);
        assertThat(plan.events().getFirst().what()).startsWith("stalled 300 ms at byte " + at);
    }

    @Test
    void aRateCapHoldsFromItsTrigger() throws Exception {
        byte[] d = new byte[400_000];
        new Random(1).nextBytes(d);
        Sink sink = new Sink();
        // the first 100 000 bytes free, the next 300 000 at 1 MB/s: about 0.3 s
        FaultPlan plan = new FaultPlan(List.of(Fault.rate(FaultChannel.MAIN, FaultPoint.START, 100_000, 1_000_000)));
        WritableByteChannel link = plan.link(FaultChannel.MAIN, sink, () -> { });
        long t0 = System.nanoTime();
        link.write(ByteBuffer.wrap(d));
        long took = System.nanoTime() - t0;
        assertThat(sink.bytes()).isEqualTo(d);
        assertThat(took).as("nanoseconds for 300 000 bytes at 1 MB/s").isBetween(280_000_000L, 10_000_000_000L);
        // by any time t, at most 1 MB/s * (t - t0) bytes past the trigger have arrived (the cap starts after t0)
        long sent = 0;
        for (long[] a : sink.arrivals) {
            if (a[0] >= 100_000) {
                sent += a[1];
                assertThat(sent * 1_000_000_000L / 1_000_000).as("ns needed for %d bytes at 1 MB/s", sent)
                        .isLessThanOrEqualTo(a[2] - t0);
            }
        }
        assertThat(sent).isEqualTo(300_000);
    }

    @Test
    void aDelayLineDelaysEveryChunkWithoutSerialisingThem() throws Exception {
        Sink sink = new Sink();
        FaultPlan plan = new FaultPlan(List.of(Fault.delay(null, Duration.ofMillis(250))));
        FaultyLink link = (FaultyLink) plan.link(FaultChannel.PREEMPT, sink, () -> { });
        byte[] d = new byte[10 * 1000];
        new Random(3).nextBytes(d);
        long[] written = new long[10];
        for (int i = 0; i < 10; i++) {
            written[i] = System.nanoTime();
            link.write(ByteBuffer.wrap(d, i * 1000, 1000));
        }
        long writerTook = System.nanoTime() - written[0];
        link.flush();
        assertThat(sink.bytes()).isEqualTo(d);
        assertThat(writerTook).as("the writer is not held by the delay").isLessThan(250_000_000L);
        for (long[] a : sink.arrivals) {
            assertThat(a[2] - written[(int) (a[0] / 1000)]).as("delay of the chunk at %d", a[0])
                    .isGreaterThanOrEqualTo(250_000_000L);
        }
        link.close();
        assertThat(plan.events()).singleElement().extracting(FaultPlan.Event::what)
                .isEqualTo("every byte of the preempt channel delayed by 250 ms");
    }

    @Test
    void aPlanWithoutFaultsHandsTheSinkBack() {
        Sink sink = new Sink();
        assertThat(FaultPlan.NONE.link(FaultChannel.MAIN, sink, () -> { })).isSameAs(sink);
        assertThat(FaultPlan.NONE.needsPoints(FaultChannel.MAIN)).isFalse();
    }

    @Test
    void faultsRefuseWhatCannotBe() {
        assertThatThrownBy(() -> Fault.cut(FaultChannel.RETURN, FaultPoint.section("ram"), 0))
                .hasMessage("point section:ram does not occur on channel return");
        assertThatThrownBy(() -> Fault.cut(FaultChannel.MAIN, FaultPoint.sync(1), 0))
                .hasMessage("point sync does not occur on channel main");
        assertThatThrownBy(() -> Fault.flip(FaultChannel.MAIN, FaultPoint.START, 0, 0)).hasMessageContaining("0x01 to 0xff");
        assertThatThrownBy(() -> Fault.rate(FaultChannel.MAIN, FaultPoint.START, 0, 0)).hasMessageContaining("1 byte");
        assertThat(Fault.stall(FaultChannel.multifd(2), FaultPoint.sync(3), 10, Duration.ofSeconds(2)).toString())
                .isEqualTo("stall:channel=multifd2,at=sync:3,after=10,for=2000ms");
    }
}
