package org.livemig.migration;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assumptions.assumeThat;
import static org.awaitility.Awaitility.await;

import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.livemig.machine.RunState;
import org.livemig.migration.ram.DirectIo;
import org.livemig.stream.MappedRamHeader;
import tools.jackson.databind.node.ObjectNode;

/**
 * QEMU's file migration cases (tests/qtest/migration/file-tests.c) that apply to livemig, by
 * their names: a migration to a file: and back, live (the source runs during it) or not (the
 * source stopped first, QEMU's stop_src), with an offset, with mapped-ram, with mapped-ram over
 * multifd channels, and with direct-io.
 */
class FileMigrationTest {
    private static final Duration LONG = Duration.ofSeconds(90);
    /** QEMU's FILE_TEST_OFFSET. */
    private static final long FILE_TEST_OFFSET = 0x1000;

    @TempDir
    Path dir;

    /**
     * QEMU's test_file_common: caps on both sides, the source stopped first when
     * {@code stopSrc}, migrate to {@code uri}, then the destination loads it; the destination's
     * RAM and devices are the source's and the A-B check holds.
     */
    private void fileCommon(String uri, boolean stopSrc, java.util.function.Consumer<PrecopyTest.Pair> start) throws Exception {
        try (PrecopyTest.Pair p = PrecopyTest.Pair.of(TestMachines.small("ab:20000").withRam(32L << 20))) {
            p.params(m -> m.maxBandwidth = 0);
            start.accept(p);
            if (stopSrc) {
                p.src().mainLoop().runAndWait(() -> p.src().vmStop(RunState.PAUSED));
            }
            Outgoing o = p.migrate(uri);
            await().atMost(LONG).until(() -> o.status().isFinal());
            assertThat(o.status()).as(String.valueOf(o.error())).isEqualTo(MigrationStatus.COMPLETED);
            p.listen(uri);
            await().atMost(LONG).until(() -> p.dstMig().incoming().status().isFinal());
            assertThat(p.dstMig().incoming().status()).as(String.valueOf(p.dstMig().incoming().error()))
                    .isEqualTo(MigrationStatus.COMPLETED);
            ObjectNode fs = TestMachines.fingerprint(p.src());
            ObjectNode fd = TestMachines.fingerprint(p.dst());
            assertThat(fd.get("ram")).isEqualTo(fs.get("ram"));
            assertThat(fd.get("devices")).isEqualTo(fs.get("devices"));
            assertThat(fd.get("ab-check").get("ok").asBoolean()).as(fd.toString()).isTrue();
        }
    }

    private static void caps(PrecopyTest.Pair p, int multifdChannels, boolean directIo, Capability... caps) {
        try {
            for (var side : new Object[][] {{p.src(), p.srcMig()}, {p.dst(), p.dstMig()}}) {
                org.livemig.machine.Machine m = (org.livemig.machine.Machine) side[0];
                Migration mig = (Migration) side[1];
                m.mainLoop().call(() -> {
                    for (Capability c : caps) {
                        mig.setCapability(c, true);
                    }
                    mig.setParameters(q -> {
                        if (multifdChannels > 0) {
                            q.multifdChannels = multifdChannels;
                        }
                        q.directIo = directIo;
                    });
                    return null;
                }, 10_000);
            }
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    private String file() {
        return "file:" + dir.resolve("migfile");
    }

    @Test
    void precopyFile() throws Exception {
        fileCommon(file(), true, p -> { });
    }

    @Test
    void precopyFileOffset() throws Exception {
        Path f = dir.resolve("migfile");
        fileCommon(file() + ",offset=" + FILE_TEST_OFFSET, false, p -> { });
        try (FileChannel ch = FileChannel.open(f, StandardOpenOption.READ)) {
            ByteBuffer head = ByteBuffer.allocate((int) FILE_TEST_OFFSET + 4);
            ch.read(head, 0);
            for (int i = 0; i < FILE_TEST_OFFSET; i++) {
                assertThat(head.get(i)).as("byte %d before the offset", i).isZero();
            }
            assertThat(head.getInt((int) FILE_TEST_OFFSET)).as("the stream's magic at the offset").isEqualTo(0x5145564D);
        }
    }

    @Test
    void precopyFileOffsetBad() throws Exception {
        try (PrecopyTest.Pair p = PrecopyTest.Pair.of(TestMachines.small("idle"))) {
            assertThatThrownBy(() -> p.migrate(file() + ",offset=0x20M"))
                    .hasMessageContaining("file URI has bad offset 0x20M: Invalid argument");
            assertThat(p.src().runState()).isEqualTo(RunState.RUNNING);
            assertThat(Files.exists(dir.resolve("migfile"))).isFalse();
        }
    }

    @Test
    void precopyFileMappedRam() throws Exception {
        fileCommon(file(), true, p -> caps(p, 0, false, Capability.MAPPED_RAM));
        assertMappedRamLayout(dir.resolve("migfile"), 0);
    }

    @Test
    void precopyFileMappedRamLive() throws Exception {
        fileCommon(file(), false, p -> caps(p, 0, false, Capability.MAPPED_RAM));
    }

    @Test
    void multifdFileMappedRam() throws Exception {
        fileCommon(file(), true, p -> caps(p, 4, false, Capability.MAPPED_RAM, Capability.MULTIFD));
        assertMappedRamLayout(dir.resolve("migfile"), 0);
    }

    @Test
    void multifdFileMappedRamLive() throws Exception {
        fileCommon(file(), false, p -> caps(p, 4, false, Capability.MAPPED_RAM, Capability.MULTIFD));
    }

    @Test
    void multifdFileMappedRamDio() throws Exception {
        assumeThat(DirectIo.supported(dir)).as("Filesystem does not support O_DIRECT").isTrue();
        fileCommon(file(), true, p -> caps(p, 4, true, Capability.MAPPED_RAM, Capability.MULTIFD));
    }

    @Test
    void multifdFileMappedRamOffset() throws Exception {
        fileCommon(file() + ",offset=" + FILE_TEST_OFFSET, true,
                p -> caps(p, 2, false, Capability.MAPPED_RAM, Capability.MULTIFD));
        assertMappedRamLayout(dir.resolve("migfile"), FILE_TEST_OFFSET);
    }

    /**
     * The file holds the header QEMU would write: version 1, the page size, the bitmap right
     * after the header, the pages at the next 1 MiB boundary, absolute offsets.
     */
    private static void assertMappedRamLayout(Path f, long base) throws Exception {
        byte[] all = Files.readAllBytes(f);
        int name = indexOf(all, "\u0006pc.ram".getBytes(java.nio.charset.StandardCharsets.ISO_8859_1), (int) base);
        assertThat(name).isPositive();
        ByteBuffer b = ByteBuffer.wrap(all);
        int at = name + 7 + 8; // name, then be64 used length
        assertThat(b.getInt(at)).isEqualTo(MappedRamHeader.VERSION);
        assertThat(b.getLong(at + 4)).isEqualTo(4096);
        assertThat(b.getLong(at + 12)).isEqualTo(at + MappedRamHeader.SIZE);
        long pages = b.getLong(at + 20);
        assertThat(pages % MappedRamHeader.FILE_OFFSET_ALIGNMENT).isZero();
        assertThat(pages).isGreaterThanOrEqualTo(at + MappedRamHeader.SIZE + MappedRamHeader.bitmapBytes((32L << 20) / 4096));
        assertThat((long) all.length).isGreaterThan(pages + (32L << 20));
    }

    static int indexOf(byte[] hay, byte[] needle, int from) {
        outer:
        for (int i = from; i <= hay.length - needle.length; i++) {
            for (int j = 0; j < needle.length; j++) {
                if (hay[i + j] != needle[j]) {
                    continue outer;
                }
            }
            return i;
        }
        return -1;
    }

    @Test
    void mappedRamNeedsASeekableTransportAndUncompressedChannels() throws Exception {
        try (PrecopyTest.Pair p = PrecopyTest.Pair.of(TestMachines.small("idle"))) {
            p.cap(Capability.MAPPED_RAM);
            assertThatThrownBy(() -> p.migrate("tcp:127.0.0.1:1"))
                    .hasMessageContaining("Migration requires seekable transport (e.g. file)");
            assertThatThrownBy(() -> p.migrate("exec:cat > /dev/null"))
                    .hasMessageContaining("Migration requires seekable transport (e.g. file)");
            p.cap(Capability.MULTIFD);
            p.params(q -> q.multifdCompression = "zlib");
            assertThatThrownBy(() -> p.migrate(file()))
                    .hasMessageContaining("Mapped-ram only available for non-compressed non-TLS multifd migration");
            for (Capability c : new Capability[] {Capability.XBZRLE, Capability.COMPRESS, Capability.POSTCOPY_RAM}) {
                String what = c == Capability.COMPRESS ? "compression" : c == Capability.POSTCOPY_RAM ? "postcopy" : "xbzrle";
                assertThatThrownBy(() -> p.src().mainLoop().call(() -> {
                    p.srcMig().setCapabilities(java.util.Map.of(Capability.MULTIFD, false, c, true));
                    return null;
                }, 10_000)).hasMessageContaining("Mapped-ram migration is incompatible with " + what);
            }
        }
        try (PrecopyTest.Pair p = PrecopyTest.Pair.of(TestMachines.small("idle"))) {
            p.cap(Capability.MULTIFD);
            assertThatThrownBy(() -> p.migrate(file())).hasMessageContaining("multifd needs a tcp: or unix: address");
        }
    }
}
