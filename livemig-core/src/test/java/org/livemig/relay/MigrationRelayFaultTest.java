package org.livemig.relay;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Test;
import org.livemig.transport.MigrationAddress;
import org.livemig.transport.MigrationConnection;
import org.livemig.transport.MigrationListener;
import org.livemig.transport.Transports;

/**
 * A real QEMU 7.2 stream (the paused pc fixture) through {@link MigrationRelay} over loopback
 * sockets with faults at decoded points: the destination receives exactly the bytes up to the
 * point (found here independently, by the idstr's bytes in the stream), or the stream with
 * exactly one byte changed; without faults, the stream unchanged.
 */
class MigrationRelayFaultTest {
    private static final Path STREAM = Path.of("src/test/resources/qemu-7.2/pc-16M-paused.mig");

    /** Where the first START/FULL header naming {@code idstr} ends, found by its bytes. */
    static int headerEnd(byte[] s, String idstr) {
        byte[] name = idstr.getBytes(StandardCharsets.ISO_8859_1);
        for (int i = 6; i + name.length <= s.length; i++) {
            if ((s[i - 1] & 0xFF) == name.length && Arrays.equals(s, i, i + name.length, name, 0, name.length)
                    && (s[i - 6] == 1 || s[i - 6] == 4)) {
                return i + name.length + 8; // instance id, version id
            }
        }
        throw new AssertionError("no section " + idstr + " in the stream");
    }

    record Relayed(byte[] destinationGot, MigrationRelay.Result result, Throwable error) {}

    private static Relayed relay(byte[] stream, FaultPlan plan) throws Exception {
        try (MigrationListener listener = Transports.listen(MigrationAddress.parse("tcp:127.0.0.1:0"));
             ServerSocket dst = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            CompletableFuture<byte[]> got = new CompletableFuture<>();
            Thread.ofPlatform().daemon().start(() -> {
                try (Socket s = dst.accept(); InputStream in = s.getInputStream()) {
                    ByteArrayOutputStream b = new ByteArrayOutputStream();
                    try {
                        in.transferTo(b);
                    } catch (java.io.IOException e) {
                        // a cut may reset the connection: what arrived is what counts
                    }
                    got.complete(b.toByteArray());
                } catch (Exception e) {
                    got.completeExceptionally(e);
                }
            });
            String at = listener.boundAddress().uri();
            Thread source = Thread.ofPlatform().daemon().start(() -> {
                try (Socket s = new Socket(InetAddress.getLoopbackAddress(), Integer.parseInt(at.substring(at.lastIndexOf(':') + 1)))) {
                    s.getOutputStream().write(stream);
                    s.shutdownOutput();
                    s.getInputStream().transferTo(java.io.OutputStream.nullOutputStream());
                } catch (java.io.IOException e) {
                    // cut: the source sees its connection go
                }
            });
            try (MigrationConnection src = listener.accept();
                 MigrationConnection to = Transports.connect(MigrationAddress.parse("tcp:127.0.0.1:" + dst.getLocalPort()),
                         Duration.ofSeconds(10))) {
                MigrationRelay.Result r = null;
                Throwable error = null;
                try {
                    r = MigrationRelay.run(src, to, List.of(), null, Duration.ofSeconds(20), Duration.ofSeconds(10), plan);
                } catch (java.io.IOException e) {
                    error = e;
                }
                to.shutdown();
                source.join(10_000);
                return new Relayed(got.get(20, TimeUnit.SECONDS), r, error);
            }
        }
    }

    @Test
    void withoutFaultsTheDestinationGetsTheStreamUnchanged() throws Exception {
        byte[] s = Files.readAllBytes(STREAM);
        Relayed r = relay(s, FaultPlan.NONE);
        assertThat(r.error()).isNull();
        assertThat(r.destinationGot()).isEqualTo(s);
        assertThat(r.result().stats().sawEof()).isTrue();
    }

    @Test
    void aCutAtASectionPassesExactlyTheStreamUpToTheEndOfItsHeader() throws Exception {
        byte[] s = Files.readAllBytes(STREAM);
        for (String idstr : List.of("ram", "timer", "0000:00:01.3/piix4_pm", "globalstate")) {
            int end = headerEnd(s, idstr);
            FaultPlan plan = new FaultPlan(List.of(Fault.cut(FaultChannel.MAIN, FaultPoint.section(idstr), 0)));
            Relayed r = relay(s, plan);
            assertThat(r.error()).as(idstr).isNotNull().hasMessageStartingWith("cut by --fault cut:at=section:" + idstr
                    + ": cut at byte " + end + " of the main stream, just after the header of section " + idstr);
            assertThat(r.destinationGot()).as("what the destination got, cut at section %s", idstr)
                    .isEqualTo(Arrays.copyOf(s, end));
        }
    }

    @Test
    void aFlipAfterASectionHeaderChangesThatByteAloneAndTheRelayStillDecodesTheSourcesBytes() throws Exception {
        byte[] s = Files.readAllBytes(STREAM);
        int end = headerEnd(s, "timer");
        FaultPlan plan = new FaultPlan(List.of(Fault.flip(FaultChannel.MAIN, FaultPoint.section("timer"), 5, 0x40)));
        Relayed r = relay(s, plan);
        assertThat(r.error()).isNull();
        byte[] want = s.clone();
        want[end + 5] ^= 0x40;
        assertThat(r.destinationGot()).isEqualTo(want);
        assertThat(r.result().decodeError()).isNull();
        assertThat(plan.events()).singleElement().extracting(FaultPlan.Event::offset).isEqualTo((long) end + 5);
    }

    @Test
    void aCutBeyondTheStreamNeverActs() throws Exception {
        byte[] s = Files.readAllBytes(STREAM);
        FaultPlan plan = new FaultPlan(List.of(Fault.cut(FaultChannel.MAIN, FaultPoint.PACKAGE, 0),
                Fault.cut(FaultChannel.RETURN, FaultPoint.START, 10)));
        Relayed r = relay(s, plan);
        assertThat(r.error()).isNull();
        assertThat(r.destinationGot()).isEqualTo(s);
        assertThat(plan.unfired()).hasSize(2);
    }

    @Test
    void aReturnPathCutWaitsForBytesOnTheReturnPath() throws Exception {
        byte[] s = Files.readAllBytes(STREAM);
        FaultPlan plan = new FaultPlan(List.of(Fault.cut(FaultChannel.RETURN, FaultPoint.START, 0)));
        // this destination sends nothing back, so the cut at byte 0 of the return path never comes
        Relayed r = relay(s, plan);
        assertThat(r.error()).isNull();
        assertThat(r.destinationGot()).isEqualTo(s);
        assertThat(plan.cut()).isNull();
    }
}
