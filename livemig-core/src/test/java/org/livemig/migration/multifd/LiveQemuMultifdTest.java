package org.livemig.migration.multifd;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.livemig.analyze.Analyzer;
import org.livemig.analyze.StreamEvents;
import org.livemig.analyze.StreamVisitor;
import org.livemig.memory.GuestRam;
import org.livemig.memory.RamBlock;
import org.livemig.monitor.QmpClient;
import org.livemig.monitor.QmpJson;
import org.livemig.stream.MultifdCompression;
import org.livemig.stream.RamPageRecord;
import org.livemig.stream.SectionHeader;
import org.livemig.testing.HostTools;
import org.livemig.transport.MigrationAddress;
import org.livemig.transport.MigrationConnection;
import org.livemig.transport.MigrationListener;
import org.livemig.transport.Transports;
import tools.jackson.databind.node.ArrayNode;

/**
 * A real QEMU migrates a running guest with multifd into livemig's {@link MultifdReceiver}, plain
 * and with multifd-compression zlib and zstd: its channels' bytes are read (and inflated) as QEMU
 * 7.2 writes them, pages land where QEMU's pmemsave says they
 * are, and the SYNC at every RAM section's end keeps the pages sent again in later passes in
 * order. The main stream is read by the analyzer, whose records drive the RAM: block list, ZERO
 * and PAGE records, and the EOS at which the channels are synced. Skipped without QEMU.
 */
class LiveQemuMultifdTest {
    private static final Duration WAIT = Duration.ofSeconds(90);
    private static final int RAM = 32 << 20;
    private static final int CHANNELS = 3;

    @TempDir
    Path dir;

    private Process qemu;
    private QmpClient qmp;
    private Path log;

    @BeforeEach
    void startQemu() throws Exception {
        // The dirtyloop BIOS (see the test resources' MANIFEST) keeps writing two counters.
        Path bios = Path.of("src/test/resources/qemu-7.2/dirtyloop-bios.bin").toAbsolutePath();
        assertThat(bios).exists();
        HostTools.Qemu q = HostTools.startQemu(dir, "-accel", "tcg", "-M", "pc", "-m", "32M", "-nodefaults",
                "-display", "none", "-bios", bios.toString());
        qemu = q.process();
        log = q.log();
        qmp = HostTools.connectQmp(q.qmpSocket());
        qmp.negotiate();
    }

    @AfterEach
    void stopQemu() throws Exception {
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

    /** Builds the RAM from the main stream's records and syncs the channels at each RAM EOS. */
    private static final class MainStream implements StreamVisitor {
        final GuestRam ram;
        final MultifdReceiver receiver;
        final AtomicLong mainPages = new AtomicLong();
        final AtomicLong syncs = new AtomicLong();

        MainStream(GuestRam ram, MultifdReceiver receiver) {
            this.ram = ram;
            this.receiver = receiver;
        }

        @Override
        public void ramRecord(SectionHeader header, StreamEvents.RamRecord r) {
            switch (r.kind()) {
                case MEM_SIZE -> {
                    for (RamPageRecord.BlockEntry b : r.blocks()) {
                        if (ram.block(b.name()) == null) {
                            long size = (b.usedLength() + RamBlock.PAGE_SIZE - 1) & -(long) RamBlock.PAGE_SIZE;
                            ram.addBlock(b.name(), size, false);
                        }
                    }
                }
                case ZERO -> ram.block(r.blockOf()).memory()
                        .asSlice(r.address(RamBlock.PAGE_SIZE), RamBlock.PAGE_SIZE).fill((byte) r.fill());
                case PAGE -> {
                    MemorySegment dst = ram.block(r.blockOf()).memory().asSlice(r.address(RamBlock.PAGE_SIZE), RamBlock.PAGE_SIZE);
                    dst.copyFrom(r.page().asSlice(0, RamBlock.PAGE_SIZE));
                    mainPages.incrementAndGet();
                }
                case EOS -> {
                    try {
                        receiver.syncMain();
                        syncs.incrementAndGet();
                    } catch (IOException e) {
                        throw new UncheckedIOException(e);
                    }
                }
                default -> throw new AssertionError("unexpected RAM record " + r.kind() + " from QEMU 7.2");
            }
        }
    }

    @ParameterizedTest(name = "multifd-compression {0} over {1}")
    @CsvSource({"none, tcp", "zlib, tcp", "zstd, unix"})
    void aRunningQemuGuestArrivesWholeOverMultifd(String compression, String transport) throws Exception {
        migrateInto(compression, transport, org.livemig.transport.ChannelSecurity.PLAIN);
    }

    /**
     * The same over TLS with X.509: QEMU's credentials made by object-add, livemig's by its own
     * registry; every channel (QEMU hands each its handshake, then its initial packet) is secured.
     */
    @Test
    void aRunningQemuGuestArrivesWholeOverMultifdWithTls() throws Exception {
        org.livemig.testing.TlsFixtures.Ca ca = org.livemig.testing.TlsFixtures.ca("multifd interop CA");
        Path server = org.livemig.testing.TlsFixtures.serverDir(dir.resolve("server"), ca, "127.0.0.1", null);
        Path client = org.livemig.testing.TlsFixtures.clientDir(dir.resolve("client"), ca, ca,
                org.livemig.testing.TlsFixtures.FRIENDLY_CLIENT);
        qmp.execute("object-add", QmpClient.args("qom-type", "tls-creds-x509", "id", "tls0", "endpoint", "client",
                "dir", client.toString()));
        qmp.execute("migrate-set-parameters", QmpClient.args("tls-creds", "tls0"));
        org.livemig.security.ObjectRegistry objects = new org.livemig.security.ObjectRegistry();
        objects.add("tls-creds-x509", java.util.Map.of("id", "tls0", "endpoint", "server", "dir", server.toString(),
                "verify-peer", true));
        migrateInto("none", "tcp",
                objects.tls("tls0", null, null, org.livemig.transport.tls.TlsEndpoint.SERVER, Duration.ofSeconds(10), () -> true));
    }

    private void migrateInto(String compression, String transport, org.livemig.transport.ChannelSecurity security)
            throws Exception {
        ArrayNode caps = QmpJson.NODES.arrayNode();
        caps.add(QmpJson.object().put("capability", "multifd").put("state", true));
        qmp.execute("migrate-set-capabilities", QmpClient.args("capabilities", caps));
        qmp.execute("migrate-set-parameters", QmpClient.args("multifd-channels", CHANNELS,
                "multifd-compression", compression));
        MultifdCompression.Method method = MultifdCompression.Method.fromQemuName(compression);

        AtomicReference<IOException> channelError = new AtomicReference<>();
        String address = transport.equals("tcp") ? "tcp:127.0.0.1:0" : "unix:" + dir.resolve("mfd.sock");
        try (MigrationListener listener = Transports.listen(MigrationAddress.parse(address));
             GuestRam ram = new GuestRam();
             MultifdReceiver receiver = new MultifdReceiver(ram, CHANNELS, method, new AtomicLong(), channelError::set)) {
            MainStream main = new MainStream(ram, receiver);
            List<MigrationConnection> accepted = new ArrayList<>();
            // As a QEMU 7.2 destination: the first connection is the main stream, the rest are channels.
            // Own threads, not the common pool: on 2 cores it has one worker, and both block.
            CompletableFuture<Void> loaded = new CompletableFuture<>();
            Thread.ofPlatform().name("test-main-stream").daemon(true).start(() -> {
                try {
                    MigrationConnection c = security.server(listener.accept());
                    accepted.add(c);
                    CompletableFuture<Void> channels = new CompletableFuture<>();
                    Thread.ofPlatform().name("test-channel-accept").daemon(true).start(() -> {
                        try {
                            while (!receiver.addChannel(security.server(listener.accept()))) {
                                // until every channel has connected
                            }
                            channels.complete(null);
                        } catch (IOException e) {
                            channels.completeExceptionally(e);
                        }
                    });
                    Analyzer.analyze(c.in(), Analyzer.Options.DEFAULT, main);
                    channels.get(30, TimeUnit.SECONDS);
                    loaded.complete(null);
                } catch (Exception | Error e) {
                    loaded.completeExceptionally(e);
                }
            });
            qmp.execute("migrate", QmpClient.args("uri", listener.boundAddress().uri()));
            await().atMost(WAIT).pollInterval(Duration.ofMillis(100)).until(() -> {
                String status = qmp.execute("query-migrate").path("status").asString();
                assertThat(status).as(() -> "QEMU's migration failed: " + HostTools.readQuietly(log)).isNotIn("failed", "cancelled");
                return status.equals("completed");
            });
            loaded.get(WAIT.toSeconds(), TimeUnit.SECONDS);
            assertThat(channelError.get()).isNull();

            long multifdBytes = qmp.execute("query-migrate").path("ram").path("multifd-bytes").asLong();
            assertThat(multifdBytes).as("QEMU sent pages over multifd").isGreaterThan(0);
            assertThat(receiver.pages()).isPositive();

            assertThat(main.mainPages.get()).as("QEMU 7.2 sends no PAGE record on the main channel with multifd").isZero();
            assertThat(main.syncs.get()).as("setup, at least one iteration, completion").isGreaterThanOrEqualTo(3);

            // The source is stopped now (postmigrate): its RAM is what the stream ended with.
            Path dump = dir.resolve("src.ram");
            qmp.execute("pmemsave", QmpClient.args("val", 0, "size", RAM, "filename", dump.toString()));
            byte[] expected = Files.readAllBytes(dump);
            byte[] got = ram.block("pc.ram").memory().asSlice(0, RAM).toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
            assertThat(expected[0x8000] | expected[0x8001]).as("the guest ran: its counter at 0x8000").isNotZero();
            // pmemsave reads guest-physical addresses: 0xa0000-0xfffff show VGA and the BIOS ROM
            // there, not the pc.ram beneath; the rest is pc.ram itself.
            assertThat(java.util.Arrays.mismatch(expected, 0, 0xa0000, got, 0, 0xa0000))
                    .as("first differing byte of pc.ram below 640 KiB").isEqualTo(-1);
            assertThat(java.util.Arrays.mismatch(expected, 0x100000, RAM, got, 0x100000, RAM))
                    .as("first differing byte of pc.ram above 1 MiB, from 1 MiB").isEqualTo(-1);
            for (MigrationConnection c : accepted) {
                c.close();
            }
        }
    }
}
