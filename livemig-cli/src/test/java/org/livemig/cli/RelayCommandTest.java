package org.livemig.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Test;
import org.livemig.machine.Machine;

import picocli.CommandLine;
import tools.jackson.databind.json.JsonMapper;

/** {@code livemig relay} without QEMU: peers that go away end it with one line, never a hang; multifd passes. */
class RelayCommandTest {

    private static CompletableFuture<Integer> relay(StringWriter err, String... args) {
        return relay(err, new StringWriter(), args);
    }

    private static CompletableFuture<Integer> relay(StringWriter err, StringWriter out, String... args) {
        CompletableFuture<Integer> status = new CompletableFuture<>();
        Thread.ofPlatform().name("relay-under-test").daemon().start(() -> {
            CommandLine cl = new CommandLine(new Main());
            cl.setOut(new PrintWriter(out, true));
            cl.setErr(new PrintWriter(err, true));
            status.complete(cl.execute(args));
        });
        return status;
    }

    private static int freePort() throws Exception {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    @Test
    void aSourceThatVanishesMidStreamEndsTheRelayWithOneLine() throws Exception {
        try (ServerSocket dst = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            ByteArrayOutputStream got = new ByteArrayOutputStream();
            Thread.ofPlatform().daemon().start(() -> {
                try (Socket s = dst.accept(); InputStream in = s.getInputStream()) {
                    in.transferTo(got);
                } catch (Exception e) {
                    // the test looks at what arrived
                }
            });
            int port = freePort();
            StringWriter err = new StringWriter();
            CompletableFuture<Integer> status = relay(err, "relay", "--listen", "tcp:127.0.0.1:" + port,
                    "--to", "tcp:127.0.0.1:" + dst.getLocalPort(), "--idle-timeout", "20");
            await().atMost(Duration.ofSeconds(20)).until(() -> err.toString().contains("listening on"));
            byte[] start = {0x51, 0x45, 0x56, 0x4d, 0, 0, 0, 3, 0x07, 0, 0};
            try (Socket src = new Socket(InetAddress.getLoopbackAddress(), port); OutputStream out = src.getOutputStream()) {
                out.write(start);
            }
            assertThat(status.get(30, TimeUnit.SECONDS)).isEqualTo(1);
            assertThat(err.toString()).contains("livemig relay: the source's stream ended after 11 bytes");
            await().atMost(Duration.ofSeconds(10)).until(() -> got.size() == start.length);
            assertThat(got.toByteArray()).isEqualTo(start);
        }
    }

    /**
     * livemig to livemig through the relay with multifd over 2 channels: each channel is
     * forwarded on a connection of its own and counted, and the destination verifies.
     */
    @Test
    void aMultifdMigrationPassesThroughWithItsChannelsCounted() throws Exception {
        Machine.Config cfg = Machine.Config.defaults().withRam(32L << 20).withVcpus(1).withWorkload("idle")
                .withBlobSize(8192);
        try (InProcessSide src = new InProcessSide(cfg.withName("src").withFill(Machine.Fill.RANDOM), false, true, "auto");
             InProcessSide dst = new InProcessSide(cfg.withName("dst").withFill(Machine.Fill.ZERO), true, false, "auto")) {
            for (InProcessSide side : List.of(src, dst)) {
                side.setCapabilities(Map.of("multifd", true));
                side.setParameters(JsonMapper.builder().build().createObjectNode().put("multifd-channels", 2));
            }
            src.setParameters(JsonMapper.builder().build().createObjectNode().put("max-bandwidth", 0));
            String dstUri = dst.migrateIncoming("tcp:127.0.0.1:0");
            int port = freePort();
            StringWriter err = new StringWriter();
            StringWriter out = new StringWriter();
            CompletableFuture<Integer> status = relay(err, out, "relay", "--listen", "tcp:127.0.0.1:" + port,
                    "--to", dstUri, "--multifd-channels", "2", "--idle-timeout", "30");
            await().atMost(Duration.ofSeconds(20)).until(() -> err.toString().contains("listening on"));
            src.migrate("tcp:127.0.0.1:" + port);
            await().atMost(Duration.ofSeconds(60)).until(() -> src.status().equals("postmigrate")
                    || src.queryMigrate().path("status").asString().equals("failed"));
            assertThat(status.get(60, TimeUnit.SECONDS)).as(err.toString()).isZero();
            assertThat(out.toString()).contains("multifd: 2 channels", "  channel 0: ", "  channel 1: ");
            await().atMost(Duration.ofSeconds(60)).until(() -> dst.queryMigrate().path("status").asString().equals("completed"));
            assertThat(dst.fingerprint().get("ram")).isEqualTo(src.fingerprint().get("ram"));
        }
    }

    @Test
    void anUnreachableDestinationIsOneLineAndStatus1() throws Exception {
        int port = freePort();
        int nowhere = freePort();
        StringWriter err = new StringWriter();
        CompletableFuture<Integer> status = relay(err, "relay", "--listen", "tcp:127.0.0.1:" + port,
                "--to", "tcp:127.0.0.1:" + nowhere);
        await().atMost(Duration.ofSeconds(20)).until(() -> err.toString().contains("listening on"));
        try (Socket src = new Socket(InetAddress.getLoopbackAddress(), port)) {
            assertThat(status.get(30, TimeUnit.SECONDS)).isEqualTo(1);
        }
        assertThat(err.toString()).contains("livemig relay: cannot connect to tcp:127.0.0.1:" + nowhere);
    }
}
