package org.livemig.monitor;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import tools.jackson.databind.node.ObjectNode;

/** The server's threads, sockets, sessions, flow control and limits. */
class QmpServerTest extends QmpServerFixture {
    private static final Duration WAIT = Duration.ofSeconds(10);

    @Test
    void anOutOfBandCommandIsAnsweredWhileTheMainLoopIsBusy() throws Exception {
        try (RawQmp q = RawQmp.negotiated(address, true)) {
            CountDownLatch started = new CountDownLatch(1);
            CountDownLatch release = vm.blockMainLoop(started);
            assertThat(started.await(10, TimeUnit.SECONDS)).isTrue();

            q.send("{\"execute\": \"query-status\", \"id\": \"in-band\"}\n");
            q.send("{\"exec-oob\": \"x-oob-echo\", \"arguments\": {\"x\": \"o\"}, \"id\": \"oob\"}\n");
            // Sent second, answered first: it ran on qmp-io without the BQL.
            assertThat(q.nextLine()).isEqualTo(
                    "{\"return\": {\"thread\": \"qmp-io\", \"x\": \"o\", \"bql\": false}, \"id\": \"oob\"}");
            assertThat(q.pollLine(0)).as("the in-band command waits for the main loop").isNull();

            release.countDown();
            assertThat(q.nextLine()).isEqualTo(
                    "{\"return\": {\"status\": \"running\", \"singlestep\": false, \"running\": true}, \"id\": \"in-band\"}");
        }
    }

    @Test
    void aClientThatDisconnectsMidCommandHarmsNothing() throws Exception {
        CountDownLatch entered = new CountDownLatch(1);
        CountDownLatch release = new CountDownLatch(1);
        server.register(QmpCommand.builder("x-block").handler(args -> {
            entered.countDown();
            try {
                release.await(30, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            return QmpJson.object().put("done", true);
        }).build());

        RawQmp q = RawQmp.negotiated(address, false);
        q.send("{\"execute\": \"x-block\"}\n{\"execute\": \"query-status\"}\n");
        assertThat(entered.await(10, TimeUnit.SECONDS)).isTrue();
        q.close();
        await().atMost(WAIT).until(() -> server.sessionCount() == 0);

        release.countDown();
        await().atMost(WAIT).until(() -> server.droppedReplies() == 1);

        try (RawQmp again = RawQmp.negotiated(address, false)) {
            assertThat(again.exchange("{\"execute\": \"query-status\"}")).isEqualTo(
                    "{\"return\": {\"status\": \"running\", \"singlestep\": false, \"running\": true}}");
        }
    }

    @Test
    void severalSessionsAtOnceEachGetTheirOwnRepliesInOrder() throws Exception {
        int sessions = 4;
        int perSession = 40;
        List<RawQmp> clients = new ArrayList<>();
        try {
            for (int i = 0; i < sessions; i++) {
                clients.add(RawQmp.negotiated(address, i % 2 == 0));
            }
            for (int i = 0; i < sessions; i++) {
                StringBuilder burst = new StringBuilder();
                for (int k = 0; k < perSession; k++) {
                    burst.append("{\"execute\": \"x-echo\", \"arguments\": {\"x\": \"s").append(i).append("-").append(k)
                            .append("\"}, \"id\": ").append(k).append("}\n");
                }
                clients.get(i).send(burst.toString());
            }
            assertThat(server.sessionCount()).isEqualTo(sessions);
            for (int i = 0; i < sessions; i++) {
                for (int k = 0; k < perSession; k++) {
                    assertThat(clients.get(i).nextLine()).isEqualTo("{\"return\": {\"thread\": \"main\", \"x\": \"s" + i + "-" + k
                            + "\", \"bql\": true}, \"id\": " + k + "}");
                }
            }
        } finally {
            for (RawQmp c : clients) {
                c.close();
            }
        }
    }

    @ParameterizedTest(name = "oob={0}")
    @ValueSource(booleans = {false, true})
    void requestsPipelinedPastTheQueueLimitWhileTheMainLoopIsBusyAreAllAnswered(boolean oob) throws Exception {
        try (RawQmp q = RawQmp.negotiated(address, oob)) {
            CountDownLatch started = new CountDownLatch(1);
            CountDownLatch release = vm.blockMainLoop(started);
            assertThat(started.await(10, TimeUnit.SECONDS)).isTrue();
            StringBuilder burst = new StringBuilder();
            int n = 5 * QmpServer.MAX_PENDING_REQUESTS;
            for (int k = 0; k < n; k++) {
                burst.append("{\"execute\": \"query-name\", \"id\": ").append(k).append("}");
            }
            q.send(burst.append('\n').toString());
            release.countDown();
            for (int k = 0; k < n; k++) {
                assertThat(q.nextLine()).isEqualTo("{\"return\": {}, \"id\": " + k + "}");
            }
        }
    }

    /** As QEMU's: the main loop writes the reply of the command it ran; qmp-io need not be free for it. */
    @Test
    void theMainLoopWritesItsReplyWhileQmpIoIsBusy() throws Exception {
        CountDownLatch entered = new CountDownLatch(1);
        CountDownLatch release = new CountDownLatch(1);
        server.register(QmpCommand.builder("x-hold").handler(args -> {
            entered.countDown();
            try {
                release.await(30, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            return QmpJson.object().put("done", true);
        }).build());
        CountDownLatch ioHeld = new CountDownLatch(1);
        CountDownLatch ioRelease = new CountDownLatch(1);
        try (RawQmp q = RawQmp.negotiated(address, false)) {
            q.send("{\"execute\": \"x-hold\", \"id\": 1}\n");
            assertThat(entered.await(10, TimeUnit.SECONDS)).isTrue();
            server.post(() -> {
                ioHeld.countDown();
                try {
                    ioRelease.await(30, TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            });
            assertThat(ioHeld.await(10, TimeUnit.SECONDS)).isTrue();
            release.countDown();
            assertThat(q.nextLine()).as("written by the main loop while qmp-io is held")
                    .isEqualTo("{\"return\": {\"done\": true}, \"id\": 1}");
            ioRelease.countDown();
            // qmp-io picks the session up again: the next command is read, run and answered
            assertThat(q.exchange("{\"execute\": \"query-name\"}")).isEqualTo("{\"return\": {}}");
        } finally {
            ioRelease.countDown();
        }
    }

    /** An event a command emits is written before the command's reply, as QEMU writes both in order. */
    @Test
    void anEventEmittedByACommandPrecedesItsReply() throws Exception {
        server.register(QmpCommand.builder("x-emit").handler(args -> {
            server.emitEvent("X-EVENT", QmpJson.object().put("n", 1));
            return null;
        }).build());
        try (RawQmp q = RawQmp.negotiated(address, false)) {
            for (int i = 0; i < 50; i++) {
                q.send("{\"execute\": \"x-emit\", \"id\": " + i + "}\n");
                assertThat(q.nextLine()).isEqualTo("{" + TS + ", \"event\": \"X-EVENT\", \"data\": {\"n\": 1}}");
                assertThat(q.nextLine()).isEqualTo("{\"return\": {}, \"id\": " + i + "}");
            }
        }
    }

    @Test
    void eventsGoToEveryNegotiatedSessionWithATimestamp() throws Exception {
        try (RawQmp a = RawQmp.negotiated(address, false);
             RawQmp b = RawQmp.negotiated(address, true);
             RawQmp notYet = RawQmp.connect(address)) {
            notYet.nextLine(); // greeting only
            ObjectNode data = QmpJson.object().put("status", "setup");
            server.emitEvent("MIGRATION", data);
            data.put("status", "changed-after-emit");
            String expected = "{" + TS + ", \"event\": \"MIGRATION\", \"data\": {\"status\": \"setup\"}}";
            assertThat(a.nextLine()).isEqualTo(expected);
            assertThat(b.nextLine()).isEqualTo(expected);
            // The session in negotiation mode got no event: its next line is the negotiation reply.
            assertThat(notYet.exchange("{\"execute\": \"qmp_capabilities\"}")).isEqualTo("{\"return\": {}}");
            server.emitEvent("MIGRATION_PASS", QmpJson.object().put("pass", 1));
            assertThat(notYet.nextLine()).isEqualTo(
                    "{" + TS + ", \"event\": \"MIGRATION_PASS\", \"data\": {\"pass\": 1}}");
        }
    }

    @Test
    void eventTimestampsAreWallClockMicroseconds() throws Exception {
        try (TestMachine host = new TestMachine("running");
             QmpServer s = QmpServer.builder(host).build()) {
            SocketAddress a = s.listen("unix:" + dir.resolve("clock.sock"));
            try (RawQmp q = RawQmp.negotiated(a, false)) {
                Instant before = Instant.now();
                s.emitEvent("RESUME", null);
                ObjectNode e = q.next();
                Instant after = Instant.now();
                long sec = e.get("timestamp").get("seconds").longValue();
                long usec = e.get("timestamp").get("microseconds").longValue();
                Instant at = Instant.ofEpochSecond(sec, usec * 1000);
                assertThat(usec).isBetween(0L, 999_999L);
                assertThat(at).isBetween(before.minusMillis(1), after);
                assertThat(e.has("data")).as("an event without data has no data member").isFalse();
            }
        }
    }

    @Test
    void theUnixSocketIsCreatedWithMode0600AndRemovedOnClose() throws Exception {
        Path sock = dir.resolve("qmp.sock");
        assertThat(Files.readAttributes(sock, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS).isOther())
                .as("a socket").isTrue();
        assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(sock, LinkOption.NOFOLLOW_LINKS)))
                .isEqualTo("rw-------");
        try (var files = Files.list(dir)) {
            assertThat(files.map(p -> p.getFileName().toString())).containsExactly("qmp.sock");
        }
        try (RawQmp q = RawQmp.negotiated(address, false)) {
            server.close();
            await().atMost(WAIT).until(q::closedByPeer);
        }
        assertThat(sock).doesNotExist();
    }

    @Test
    void aStaleSocketIsReplacedButNotAnOrdinaryFile() throws Exception {
        Path stale = dir.resolve("stale.sock");
        try (ServerSocketChannel old = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            old.bind(UnixDomainSocketAddress.of(stale));
        }
        assertThat(stale).exists();
        SocketAddress a = server.listen("unix:" + stale);
        try (RawQmp q = RawQmp.negotiated(a, false)) {
            assertThat(q.exchange("{\"execute\": \"query-name\"}")).isEqualTo("{\"return\": {}}");
        }
        Path file = Files.writeString(dir.resolve("file"), "keep me");
        assertThatThrownBy(() -> server.listen("unix:" + file)).isInstanceOf(FileAlreadyExistsException.class);
        assertThat(file).hasContent("keep me");
    }

    @ParameterizedTest
    @ValueSource(strings = {"tcp::0", "tcp:127.0.0.1:0", "tcp:localhost:0,server=on,wait=off"})
    void tcpListensOnLoopbackUnlessTold(String spec) throws Exception {
        InetSocketAddress a = (InetSocketAddress) server.listen(spec);
        assertThat(a.getAddress().isLoopbackAddress()).isTrue();
        assertThat(a.getPort()).isPositive();
        try (RawQmp q = RawQmp.negotiated(a, false)) {
            assertThat(q.exchange("{\"execute\": \"query-name\"}")).isEqualTo("{\"return\": {}}");
        }
    }

    @Test
    void anEndlessLineCostsNoMemoryAndTheSessionRecoversAtTheNextNewline() throws Exception {
        try (RawQmp q = RawQmp.negotiated(address, false)) {
            q.send("{\"execute\": \"x-echo\", \"arguments\": {\"x\": \"");
            byte[] chunk = "x".repeat(1 << 20).getBytes(StandardCharsets.US_ASCII);
            for (int i = 0; i < 16; i++) {
                q.send(chunk);
            }
            assertThat(q.nextLine()).isEqualTo(
                    "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON token size limit exceeded\"}}");
            q.send("\"}}\n");
            assertThat(q.exchange("{\"execute\": \"query-name\"}")).isEqualTo("{\"return\": {}}");
            q.send("[".repeat(2 << 20) + "\n");
            assertThat(q.nextLine()).isEqualTo(
                    "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON nesting depth limit exceeded\"}}");
            assertThat(q.exchange("{\"execute\": \"query-name\"}")).isEqualTo("{\"return\": {}}");
        }
    }

    @Test
    void aClientThatNeverReadsIsClosedOnceItsOutputPassesTheLimit() throws Exception {
        try (TestMachine host = new TestMachine("running");
             QmpServer s = QmpServer.builder(host).maxOutputBytes(64 * 1024).build()) {
            SocketAddress a = s.listen("unix:" + dir.resolve("slow.sock"));
            // A raw socket that negotiates and then never reads.
            try (var ch = java.nio.channels.SocketChannel.open(StandardProtocolFamily.UNIX)) {
                ch.connect(a);
                ch.write(java.nio.ByteBuffer.wrap("{\"execute\": \"qmp_capabilities\"}\n".getBytes(StandardCharsets.US_ASCII)));
                await().atMost(WAIT).until(() -> s.sessionCount() == 1);
                ObjectNode data = QmpJson.object().put("payload", "p".repeat(1000));
                await().atMost(WAIT).until(() -> {
                    for (int i = 0; i < 200; i++) {
                        s.emitEvent("X-FLOOD", data);
                    }
                    return s.sessionCount() == 0;
                });
            }
        }
    }

    @Test
    void whenTheMainLoopHasEndedCommandsAnswerAnError() throws Exception {
        try (RawQmp q = RawQmp.negotiated(address, true)) {
            vm.close();
            assertThat(q.exchange("{\"execute\": \"query-name\", \"id\": 1}"))
                    .startsWith("{\"id\": 1, \"error\": {\"class\": \"GenericError\", \"desc\": \"The main loop is not running: ");
            assertThat(q.exchange("{\"exec-oob\": \"x-oob-echo\", \"arguments\": {\"x\": \"still\"}}"))
                    .as("out-of-band commands do not need the main loop")
                    .isEqualTo("{\"return\": {\"thread\": \"qmp-io\", \"x\": \"still\", \"bql\": false}}");
        }
    }

    @Test
    void aClosedServerRefusesToListen() throws IOException {
        server.close();
        assertThatThrownBy(() -> server.listen("tcp::0")).isInstanceOf(IllegalStateException.class);
    }

    @Test
    void commandNamesAreUnique() {
        assertThatThrownBy(() -> server.register(QmpCommand.builder("query-status").handler(a -> null).build()))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("query-status");
    }
}
