package org.livemig.migration;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.livemig.machine.Machine;
import org.livemig.machine.RunState;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.ReturnPathCodec;
import org.livemig.stream.ReturnPathMessage;

/** The source's return path: PING/PONG measured, bad page requests refused without harm. */
class ReturnPathTest {
    private static final Duration LONG = Duration.ofSeconds(60);

    @Test
    void pingIsAnsweredAndTheRoundTripMeasured() throws Exception {
        try (PrecopyTest.Pair p = PrecopyTest.Pair.of(TestMachines.small("idle"))) {
            p.cap(Capability.RETURN_PATH);
            p.params(m -> m.maxBandwidth = 0);
            Outgoing o = p.migrate(p.listen("tcp:127.0.0.1:0"));
            await().atMost(LONG).until(() -> o.status().isFinal());
            assertThat(o.status()).isEqualTo(MigrationStatus.COMPLETED);
            assertThat(o.pongRoundTripNanos()).isPositive();
        }
    }

    /**
     * The source's wait for SHUT ends when a multifd channel fails its last packets (abortShutWait), not after 60 s.
     * No reader thread runs: the destination is silent, and a reader without a RAM saver could not run (it failed at
     * once, ending the wait before the abort whenever it won the race).
     */
    @Test
    void aFailureOnThisSideEndsTheWaitForShut() throws Exception {
        java.nio.channels.Pipe pipe = java.nio.channels.Pipe.open();
        try (var sink = pipe.sink(); var source = pipe.source()) {
            ReturnPathReader rp = new ReturnPathReader(MigrationFile.forReading(source), null);
            java.util.concurrent.CompletableFuture<Throwable> waiting = java.util.concurrent.CompletableFuture.supplyAsync(() -> {
                try {
                    rp.awaitShut(60_000);
                    return null;
                } catch (java.io.IOException e) {
                    return e;
                }
            });
            rp.abortShutWait(new java.io.IOException("multifd channel 1 (unix:x): Broken pipe"));
            assertThat(waiting.get(30, java.util.concurrent.TimeUnit.SECONDS)).hasMessage("multifd channel 1 (unix:x): Broken pipe");
            assertThat(rp.error()).as("the return path itself is healthy").isNull();
        }
    }

    /** A destination that asks for a page of a block that does not exist, and for one past the end. */
    private static void hostileDestination(ServerSocketChannel server, ReturnPathMessage request) throws Exception {
        try (SocketChannel c = server.accept()) {
            MigrationFile out = MigrationFile.forWriting(c);
            ReturnPathCodec.write(out, request);
            out.flush();
            ByteBuffer sink = ByteBuffer.allocateDirect(1 << 20);
            while (c.read(sink) >= 0) {
                sink.clear(); // drain the stream so the source is never blocked writing
            }
        }
    }

    private void refused(ReturnPathMessage request, String expected) throws Exception {
        try (Machine src = TestMachines.booted(TestMachines.small("idle").withFill(Machine.Fill.RANDOM), RunState.RUNNING);
             ServerSocketChannel server = ServerSocketChannel.open().bind(new InetSocketAddress("127.0.0.1", 0))) {
            Migration mig = new Migration(src);
            src.mainLoop().call(() -> {
                mig.setCapability(Capability.RETURN_PATH, true);
                mig.setParameters(m -> m.maxBandwidth = 4L << 20);
                return null;
            }, 10_000);
            Thread fake = Thread.ofPlatform().start(() -> {
                try {
                    hostileDestination(server, request);
                } catch (Exception ignored) {
                    // the source closing on us ends the fake destination
                }
            });
            int port = ((InetSocketAddress) server.getLocalAddress()).getPort();
            Outgoing o = src.mainLoop().call(() -> mig.migrate("tcp:127.0.0.1:" + port), 10_000);
            await().atMost(LONG).until(() -> o.status().isFinal());
            assertThat(o.status()).isEqualTo(MigrationStatus.FAILED);
            assertThat(o.error()).contains(expected);
            assertThat(src.runState()).isEqualTo(RunState.RUNNING);
            fake.join(10_000);
        }
    }

    @Test
    void requestForAnUnknownBlockIsRefused() throws Exception {
        refused(new ReturnPathMessage.ReqPagesId("nope", 0, 4096), "refused page request for unknown RAM block 'nope'");
    }

    @Test
    void requestOutsideTheBlockIsRefused() throws Exception {
        refused(new ReturnPathMessage.ReqPagesId("pc.ram", 1L << 40, 4096), "outside RAM block 'pc.ram'");
    }
}
