package org.livemig.monitor;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

import org.junit.jupiter.api.Test;

import tools.jackson.databind.JsonNode;
import tools.jackson.databind.node.ObjectNode;

/** {@link QmpClient} against the server: the API the demo and the migration tests use. */
class QmpClientTest extends QmpServerFixture {

    private QmpClient connect() throws IOException {
        return QmpClient.connect("unix:" + dir.resolve("qmp.sock"));
    }

    @Test
    void greetingNegotiationAndCommands() throws Exception {
        try (QmpClient qmp = connect()) {
            assertThat(qmp.greeting().get("QMP").get("capabilities").get(0).stringValue()).isEqualTo("oob");
            qmp.negotiate();
            JsonNode status = qmp.execute("query-status");
            assertThat(status.get("status").stringValue()).isEqualTo("running");
            assertThat(status.get("running").booleanValue()).isTrue();
            JsonNode echo = qmp.execute("x-echo", QmpClient.args("x", "hello", "n", 3));
            assertThat(echo.get("x").stringValue()).isEqualTo("hello");
            ObjectNode raw = qmp.request("query-name", null);
            assertThat(raw.get("id").stringValue()).startsWith("livemig-");
            assertThat(raw.get("return").isObject()).isTrue();
        }
    }

    @Test
    void errorsBecomeQmpErrorsWithClassAndDesc() throws Exception {
        try (QmpClient qmp = connect()) {
            assertThatThrownBy(() -> qmp.execute("query-status"))
                    .isInstanceOfSatisfying(QmpError.class, e -> {
                        assertThat(e.errorClass()).isEqualTo(QmpErrorClass.CommandNotFound);
                        assertThat(e.desc()).isEqualTo("Expecting capabilities negotiation with 'qmp_capabilities'");
                    });
            qmp.negotiate();
            assertThatThrownBy(() -> qmp.execute("x-echo", QmpClient.args("x", 1)))
                    .isInstanceOf(QmpError.class)
                    .hasMessage("Invalid parameter type for 'x', expected: string");
            assertThat(qmp.isConnected()).isTrue();
        }
    }

    @Test
    void eventsAreCollectedAlsoBetweenACommandAndItsReply() throws Exception {
        try (QmpClient qmp = connect()) {
            List<String> seen = new CopyOnWriteArrayList<>();
            qmp.onEvent(e -> seen.add(e.get("event").stringValue()));
            qmp.negotiate();
            qmp.execute("stop");
            ObjectNode stop = qmp.waitForEvent("STOP", Duration.ofSeconds(10));
            assertThat(stop.get("timestamp").get("seconds").longValue()).isEqualTo(EVENT_TIME.getEpochSecond());

            server.emitEvent("MIGRATION", QmpJson.object().put("status", "active"));
            server.emitEvent("MIGRATION", QmpJson.object().put("status", "completed"));
            ObjectNode completed = qmp.waitForEvent("MIGRATION",
                    e -> e.get("data").get("status").stringValue().equals("completed"), Duration.ofSeconds(10));
            assertThat(completed.get("data").get("status").stringValue()).isEqualTo("completed");
            // The skipped "active" event is still there; the taken ones are not.
            List<ObjectNode> rest = qmp.takeEvents();
            assertThat(rest).extracting(e -> e.get("data").get("status").stringValue()).containsExactly("active");
            assertThat(qmp.takeEvents()).isEmpty();
            assertThat(seen).containsExactly("STOP", "MIGRATION", "MIGRATION");
        }
    }

    @Test
    void anEventIsTakenOnlyAfterEveryListenerHasSeenIt() throws Exception {
        try (QmpClient qmp = connect()) {
            CountDownLatch inListener = new CountDownLatch(1);
            CountDownLatch gate = new CountDownLatch(1);
            List<String> seen = new CopyOnWriteArrayList<>();
            qmp.onEvent(e -> {
                inListener.countDown();
                try {
                    gate.await(10, TimeUnit.SECONDS);
                } catch (InterruptedException ie) {
                    Thread.currentThread().interrupt();
                }
                seen.add(e.get("event").stringValue());
            });
            qmp.negotiate();
            server.emitEvent("RESUME", QmpJson.object());
            assertThat(inListener.await(10, TimeUnit.SECONDS)).isTrue();
            // The listener holds the event: it must not be visible to a waiter yet.
            assertThatThrownBy(() -> qmp.waitForEvent("RESUME", Duration.ofMillis(200)))
                    .isInstanceOf(TimeoutException.class);
            gate.countDown();
            assertThat(qmp.waitForEvent("RESUME", Duration.ofSeconds(10)).get("event").stringValue()).isEqualTo("RESUME");
            assertThat(seen).containsExactly("RESUME");
        }
    }

    @Test
    void waitingForAnEventIsBounded() throws Exception {
        try (QmpClient qmp = connect()) {
            qmp.negotiate();
            assertThatThrownBy(() -> qmp.waitForEvent("NEVER", Duration.ofMillis(200)))
                    .isInstanceOf(TimeoutException.class).hasMessageContaining("NEVER");
        }
    }

    @Test
    void outOfBandWhileTheMainLoopIsBusy() throws Exception {
        try (QmpClient qmp = connect()) {
            qmp.negotiateOob();
            CountDownLatch started = new CountDownLatch(1);
            CountDownLatch release = vm.blockMainLoop(started);
            assertThat(started.await(10, TimeUnit.SECONDS)).isTrue();
            CompletableFuture<ObjectNode> inBand = qmp.send("execute", "query-status", null);
            JsonNode oob = qmp.executeOob("x-oob-echo", QmpClient.args("x", "o"));
            assertThat(oob.get("thread").stringValue()).isEqualTo("qmp-io");
            assertThat(inBand).isNotDone();
            release.countDown();
            assertThat(inBand.get(10, TimeUnit.SECONDS).get("return").get("status").stringValue()).isEqualTo("running");
        }
    }

    @Test
    void repliesAreMatchedByIdAcrossThreads() throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(4);
        try (QmpClient qmp = connect()) {
            qmp.negotiateOob();
            List<Future<String>> results = new ArrayList<>();
            for (int i = 0; i < 100; i++) {
                String x = "v" + i;
                boolean oob = i % 3 == 0;
                results.add(pool.submit(() -> (oob ? qmp.executeOob("x-oob-echo", QmpClient.args("x", x))
                        : qmp.execute("x-echo", QmpClient.args("x", x))).get("x").stringValue()));
            }
            for (int i = 0; i < 100; i++) {
                assertThat(results.get(i).get(10, TimeUnit.SECONDS)).isEqualTo("v" + i);
            }
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void aLostConnectionFailsCallsInsteadOfHangingThem() throws Exception {
        try (QmpClient qmp = connect()) {
            qmp.negotiate();
            CountDownLatch started = new CountDownLatch(1);
            CountDownLatch release = vm.blockMainLoop(started);
            assertThat(started.await(10, TimeUnit.SECONDS)).isTrue();
            CompletableFuture<ObjectNode> pending = qmp.send("execute", "query-status", null);
            server.close();
            await().atMost(Duration.ofSeconds(10)).until(() -> !qmp.isConnected());
            assertThat(pending).isCompletedExceptionally();
            assertThatThrownBy(() -> qmp.execute("query-name")).isInstanceOf(IOException.class);
            release.countDown();
        }
    }

    @Test
    void connectingWhereNobodyListensFailsClearly() {
        assertThatThrownBy(() -> QmpClient.connect("unix:" + dir.resolve("nobody.sock")))
                .isInstanceOf(IOException.class).hasMessageContaining("nobody.sock");
    }

    @Test
    void tcpWorksToo() throws Exception {
        var a = (java.net.InetSocketAddress) server.listen("tcp::0");
        try (QmpClient qmp = QmpClient.connect("tcp:127.0.0.1:" + a.getPort())) {
            qmp.negotiate();
            assertThat(qmp.execute("query-version").get("qemu").get("major").intValue()).isEqualTo(7);
        }
    }
}
