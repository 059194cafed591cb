package org.livemig.monitor;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.livemig.security.ObjectRegistry;
import org.livemig.testing.TlsFixtures;
import org.livemig.transport.ChannelSecurity;
import org.livemig.transport.tls.TlsEndpoint;

/**
 * QMP over TLS (QEMU's {@code -chardev socket,...,tls-creds=ID} for a monitor): the greeting and
 * commands pass once the handshake is done, on qmp-io beside plain sessions; a client with an
 * untrusted CA, a plain client, or a client without the certificate the server requires gets no
 * session; PSK works too.
 */
class QmpTlsTest {
    private static final Duration T = Duration.ofSeconds(10);

    @TempDir
    Path dir;
    private TestMachine vm;
    private QmpServer server;
    private final ObjectRegistry objects = new ObjectRegistry();

    @BeforeEach
    void start() throws Exception {
        vm = new TestMachine("running");
        server = QmpServer.builder(vm).build();
        RunStateCommands.register(server, vm);
    }

    @AfterEach
    void stop() throws InterruptedException {
        server.close();
        vm.close();
    }

    private ChannelSecurity security(String id, TlsEndpoint side) throws Exception {
        return objects.tls(id, null, null, side, T, () -> true);
    }

    private QmpAddress tlsListener(String serverId) throws Exception {
        InetSocketAddress a = (InetSocketAddress) server.listen(QmpAddress.parse("tcp:127.0.0.1:0"), security(serverId, TlsEndpoint.SERVER));
        return QmpAddress.parse("tcp:127.0.0.1:" + a.getPort());
    }

    @Test
    void x509MonitorAnswersATrustedClientAndNoOneElse() throws Exception {
        TlsFixtures.Ca ca = TlsFixtures.ca("QMP CA");
        TlsFixtures.Ca other = TlsFixtures.ca("other CA");
        objects.add("tls-creds-x509", Map.of("id", "srv", "endpoint", "server", "verify-peer", true,
                "dir", TlsFixtures.serverDir(dir.resolve("srv"), ca, "127.0.0.1", null).toString()));
        objects.add("tls-creds-x509", Map.of("id", "cli", "endpoint", "client",
                "dir", TlsFixtures.clientDir(dir.resolve("cli"), ca, ca, TlsFixtures.FRIENDLY_CLIENT).toString()));
        objects.add("tls-creds-x509", Map.of("id", "anon", "endpoint", "client",
                "dir", TlsFixtures.clientDir(dir.resolve("anon"), ca, ca, null).toString()));
        objects.add("tls-creds-x509", Map.of("id", "stranger", "endpoint", "client",
                "dir", TlsFixtures.clientDir(dir.resolve("stranger"), other, other, TlsFixtures.FRIENDLY_CLIENT).toString()));
        QmpAddress addr = tlsListener("srv");
        server.listen("unix:" + dir.resolve("plain.sock"));

        try (QmpClient c = QmpClient.connect(addr, T, security("cli", TlsEndpoint.CLIENT))) {
            c.negotiate();
            assertThat(c.execute("query-status").get("status").asString()).isEqualTo("running");
            // a plain session on the other listener at the same time
            try (QmpClient plain = QmpClient.connect("unix:" + dir.resolve("plain.sock"))) {
                plain.negotiate();
                assertThat(plain.execute("query-status").get("running").asBoolean()).isTrue();
            }
            assertThat(c.execute("query-name")).isNotNull();
        }
        assertThatThrownBy(() -> QmpClient.connect(addr, T, security("stranger", TlsEndpoint.CLIENT)))
                .hasMessageContaining("known issuer");
        assertThatThrownBy(() -> QmpClient.connect(addr, Duration.ofSeconds(2)))
                .as("a plain client gets no greeting from a TLS monitor").isInstanceOf(java.io.IOException.class);
        assertThatThrownBy(() -> {
            try (QmpClient c = QmpClient.connect(addr, T, security("anon", TlsEndpoint.CLIENT))) {
                c.negotiate();
            }
        }).as("verify-peer: a client without a certificate").isInstanceOf(java.io.IOException.class);
    }

    @Test
    void pskMonitor() throws Exception {
        String key = TlsFixtures.pskDir(dir.resolve("c"), "qemu");
        Files.createDirectories(dir.resolve("s"));
        Files.writeString(dir.resolve("s/keys.psk"), "qemu:" + key + "\n");
        TlsFixtures.pskDir(dir.resolve("wrong"), "qemu");
        objects.add("tls-creds-psk", Map.of("id", "srv", "endpoint", "server", "dir", dir.resolve("s").toString()));
        objects.add("tls-creds-psk", Map.of("id", "cli", "endpoint", "client", "dir", dir.resolve("c").toString()));
        objects.add("tls-creds-psk", Map.of("id", "wrong", "endpoint", "client", "dir", dir.resolve("wrong").toString()));
        QmpAddress addr = tlsListener("srv");
        try (QmpClient c = QmpClient.connect(addr, T, security("cli", TlsEndpoint.CLIENT))) {
            c.negotiate();
            assertThat(c.execute("query-status").get("status").asString()).isEqualTo("running");
        }
        assertThatThrownBy(() -> QmpClient.connect(addr, T, security("wrong", TlsEndpoint.CLIENT)))
                .hasMessageContaining("PSK mismatch");
    }
}
