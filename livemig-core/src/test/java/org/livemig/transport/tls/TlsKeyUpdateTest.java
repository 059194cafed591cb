package org.livemig.transport.tls;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.fail;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.Security;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.livemig.security.ObjectOptions;
import org.livemig.security.ObjectRegistry;
import org.livemig.testing.TlsFixtures;
import org.livemig.transport.ChannelSecurity;
import org.livemig.transport.MigrationAddress;
import org.livemig.transport.MigrationConnection;
import org.livemig.transport.MigrationListener;
import org.livemig.transport.Transports;

/**
 * TLS 1.3 key updates in the middle of a stream, both ways at once, while a writer is blocked on
 * the peer: no reader may stall on one (a key update record carries no data; a reader that then
 * went to the socket with whole records still buffered waited for bytes the peer had already
 * sent, and both ends hung), nor wait for a writer's lock to answer one. The key limit that makes
 * the JDK update its keys is a security property read once per JVM, so the exchange runs in a
 * child JVM with it lowered to 1 MiB.
 */
class TlsKeyUpdateTest {
    /**
     * Each more than loopback's socket buffers hold here (up to 32 MiB received, 4 MiB sent): the
     * server's writer blocks on the client, which reads only once its own writes are through.
     */
    private static final int SERVER_BYTES = 64 << 20;
    private static final int CLIENT_BYTES = 96 << 20;

    @TempDir
    Path dir;

    @Test
    void keyUpdatesWhileTheWritersAreBlockedNeitherStallNorCorruptTheStream() throws Exception {
        Path log = dir.resolve("child.log");
        List<String> cmd = List.of(ProcessHandle.current().info().command().orElse("java"), "-ea", "-Xmx1g",
                "-cp", System.getProperty("java.class.path"), Child.class.getName(), dir.toString());
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        if (!p.waitFor(120, TimeUnit.SECONDS)) {
            p.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            fail("the TLS exchange did not finish within 120 s; child's output:\n" + Files.readString(log));
        }
        String out = Files.readString(log);
        assertThat(p.exitValue()).as(out).isZero();
        assertThat(out).contains("intact");
        // 96 MiB at a limit of 1 MiB: the client asked for an answer many times, and the server's
        // reader met those requests (the JDK's debug log: a thread name, then the message)
        Matcher m = Pattern.compile("\\|test-server-reader\\|[^\n]*Consuming KeyUpdate post-handshake message \\(\n"
                + "\"KeyUpdate\": \\{\n  \"request_update\": update_requested").matcher(out);
        int requests = 0;
        while (m.find()) {
            requests++;
        }
        assertThat(requests).as("key update requests met by the server's reader").isGreaterThanOrEqualTo(10);
    }

    /**
     * Both ends write at once, the server more than the socket buffers hold; the client reads only after it has written everything, so
     * the server's writer is blocked on it all along while the server's reader meets the client's
     * key updates. Exits 0 when every byte arrived intact, 1 on a failure, 2 on a stall.
     */
    static final class Child {
        public static void main(String[] args) throws Exception {
            Security.setProperty("jdk.tls.keyLimits", "AES/GCM/NoPadding KeyUpdate 2^20");
            System.setProperty("javax.net.debug", "ssl:handshake");
            Path dir = Path.of(args[0]);
            TlsFixtures.Ca ca = TlsFixtures.ca("key update CA");
            ObjectRegistry r = new ObjectRegistry();
            add(r, "tls-creds-x509,id=s,endpoint=server,verify-peer=on,dir="
                    + TlsFixtures.serverDir(dir.resolve("s"), ca, "127.0.0.1", null));
            add(r, "tls-creds-x509,id=c,endpoint=client,dir="
                    + TlsFixtures.clientDir(dir.resolve("c"), ca, ca, TlsFixtures.FRIENDLY_CLIENT));
            ChannelSecurity server = r.tls("s", null, null, TlsEndpoint.SERVER, Duration.ofSeconds(10), () -> true);
            ChannelSecurity client = r.tls("c", null, null, TlsEndpoint.CLIENT, Duration.ofSeconds(10), () -> true);
            byte[] fromServer = random(1, SERVER_BYTES);
            byte[] fromClient = random(2, CLIENT_BYTES);
            try (MigrationListener l = Transports.listen(MigrationAddress.parse("tcp:127.0.0.1:0"))) {
                CompletableFuture<MigrationConnection> accepted = CompletableFuture.supplyAsync(() -> {
                    try {
                        return server.server(l.accept());
                    } catch (IOException e) {
                        throw new RuntimeException(e);
                    }
                });
                try (MigrationConnection c = client.client(Transports.connect(l.boundAddress(), Duration.ofSeconds(10)),
                        l.boundAddress());
                     MigrationConnection s = accepted.get(30, TimeUnit.SECONDS)) {
                    CompletableFuture<Void> serverWriter = run("test-server-writer", () -> write(s, fromServer));
                    CompletableFuture<byte[]> serverReader = supply("test-server-reader", () -> read(s, CLIENT_BYTES));
                    CompletableFuture<byte[]> clientSide = supply("test-client", () -> {
                        write(c, fromClient);
                        return read(c, SERVER_BYTES);
                    });
                    try {
                        CompletableFuture.allOf(serverWriter, serverReader, clientSide).get(60, TimeUnit.SECONDS);
                    } catch (java.util.concurrent.TimeoutException e) {
                        System.out.println("stalled: server writer done " + serverWriter.isDone() + ", server reader done "
                                + serverReader.isDone() + ", client done " + clientSide.isDone());
                        Thread.getAllStackTraces().forEach((t, stack) -> {
                            if (t.getName().startsWith("test-")) {
                                System.out.println(t.getName() + ":");
                                for (StackTraceElement frame : stack) {
                                    System.out.println("    at " + frame);
                                }
                            }
                        });
                        System.out.flush();
                        Runtime.getRuntime().halt(2);
                    }
                    boolean ok = Arrays.equals(serverReader.get(), fromClient) && Arrays.equals(clientSide.get(), fromServer);
                    System.out.println(ok ? "intact" : "corrupted");
                    if (!ok) {
                        Runtime.getRuntime().halt(1);
                    }
                }
            }
            System.out.flush();
            System.err.flush();
            System.exit(0);
        }

        private static void add(ObjectRegistry r, String spec) throws Exception {
            ObjectOptions o = ObjectOptions.parse(spec);
            r.add(o.type(), o.props());
        }

        private static byte[] random(long seed, int n) {
            byte[] b = new byte[n];
            new Random(seed).nextBytes(b);
            return b;
        }

        private static void write(MigrationConnection c, byte[] data) throws IOException {
            ByteBuffer b = ByteBuffer.wrap(data);
            while (b.hasRemaining()) {
                c.out().write(b.slice(b.position(), Math.min(b.remaining(), 1 << 20)));
                b.position(b.position() + Math.min(b.remaining(), 1 << 20));
            }
        }

        private static byte[] read(MigrationConnection c, int bytes) throws IOException {
            ByteBuffer b = ByteBuffer.allocate(bytes);
            ByteBuffer chunk = ByteBuffer.allocateDirect(256 << 10);
            while (b.hasRemaining()) {
                chunk.clear().limit(Math.min(chunk.capacity(), b.remaining()));
                if (c.in().read(chunk) < 0) {
                    throw new IOException("end of stream after " + b.position() + " bytes");
                }
                b.put(chunk.flip());
            }
            return b.array();
        }

        interface IoCall<T> {
            T call() throws IOException;
        }

        interface IoRun {
            void run() throws IOException;
        }

        private static CompletableFuture<Void> run(String name, IoRun task) {
            return supply(name, () -> {
                task.run();
                return null;
            });
        }

        private static <T> CompletableFuture<T> supply(String name, IoCall<T> task) {
            CompletableFuture<T> f = new CompletableFuture<>();
            Thread.ofPlatform().name(name).daemon(true).start(() -> {
                try {
                    f.complete(task.call());
                } catch (Throwable e) {
                    e.printStackTrace(System.out);
                    f.completeExceptionally(e);
                }
            });
            return f;
        }
    }
}
