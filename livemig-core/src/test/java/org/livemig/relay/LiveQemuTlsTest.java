package org.livemig.relay;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.livemig.analyze.Analysis;
import org.livemig.analyze.Analyzer;
import org.livemig.monitor.QmpClient;
import org.livemig.security.ObjectOptions;
import org.livemig.security.ObjectRegistry;
import org.livemig.testing.HostTools;
import org.livemig.testing.TlsFixtures;
import org.livemig.transport.ChannelSecurity;
import org.livemig.transport.MigrationAddress;
import org.livemig.transport.tls.TlsChannelSecurity;
import org.livemig.transport.tls.TlsEndpoint;
import tools.jackson.databind.JsonNode;

/**
 * A real QEMU 7.2 (GnuTLS) migrates over TLS into livemig's live analyzer, as {@code livemig
 * analyze --listen ... --object ... --tls-creds tls0} takes it: with X.509 credentials and with a
 * pre-shared key (TLS 1.3 external PSK, as GnuTLS negotiates it), and fails on both sides with a
 * CA the source does not trust or a key that differs. Skipped without QEMU.
 */
class LiveQemuTlsTest {
    private static final Duration WAIT = Duration.ofSeconds(90);
    private static TlsFixtures.Ca ca;
    private static TlsFixtures.Ca otherCa;

    @TempDir
    Path dir;

    private Process qemu;
    private QmpClient qmp;
    private HostTools.Qemu started;

    @BeforeAll
    static void cas() throws Exception {
        ca = TlsFixtures.ca("livemig interop CA");
        otherCa = TlsFixtures.ca("untrusted CA");
    }

    private void startQemu(String object) throws Exception {
        org.junit.jupiter.api.Assumptions.assumeTrue(HostTools.onPath("qemu-system-x86_64") != null, "qemu-system-x86_64 is not installed");
        Path sock = dir.resolve("qemu.sock");
        Path log = dir.resolve("qemu.log");
        Process p = new ProcessBuilder("qemu-system-x86_64", "-accel", "tcg", "-M", "pc", "-m", "32M", "-nodefaults",
                "-display", "none", "-S", "-object", object, "-qmp", "unix:" + sock + ",server=on,wait=off")
                .redirectErrorStream(true).redirectOutput(log.toFile()).start();
        await().atMost(WAIT).until(() -> Files.exists(sock) || !p.isAlive());
        // QEMU installed but refusing our credentials is a failure, not a skip
        assertThat(p.isAlive()).as(() -> HostTools.readQuietly(log)).isTrue();
        started = new HostTools.Qemu(p, sock, log);
        qemu = started.process();
        qmp = QmpClient.connect("unix:" + started.qmpSocket());
        qmp.negotiate();
        qmp.execute("migrate-set-parameters", QmpClient.args("tls-creds", "tls0"));
    }

    @AfterEach
    void stop() throws Exception {
        if (qmp != null) {
            qmp.close();
        }
        if (qemu != null) {
            qemu.destroy();
            if (!qemu.waitFor(10, TimeUnit.SECONDS)) {
                qemu.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            }
        }
    }

    private static ChannelSecurity server(String object) throws Exception {
        ObjectRegistry r = new ObjectRegistry();
        ObjectOptions o = ObjectOptions.parse(object);
        r.add(o.type(), o.props());
        return r.tls("tls0", null, null, TlsEndpoint.SERVER, TlsChannelSecurity.DEFAULT_HANDSHAKE_TIMEOUT, () -> true);
    }

    /** Runs the analyzer on a free port, has QEMU migrate to it, and returns the analysis (or its failure). */
    private CompletableFuture<Analysis> migrateInto(ChannelSecurity security) throws Exception {
        AtomicReference<String> listening = new AtomicReference<>();
        CompletableFuture<Analysis> result = new CompletableFuture<>();
        Thread.ofPlatform().name("test-analyze").daemon(true).start(() -> {
            try {
                result.complete(LiveAnalyzer.accept(MigrationAddress.parse("tcp:127.0.0.1:0"), WAIT,
                        Analyzer.Options.DEFAULT.withoutRam(), line -> {
                            if (line.startsWith("listening on ")) {
                                listening.set(line.substring("listening on ".length()));
                            }
                        }, security));
            } catch (Throwable e) {
                result.completeExceptionally(e);
            }
        });
        await().atMost(WAIT).until(() -> listening.get() != null || result.isDone());
        qmp.execute("migrate", QmpClient.args("uri", listening.get()));
        return result;
    }

    private JsonNode awaitQemuFinal() {
        AtomicReference<JsonNode> q = new AtomicReference<>();
        await().atMost(WAIT).until(() -> {
            JsonNode s = qmp.execute("query-migrate", null);
            q.set(s);
            String st = s.path("status").asString("");
            return st.equals("completed") || st.equals("failed");
        });
        return q.get();
    }

    @Test
    void qemuX509SourceIsDecodedByTheTlsAnalyzer() throws Exception {
        Path server = TlsFixtures.serverDir(dir.resolve("server"), ca, "127.0.0.1", null);
        Path client = TlsFixtures.clientDir(dir.resolve("client"), ca, ca, TlsFixtures.FRIENDLY_CLIENT);
        startQemu("tls-creds-x509,id=tls0,endpoint=client,dir=" + client);
        CompletableFuture<Analysis> analysis = migrateInto(server("tls-creds-x509,id=tls0,endpoint=server,verify-peer=on,dir=" + server));
        try (Analysis a = analysis.get(WAIT.toSeconds(), TimeUnit.SECONDS)) {
            assertThat(a.state().toString()).contains("ram");
        }
        assertThat(awaitQemuFinal().get("status").asString()).as(started.logText()).isEqualTo("completed");
    }

    @Test
    void qemuPskSourceIsDecodedByTheTlsAnalyzer() throws Exception {
        String key = TlsFixtures.pskDir(dir.resolve("psk-client"), "qemu");
        Files.createDirectories(dir.resolve("psk-server"));
        Files.writeString(dir.resolve("psk-server/keys.psk"), "qemu:" + key + "\n");
        startQemu("tls-creds-psk,id=tls0,endpoint=client,username=qemu,dir=" + dir.resolve("psk-client"));
        CompletableFuture<Analysis> analysis = migrateInto(server("tls-creds-psk,id=tls0,endpoint=server,dir=" + dir.resolve("psk-server")));
        try (Analysis a = analysis.get(WAIT.toSeconds(), TimeUnit.SECONDS)) {
            assertThat(a.state().toString()).contains("ram");
        }
        assertThat(awaitQemuFinal().get("status").asString()).as(started.logText()).isEqualTo("completed");
    }

    @Test
    void qemuSourceTrustingAnotherCaFailsOnBothSides() throws Exception {
        Path server = TlsFixtures.serverDir(dir.resolve("server"), ca, "127.0.0.1", null);
        // QEMU checks its own certificate against its CA at start: this client has none
        Path client = TlsFixtures.clientDir(dir.resolve("client"), otherCa, otherCa, null);
        startQemu("tls-creds-x509,id=tls0,endpoint=client,dir=" + client);
        CompletableFuture<Analysis> analysis = migrateInto(server("tls-creds-x509,id=tls0,endpoint=server,verify-peer=off,dir=" + server));
        JsonNode q = awaitQemuFinal();
        assertThat(q.get("status").asString()).isEqualTo("failed");
        assertThat(q.get("error-desc").asString()).contains("known issuer");
        assertThatThrownBy(() -> analysis.get(WAIT.toSeconds(), TimeUnit.SECONDS))
                .hasMessageContaining("may have rejected this side's certificate");
    }

    @Test
    void qemuSourceWithAnotherPskFailsOnBothSides() throws Exception {
        TlsFixtures.pskDir(dir.resolve("psk-client"), "qemu");
        TlsFixtures.pskDir(dir.resolve("psk-server"), "qemu");
        startQemu("tls-creds-psk,id=tls0,endpoint=client,username=qemu,dir=" + dir.resolve("psk-client"));
        CompletableFuture<Analysis> analysis = migrateInto(server("tls-creds-psk,id=tls0,endpoint=server,dir=" + dir.resolve("psk-server")));
        JsonNode q = awaitQemuFinal();
        assertThat(q.get("status").asString()).isEqualTo("failed");
        assertThat(q.get("error-desc").asString()).contains("TLS handshake failed");
        assertThatThrownBy(() -> analysis.get(WAIT.toSeconds(), TimeUnit.SECONDS)).hasMessageContaining("PSK mismatch");
    }
}
