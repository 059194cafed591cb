package org.livemig.transport;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

class FileTransportTest extends TransportContractTest {

    @Override
    MigrationAddress listenAddress(Path dir) {
        return new MigrationAddress.File(dir.resolve("vm.mig"));
    }

    @Override
    MigrationAddress sourceAddress(Path dir, MigrationAddress bound) {
        return bound;
    }

    @Override
    boolean streaming() {
        return false;
    }

    @Override
    MigrationListener preparedListener() throws IOException {
        // file: checks at listen that the file exists: create it first, the source truncates it
        Files.write(dir.resolve("vm.mig"), new byte[] {1, 2, 3});
        return super.preparedListener();
    }

    @Override
    MigrationConnection idleReader() {
        return null; // reading a regular file never blocks
    }

    @Override
    MigrationConnection stuckWriter() {
        return null;
    }

    @Test
    void writerIsTheFileChannelAndTruncates() throws Exception {
        Path f = dir.resolve("t.mig");
        Files.write(f, new byte[1000]);
        try (MigrationConnection c = Transports.connect(new MigrationAddress.File(f), CONNECT_TIMEOUT)) {
            assertThat(c.out()).isInstanceOf(FileChannel.class);
            assertThat(c.description()).isEqualTo("file:" + f + " (writing)");
            c.out().write(ByteBuffer.wrap(new byte[] {9, 8, 7}));
            assertThatThrownBy(() -> c.in().read(ByteBuffer.allocate(1)))
                    .isInstanceOf(IOException.class)
                    .hasMessage("file:" + f + " was opened for writing; it has no incoming stream");
        }
        assertThat(Files.readAllBytes(f)).containsExactly(9, 8, 7);
    }

    @Test
    void readerHasNoOutgoingStreamAndGivesOneConnection() throws Exception {
        Path f = dir.resolve("r.mig");
        Files.write(f, new byte[] {5, 6});
        MigrationListener l = Transports.listen(new MigrationAddress.File(f));
        try (MigrationConnection c = l.accept()) {
            assertThat(c.description()).isEqualTo("file:" + f + " (reading)");
            assertThatThrownBy(() -> c.out().write(ByteBuffer.allocate(1)))
                    .isInstanceOf(IOException.class)
                    .hasMessage("file:" + f + " was opened for reading; it has no outgoing stream");
            assertThat(readAll(c.in(), 1)).containsExactly(5, 6);
            assertThatThrownBy(l::accept).isInstanceOf(IOException.class)
                    .hasMessageContaining("has already given its one connection");
        }
        l.close();
        assertThatThrownBy(l::accept).isInstanceOf(IOException.class).hasMessageContaining("is closed");
    }

    @Test
    void errorsSurfaceAtListenAndConnect() throws Exception {
        Path missing = dir.resolve("missing.mig");
        assertThatThrownBy(() -> Transports.listen(new MigrationAddress.File(missing)))
                .isInstanceOf(IOException.class).hasMessage("cannot read file:" + missing + ": no such file");
        assertThatThrownBy(() -> Transports.listen(new MigrationAddress.File(dir)))
                .isInstanceOf(IOException.class).hasMessage("cannot read file:" + dir + ": it is a directory");
        Path noDir = dir.resolve("no/such/dir/x.mig");
        assertThatThrownBy(() -> Transports.connect(new MigrationAddress.File(noDir), CONNECT_TIMEOUT))
                .isInstanceOf(IOException.class)
                .hasMessage("cannot create file:" + noDir + ": no such file or directory");
    }

    @Test
    void shutdownMakesLaterReadsFail() throws Exception {
        Path f = dir.resolve("s.mig");
        Files.write(f, new byte[100]);
        try (MigrationConnection c = Transports.listen(new MigrationAddress.File(f)).accept()) {
            assertThat(c.in().read(ByteBuffer.allocate(10))).isEqualTo(10);
            c.shutdown();
            assertThatThrownBy(() -> c.in().read(ByteBuffer.allocate(10)))
                    .isInstanceOf(IOException.class).hasMessageContaining("was shut down");
        }
    }
}
