package org.livemig.transport;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;

class ExecTransportTest extends TransportContractTest {

    @Override
    MigrationAddress listenAddress(Path dir) {
        return new MigrationAddress.Exec("cat '" + dir.resolve("exec.mig") + "'");
    }

    @Override
    MigrationAddress sourceAddress(Path dir, MigrationAddress bound) {
        return new MigrationAddress.Exec("cat > '" + dir.resolve("exec.mig") + "'");
    }

    @Override
    boolean streaming() {
        return false;
    }

    @Override
    MigrationConnection idleReader() throws Exception {
        // a shell that runs a child which neither writes nor exits: shutdown must kill both
        return withChildStarted(closeLater(Transports.listen(new MigrationAddress.Exec("sleep 60; echo late"))).accept());
    }

    @Override
    MigrationConnection stuckWriter() throws Exception {
        return withChildStarted(Transports.connect(new MigrationAddress.Exec("sleep 60; cat > /dev/null"), CONNECT_TIMEOUT));
    }

    /** Waits until the shell has forked its child (a shutdown during the fork can miss the child). */
    private static MigrationConnection withChildStarted(MigrationConnection c) {
        Process p = ((ExecConnection) c).process();
        await().atMost(TestThreads.BOUND).until(() -> p.descendants().findAny().isPresent());
        return c;
    }

    @Test
    void shutdownKillsTheCommandAndItsChildren() throws Exception {
        ExecConnection c = (ExecConnection) idleReader();
        closeLater(c);
        await().atMost(TestThreads.BOUND).until(() -> c.process().descendants().findAny().isPresent());
        List<ProcessHandle> tree = c.process().descendants().toList();
        c.shutdown();
        await().atMost(TestThreads.BOUND).until(() -> !c.process().isAlive() && tree.stream().noneMatch(ProcessHandle::isAlive));
    }

    @Test
    void aFailingWriterCommandIsReportedWithItsStatusAndError() throws Exception {
        Path bad = dir.resolve("no/such/dir/out.mig");
        MigrationConnection c = Transports.connect(new MigrationAddress.Exec("cat > '" + bad + "'"), CONNECT_TIMEOUT);
        try {
            c.out().write(ByteBuffer.wrap(new byte[16]));
        } catch (IOException e) {
            // the shell may have exited already: the write then fails, naming the command
            assertThat(e).hasMessageContaining("writing to exec:cat > '" + bad + "' failed");
        }
        assertThatThrownBy(c::close)
                .isInstanceOf(IOException.class)
                .hasMessageContaining("exec:cat > '" + bad + "' exited with status ")
                .hasMessageContaining("no/such/dir/out.mig");
    }

    @Test
    void aFailingReaderCommandIsReportedAfterEndOfStream() throws Exception {
        Path missing = dir.resolve("missing.mig");
        MigrationConnection c = Transports.listen(new MigrationAddress.Exec("cat '" + missing + "'")).accept();
        assertThat(c.in().read(ByteBuffer.allocate(10))).isEqualTo(-1);
        assertThatThrownBy(c::close)
                .isInstanceOf(IOException.class)
                .hasMessageContaining("exited with status 1")
                .hasMessageContaining("missing.mig");
    }

    @Test
    void closeKillsACommandThatDoesNotExitInTime() throws Exception {
        MigrationConnection c = Transports.connect(new MigrationAddress.Exec("cat > /dev/null; sleep 60"),
                CONNECT_TIMEOUT, Duration.ofMillis(200));
        Process p = ((ExecConnection) c).process();
        c.out().write(ByteBuffer.wrap(new byte[] {1, 2, 3}));
        assertThatThrownBy(c::close)
                .isInstanceOf(IOException.class)
                .hasMessageContaining("did not exit within 200 ms after its stream was closed; killed it");
        await().atMost(TestThreads.BOUND).until(() -> !p.isAlive());
    }

    @Test
    void readerClosedEarlyKillsTheCommandWithoutComplaint() throws Exception {
        MigrationConnection c = Transports.listen(new MigrationAddress.Exec("yes")).accept();
        Process p = ((ExecConnection) c).process();
        assertThat(c.in().read(ByteBuffer.allocate(100))).isPositive();
        c.close();
        await().atMost(TestThreads.BOUND).until(() -> !p.isAlive());
    }

    @Test
    void oneDirectionOnlyAndDescriptionsNameTheCommand() throws Exception {
        try (MigrationConnection w = Transports.connect(new MigrationAddress.Exec("cat > /dev/null"), CONNECT_TIMEOUT)) {
            assertThat(w.description()).startsWith("exec:cat > /dev/null (pid ").endsWith(", writing)");
            assertThatThrownBy(() -> w.in().read(ByteBuffer.allocate(1))).isInstanceOf(IOException.class)
                    .hasMessageContaining("has no incoming stream");
        }
        Path f = dir.resolve("two.mig");
        Files.write(f, new byte[] {42});
        MigrationListener l = Transports.listen(new MigrationAddress.Exec("cat '" + f + "'"));
        try (MigrationConnection r = l.accept()) {
            assertThat(r.description()).endsWith(", reading)");
            assertThatThrownBy(() -> r.out().write(ByteBuffer.allocate(1))).isInstanceOf(IOException.class)
                    .hasMessageContaining("has no outgoing stream");
            assertThat(readAll(r.in(), 7)).containsExactly(42);
            assertThatThrownBy(l::accept).hasMessageContaining("has already given its one connection");
        }
    }
}
