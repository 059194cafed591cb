package org.livemig.transport;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HexFormat;
import java.util.Map;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.livemig.security.ObjectOptions;
import org.livemig.security.ObjectRegistry;
import org.livemig.testing.TlsFixtures;
import org.livemig.transport.tls.TlsChannelSecurity;
import org.livemig.transport.tls.TlsCredentials;
import org.livemig.transport.tls.TlsEndpoint;
import org.livemig.transport.tls.TlsHandshakeException;

/**
 * The transport contract over TLS, once with X.509 (the JDK's engine) and once with a
 * pre-shared key (Bouncy Castle's): bytes intact and in order through gathering writes, both
 * directions at once, shutdown unblocking a blocked reader and writer; and a handshake that gets
 * no answer fails within its timeout.
 */
class TlsTransportContractTest {

    abstract static class OverTls extends TransportContractTest {
        ChannelSecurity client;
        ChannelSecurity server;

        abstract void credentials(Path dir) throws Exception;

        @Override
        MigrationAddress listenAddress(Path dir) {
            return MigrationAddress.parse("tcp:127.0.0.1:0");
        }

        @Override
        MigrationAddress sourceAddress(Path dir, MigrationAddress bound) {
            return bound;
        }

        @Override
        boolean streaming() {
            return true;
        }

        @Override
        Endpoints openStreaming() throws Exception {
            if (client == null) {
                credentials(dir);
            }
            MigrationListener l = closeLater(Transports.listen(listenAddress(dir)));
            var accepted = TestThreads.start("test-accept", () -> server.server(l.accept()));
            MigrationAddress to = sourceAddress(dir, l.boundAddress());
            MigrationConnection src = closeLater(client.client(Transports.connect(to, CONNECT_TIMEOUT), to));
            MigrationConnection dst = closeLater(accepted.awaitResult());
            assertThat(src.description()).endsWith("(TLS)");
            return new Endpoints(src, dst);
        }

        @Test
        void aHandshakeWithoutAnswerFailsWithinItsTimeout() throws Exception {
            credentials(dir);
            MigrationListener l = closeLater(Transports.listen(listenAddress(dir)));
            var accepted = TestThreads.start("test-accept-silent", l::accept); // accepts, never answers
            ChannelSecurity quick = quick();
            long t0 = System.nanoTime();
            assertThatThrownBy(() -> quick.client(Transports.connect(l.boundAddress(), CONNECT_TIMEOUT), l.boundAddress()))
                    .isInstanceOfSatisfying(TlsHandshakeException.class,
                            e -> assertThat(e.reason()).isEqualTo(TlsHandshakeException.Reason.TIMEOUT))
                    .hasMessageContaining("timed out after 500 ms");
            assertThat(Duration.ofNanos(System.nanoTime() - t0)).isLessThan(Duration.ofSeconds(5));
            closeLater(accepted.awaitResult());
        }

        @Test
        void wrongEndpointIsRefusedWithQemusMessage() throws Exception {
            credentials(dir);
            MigrationListener l = closeLater(Transports.listen(listenAddress(dir)));
            var accepted = TestThreads.start("test-accept", l::accept);
            assertThatThrownBy(() -> server.client(Transports.connect(l.boundAddress(), CONNECT_TIMEOUT), l.boundAddress()))
                    .hasMessage("Expected TLS credentials for a client endpoint");
            closeLater(accepted.awaitResult());
        }

        abstract ChannelSecurity quick() throws Exception;

        /** As the contract's, with lengths known to the readers: TLS here has no half-close. */
        @Override
        @Test
        void bothDirectionsCarryBytesAtOnce() throws Exception {
            Endpoints e = openStreaming();
            byte[] forth = randomBytes(7, 3 << 20);
            byte[] back = randomBytes(8, 1 << 20);
            var fwdReader = TestThreads.start("test-fwd-reader", () -> readExactly(e.destination(), forth.length));
            var backReader = TestThreads.start("test-back-reader", () -> readExactly(e.source(), back.length));
            var backWriter = TestThreads.start("test-back-writer", () -> {
                writeGathering((java.nio.channels.GatheringByteChannel) e.destination().out(), back, 5);
                return null;
            });
            writeGathering((java.nio.channels.GatheringByteChannel) e.source().out(), forth, 6);
            backWriter.awaitResult();
            assertThat(fwdReader.awaitResult()).isEqualTo(forth);
            assertThat(backReader.awaitResult()).isEqualTo(back);
        }

        private static byte[] readExactly(MigrationConnection c, int n) throws java.io.IOException {
            ByteBuffer b = ByteBuffer.allocate(n);
            while (b.hasRemaining()) {
                if (c.in().read(b) < 0) {
                    throw new java.io.EOFException("after " + b.position() + " of " + n + " bytes");
                }
            }
            return b.array();
        }
    }

    @Nested
    class X509 extends OverTls {
        private TlsCredentials clientCreds;

        @Override
        void credentials(Path dir) throws Exception {
            TlsFixtures.Ca ca = TlsFixtures.ca("contract CA");
            ObjectRegistry r = new ObjectRegistry();
            add(r, "tls-creds-x509,id=s,endpoint=server,verify-peer=on,dir=" + TlsFixtures.serverDir(dir.resolve("s"), ca, "127.0.0.1", null));
            add(r, "tls-creds-x509,id=c,endpoint=client,dir=" + TlsFixtures.clientDir(dir.resolve("c"), ca, ca, TlsFixtures.FRIENDLY_CLIENT));
            server = r.tls("s", null, null, TlsEndpoint.SERVER, Duration.ofSeconds(10), () -> true);
            client = r.tls("c", null, null, TlsEndpoint.CLIENT, Duration.ofSeconds(10), () -> true);
            clientCreds = ((TlsChannelSecurity) client).credentials();
        }

        @Override
        ChannelSecurity quick() throws Exception {
            return TlsChannelSecurity.of(clientCreds, null, null, Duration.ofMillis(500));
        }
    }

    @Nested
    class Psk extends OverTls {
        @Override
        void credentials(Path dir) throws Exception {
            String key = TlsFixtures.pskDir(dir.resolve("c"), "qemu");
            Files.createDirectories(dir.resolve("s"));
            Files.writeString(dir.resolve("s/keys.psk"), "other:00ff\nqemu:" + key + "\n");
            ObjectRegistry r = new ObjectRegistry();
            add(r, "tls-creds-psk,id=s,endpoint=server,dir=" + dir.resolve("s"));
            add(r, "tls-creds-psk,id=c,endpoint=client,dir=" + dir.resolve("c"));
            server = r.tls("s", null, null, TlsEndpoint.SERVER, Duration.ofSeconds(10), () -> true);
            client = r.tls("c", null, null, TlsEndpoint.CLIENT, Duration.ofSeconds(10), () -> true);
        }

        @Override
        ChannelSecurity quick() {
            try {
                return TlsChannelSecurity.of(new TlsCredentials.Psk(TlsEndpoint.CLIENT, "qemu",
                        Map.of("qemu", HexFormat.of().parseHex("00112233"))), null, null, Duration.ofMillis(500));
            } catch (java.io.IOException e) {
                throw new AssertionError(e);
            }
        }

        @Test
        void aSmallReadStillGetsEveryByte() throws Exception {
            Endpoints e = openStreaming();
            e.source().out().write(ByteBuffer.wrap("QEVM".getBytes()));
            ByteBuffer one = ByteBuffer.allocate(1);
            StringBuilder got = new StringBuilder();
            for (int i = 0; i < 4; i++) {
                one.clear();
                assertThat(e.destination().in().read(one)).isEqualTo(1);
                got.append((char) one.get(0));
            }
            assertThat(got).hasToString("QEVM");
        }
    }

    static void add(ObjectRegistry r, String spec) throws Exception {
        ObjectOptions o = ObjectOptions.parse(spec);
        r.add(o.type(), o.props());
    }
}
