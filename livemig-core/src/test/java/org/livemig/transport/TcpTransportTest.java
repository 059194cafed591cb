package org.livemig.transport;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.StandardSocketOptions;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

class TcpTransportTest extends TransportContractTest {

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

    @Test
    void portZeroResolvesToTheBoundPortAndDescriptionsNameBothEnds() throws Exception {
        try (MigrationListener l = Transports.listen(MigrationAddress.parse("tcp:127.0.0.1:0"))) {
            var bound = (MigrationAddress.Tcp) l.boundAddress();
            assertThat(bound.host()).isEqualTo("127.0.0.1");
            assertThat(bound.port()).isBetween(1, 65535);
            var accepted = TestThreads.start("test-accept", l::accept);
            try (MigrationConnection src = Transports.connect(bound, CONNECT_TIMEOUT);
                    MigrationConnection dst = accepted.awaitResult()) {
                SocketChannel out = (SocketChannel) src.out();
                int localPort = ((InetSocketAddress) out.getLocalAddress()).getPort();
                assertThat(src.description()).isEqualTo("tcp:127.0.0.1:" + localPort + " -> 127.0.0.1:" + bound.port());
                assertThat(dst.description()).isEqualTo("tcp:127.0.0.1:" + bound.port() + " <- 127.0.0.1:" + localPort);
                assertThat(out.getOption(StandardSocketOptions.TCP_NODELAY)).isTrue();
                assertThat(((SocketChannel) dst.out()).getOption(StandardSocketOptions.TCP_NODELAY)).isTrue();
                assertThat(out.isBlocking()).isTrue();
            }
        }
    }

    @Test
    void emptyHostListensOnAllAddressesAndConnectsToLoopback() throws Exception {
        try (MigrationListener l = Transports.listen(MigrationAddress.parse("tcp::0"))) {
            var bound = (MigrationAddress.Tcp) l.boundAddress();
            assertThat(bound.host()).isEmpty();
            var accepted = TestThreads.start("test-accept", l::accept);
            try (MigrationConnection src = Transports.connect(bound, CONNECT_TIMEOUT);
                    MigrationConnection dst = accepted.awaitResult()) {
                assertThat(src.description()).contains(" -> ");
                assertThat(dst.description()).startsWith("tcp:");
            }
        }
    }

    @Test
    void oneListenerAcceptsSeveralConnections() throws Exception {
        try (MigrationListener l = Transports.listen(MigrationAddress.parse("tcp:127.0.0.1:0"))) {
            for (int i = 0; i < 3; i++) {
                var accepted = TestThreads.start("test-accept-" + i, l::accept);
                try (MigrationConnection src = Transports.connect(l.boundAddress(), CONNECT_TIMEOUT);
                        MigrationConnection dst = accepted.awaitResult()) {
                    src.out().write(java.nio.ByteBuffer.wrap(new byte[] {(byte) i}));
                    var b = java.nio.ByteBuffer.allocate(1);
                    assertThat(dst.in().read(b)).isEqualTo(1);
                    assertThat(b.get(0)).isEqualTo((byte) i);
                }
            }
        }
    }

    @Test
    void refusedConnectionNamesTheAddress() throws Exception {
        int port;
        try (ServerSocketChannel s = ServerSocketChannel.open().bind(new InetSocketAddress("127.0.0.1", 0))) {
            port = ((InetSocketAddress) s.getLocalAddress()).getPort();
        }
        MigrationAddress addr = MigrationAddress.parse("tcp:127.0.0.1:" + port);
        assertThatThrownBy(() -> Transports.connect(addr, CONNECT_TIMEOUT))
                .isInstanceOf(IOException.class)
                .hasMessageStartingWith("cannot connect to tcp:127.0.0.1:" + port + ": ")
                .hasMessageContainingAll("refused");
    }

    @Test
    void portZeroAndUnknownHostsAreRejectedOnConnect() {
        assertThatThrownBy(() -> Transports.connect(MigrationAddress.parse("tcp:127.0.0.1:0"), CONNECT_TIMEOUT))
                .isInstanceOf(IOException.class).hasMessageContaining("port 0 is not a destination");
        assertThatThrownBy(() -> Transports.connect(MigrationAddress.parse("tcp:no-such-host.invalid:1"), CONNECT_TIMEOUT))
                .isInstanceOf(IOException.class)
                .hasMessageContaining("cannot connect to tcp:no-such-host.invalid:1: unknown host 'no-such-host.invalid'");
    }

    @Test
    void listeningOnAPortInUseFailsAtOnce() throws Exception {
        try (MigrationListener l = Transports.listen(MigrationAddress.parse("tcp:127.0.0.1:0"))) {
            MigrationAddress taken = l.boundAddress();
            assertThatThrownBy(() -> Transports.listen(taken))
                    .isInstanceOf(IOException.class).hasMessageStartingWith("cannot listen on " + taken.uri() + ": ");
        }
    }

    @Test
    void connectGivesUpAfterItsTimeout() throws Exception {
        // A listener that never accepts, with a full accept queue: Linux then drops new SYNs, so
        // the next connect hangs until its timeout. Other kernels may refuse or accept instead.
        try (ServerSocketChannel s = ServerSocketChannel.open()) {
            s.bind(new InetSocketAddress("127.0.0.1", 0), 1);
            MigrationAddress addr = new MigrationAddress.Tcp("127.0.0.1", ((InetSocketAddress) s.getLocalAddress()).getPort());
            List<MigrationConnection> filling = new ArrayList<>();
            try {
                for (int i = 0; i < 8; i++) {
                    try {
                        filling.add(Transports.connect(addr, Duration.ofMillis(300)));
                    } catch (IOException e) {
                        assertThat(e).hasMessage("cannot connect to " + addr.uri() + ": timed out after 300 ms");
                        return;
                    }
                }
                Assumptions.abort("this kernel accepted every connection into a full backlog");
            } finally {
                for (MigrationConnection c : filling) {
                    c.close();
                }
            }
        }
    }
}
