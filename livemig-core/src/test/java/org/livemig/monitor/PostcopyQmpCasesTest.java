package org.livemig.monitor;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.livemig.machine.RunState;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * QEMU's postcopy recovery cases over QMP ({@code postcopy/recovery/double-failures/*}): a
 * resume whose connect fails returns the source to postcopy-paused; a recovery whose handshake
 * hangs (each side given a peer that connects and never speaks, as QEMU's test gives each an
 * unrelated socket) is ended on either side by {@code migrate-pause} or {@code yank}, back to
 * postcopy-paused; then a real recovery completes, and every page the destination's guest did not
 * write since the switch equals the source's, with the A-B property intact. The monitors answer
 * throughout.
 */
class PostcopyQmpCasesTest {
    @TempDir
    Path dir;

    private final List<AutoCloseable> open = new ArrayList<>();

    @AfterEach
    void closeAll() throws Exception {
        for (int i = open.size() - 1; i >= 0; i--) {
            open.get(i).close();
        }
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }

    /** A peer that takes connections and never says a word (a wrong channel, a hung handshake). */
    private static final class Silent implements AutoCloseable {
        final ServerSocket server;
        final List<Socket> accepted = new CopyOnWriteArrayList<>();

        Silent() throws IOException {
            server = new ServerSocket(0, 4, InetAddress.getLoopbackAddress());
            Thread.ofPlatform().daemon().name("silent-peer").start(() -> {
                try {
                    while (true) {
                        accepted.add(server.accept());
                    }
                } catch (IOException e) {
                    // closed
                }
            });
        }

        String uri() {
            return "tcp:127.0.0.1:" + server.getLocalPort();
        }

        @Override
        public void close() throws IOException {
            server.close();
            for (Socket s : accepted) {
                s.close();
            }
        }
    }

    private static ObjectNode resumeArgs(String uri) {
        ObjectNode a = QmpClient.args("uri", uri);
        a.put("resume", true);
        return a;
    }

    private static void awaitBoth(QmpVm src, QmpVm dst, String status) {
        src.awaitStatus(status, "failed", "completed");
        dst.awaitStatus(status, "failed", "completed");
    }

    @Test
    void doubleFailuresThenARecoveryCompletes() throws Exception {
        LivemigVm src = LivemigVm.start(dir, LivemigVm.config("src", 16L << 20, "ab:2000").withFill(
                org.livemig.machine.Machine.Fill.RANDOM), RunState.RUNNING);
        open.add(src);
        LivemigVm dst = LivemigVm.start(dir, LivemigVm.config("dst", 16L << 20, "ab:2000"), RunState.INMIGRATE);
        open.add(dst);
        for (QmpVm v : List.of(src, dst)) {
            v.caps("postcopy-ram", "events");
        }
        // Postcopy's background pages at 512 KiB/s: it lasts long enough for every step below.
        src.params("max-bandwidth", 4L << 20, "max-postcopy-bandwidth", 512L << 10);
        String uri = "tcp:127.0.0.1:" + freePort();
        dst.cmd("migrate-incoming", "uri", uri, "exit-on-error", false);
        src.cmd("migrate", "uri", uri);
        src.awaitStatus("active", "failed", "completed");
        src.cmd("migrate-start-postcopy");
        awaitBoth(src, dst, "postcopy-active");
        src.oob("migrate-pause", null);
        awaitBoth(src, dst, "postcopy-paused");

        // 1. A resume whose connect fails: postcopy-recover, then postcopy-paused again.
        int recoversBefore = countStatus(src, "postcopy-recover");
        src.qmp.execute("migrate", resumeArgs("tcp:127.0.0.1:" + freePort()));
        await().atMost(QmpVm.LONG).until(() -> countStatus(src, "postcopy-recover") > recoversBefore
                && src.migrationStatus().equals("postcopy-paused"));
        assertThat(dst.migrationStatus()).isEqualTo("postcopy-paused");

        // 2. Handshakes that hang, on both sides, ended by migrate-pause on the source and yank on
        //    the destination; then again, ended by yank on the source and migrate-pause on the destination.
        try (Silent silent = new Silent()) {
            hangAndEnd(src, dst, silent, "migrate-pause", "yank");
            hangAndEnd(src, dst, silent, "yank", "migrate-pause");
        }

        // 3. A real recovery completes.
        String again = "tcp:127.0.0.1:" + freePort();
        dst.oob("migrate-recover", QmpClient.args("uri", again));
        src.qmp.execute("migrate", resumeArgs(again));
        src.awaitStatus("completed", "failed");
        dst.awaitStatus("completed", "failed");
        assertThat(dst.runState()).isEqualTo("running");
        dst.cmd("stop");
        JsonNode fs = src.qmp.execute("x-livemig-fingerprint", QmpClient.args("pages", true));
        JsonNode fd = dst.qmp.execute("x-livemig-fingerprint", QmpClient.args("pages", true));
        assertThat(fd.get("ab-check").get("ok").asBoolean()).as(fd.get("ab-check").toString()).isTrue();
        assertThat(pagesDiffering(fs, fd)).as("pages the destination's guest did not write").isZero();
    }

    private static int countStatus(QmpVm v, String status) {
        return (int) v.migrationEvents().stream().filter(status::equals).count();
    }

    /**
     * Both sides start a recovery that hangs: the source resumes to a silent peer, the destination
     * listens and a silent client connects to it. Each is then ended by the given command, out of
     * band, and both are postcopy-paused again with their monitors answering.
     */
    private static void hangAndEnd(QmpVm src, QmpVm dst, Silent silent, String onSource, String onDestination)
            throws Exception {
        int accepted = silent.accepted.size();
        src.qmp.execute("migrate", resumeArgs(silent.uri()));
        await().atMost(QmpVm.LONG).until(() -> silent.accepted.size() > accepted);
        String dstUri = "tcp:127.0.0.1:" + freePort();
        dst.oob("migrate-recover", QmpClient.args("uri", dstUri));
        try (Socket client = new Socket()) {
            int port = Integer.parseInt(dstUri.substring(dstUri.lastIndexOf(':') + 1));
            client.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), port));
            awaitBoth(src, dst, "postcopy-recover");
            // Hung: each waits for a peer that says nothing, and its monitor answers meanwhile.
            assertThat(src.runState()).isEqualTo("finish-migrate");
            assertThat(dst.runState()).isEqualTo("running");
            end(src, onSource);
            end(dst, onDestination);
            awaitBoth(src, dst, "postcopy-paused");
        }
    }

    private static void end(QmpVm v, String how) throws IOException {
        if (how.equals("yank")) {
            v.yankMigration();
        } else {
            v.oob("migrate-pause", null);
        }
    }

    /** Pages that differ between the two fingerprints, leaving out those the destination's guest wrote. */
    private static long pagesDiffering(JsonNode fs, JsonNode fd) {
        long differing = 0;
        for (var it = fs.get("page-hashes").properties().iterator(); it.hasNext(); ) {
            var e = it.next();
            String hs = e.getValue().asString();
            String hd = fd.get("page-hashes").path(e.getKey()).asString("");
            BitSet written = BitSet.valueOf(HexFormat.of().parseHex(fd.path("written-here").path(e.getKey()).asString("")));
            assertThat(hd.length()).isEqualTo(hs.length());
            for (int p = 0; p < hs.length() / 16; p++) {
                if (!written.get(p) && !hs.regionMatches(p * 16, hd, p * 16, 16)) {
                    differing++;
                }
            }
        }
        return differing;
    }
}
