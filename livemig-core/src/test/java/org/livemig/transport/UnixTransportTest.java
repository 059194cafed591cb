package org.livemig.transport;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.util.Set;
import org.junit.jupiter.api.Test;

class UnixTransportTest extends TransportContractTest {

    @Override
    MigrationAddress listenAddress(Path dir) {
        return new MigrationAddress.Unix(dir.resolve("mig.sock"));
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
    void socketFileIsMode0600AndRemovedOnClose() throws Exception {
        Path sock = dir.resolve("mode.sock");
        MigrationListener l = Transports.listen(new MigrationAddress.Unix(sock));
        assertThat(l.boundAddress()).isEqualTo(new MigrationAddress.Unix(sock));
        assertThat(SocketListener.isSocket(sock)).isTrue();
        assertThat(Files.getPosixFilePermissions(sock))
                .isEqualTo(Set.of(PosixFilePermission.OWNER_READ, PosixFilePermission.OWNER_WRITE));
        var accepted = TestThreads.start("test-accept", l::accept);
        try (MigrationConnection src = Transports.connect(l.boundAddress(), CONNECT_TIMEOUT);
                MigrationConnection dst = accepted.awaitResult()) {
            assertThat(src.out()).isInstanceOf(SocketChannel.class);
            assertThat(src.description()).isEqualTo("unix:" + sock + " (connected)");
            assertThat(dst.description()).isEqualTo("unix:" + sock + " (accepted)");
        }
        l.close();
        assertThat(sock).doesNotExist();
        l.close();
    }

    @Test
    void staleSocketFileIsReplaced() throws Exception {
        Path sock = dir.resolve("stale.sock");
        try (ServerSocketChannel old = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            old.bind(UnixDomainSocketAddress.of(sock));
        }
        assertThat(sock).exists(); // closing a unix server channel leaves its file behind
        try (MigrationListener l = Transports.listen(new MigrationAddress.Unix(sock))) {
            var accepted = TestThreads.start("test-accept", l::accept);
            try (MigrationConnection src = Transports.connect(l.boundAddress(), CONNECT_TIMEOUT)) {
                accepted.awaitResult().close();
            }
        }
        assertThat(sock).doesNotExist();
    }

    @Test
    void aPathThatIsNotASocketIsLeftAlone() throws Exception {
        Path file = dir.resolve("precious.txt");
        Files.writeString(file, "keep me");
        assertThatThrownBy(() -> Transports.listen(new MigrationAddress.Unix(file)))
                .isInstanceOf(IOException.class)
                .hasMessage("cannot listen on unix:" + file + ": the path exists and is not a socket");
        assertThat(file).hasContent("keep me");
    }

    @Test
    void aSocketSomeoneListensOnIsNotTaken() throws Exception {
        Path sock = dir.resolve("live.sock");
        try (MigrationListener first = Transports.listen(new MigrationAddress.Unix(sock))) {
            assertThatThrownBy(() -> Transports.listen(new MigrationAddress.Unix(sock)))
                    .isInstanceOf(IOException.class)
                    .hasMessage("cannot listen on unix:" + sock + ": another process is listening on it");
            assertThat(sock).exists();
            // the first listener still works
            var accepted = TestThreads.start("test-accept", first::accept);
            try (MigrationConnection src = Transports.connect(first.boundAddress(), CONNECT_TIMEOUT)) {
                accepted.awaitResult().close();
            }
        }
    }

    @Test
    void closeLeavesASocketFileThatIsNoLongerItsOwn() throws Exception {
        Path sock = dir.resolve("replaced.sock");
        MigrationListener l = Transports.listen(new MigrationAddress.Unix(sock));
        Files.delete(sock);
        Files.writeString(sock, "someone else's");
        l.close();
        assertThat(sock).hasContent("someone else's");
    }

    @Test
    void connectToAMissingSocketNamesThePath() {
        Path sock = dir.resolve("nobody.sock");
        assertThatThrownBy(() -> Transports.connect(new MigrationAddress.Unix(sock), CONNECT_TIMEOUT))
                .isInstanceOf(IOException.class)
                .hasMessageStartingWith("cannot connect to unix:" + sock + ": ");
    }
}
