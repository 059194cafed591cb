package org.livemig.stream;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.HexFormat;
import java.util.Random;

import org.junit.jupiter.api.Test;

/** QEMU 7.2's multifd initial packet and page packet header (qemu-stream-format.md §8). */
class MultifdPacketTest {
    private static final int PAGE = 4096;

    private static byte[] header(int flags, int alloc, long num, String block, long[] offsets, int pages) throws IOException {
        MigrationFile f = MigrationFile.toMemory();
        MultifdPacket.writeHeader(f, flags, alloc, num, block, offsets, pages, PAGE);
        return f.toByteArray();
    }

    @Test
    void theInitialPacketIs64BytesWithQemusLayout() throws IOException {
        MigrationFile f = MigrationFile.toMemory();
        byte[] uuid = HexFormat.of().parseHex("00112233445566778899aabbccddeeff");
        MultifdPacket.writeInit(f, uuid, 3);
        byte[] b = f.toByteArray();
        assertThat(b).hasSize(MultifdPacket.INIT_PACKET_BYTES);
        assertThat(HexFormat.of().formatHex(b, 0, 25))
                .isEqualTo("1122334400000001" + "00112233445566778899aabbccddeeff" + "03");
        for (int i = 25; i < 64; i++) {
            assertThat(b[i]).as("reserved byte %d", i).isZero();
        }
        MultifdPacket.Init init = MultifdPacket.readInit(MigrationFile.ofBytes(b));
        assertThat(init.channelId()).isEqualTo(3);
        assertThat(init.uuid()).isEqualTo(uuid);
    }

    @Test
    void aWrongInitialMagicOrVersionIsNamedWithItsOffset() throws IOException {
        MigrationFile f = MigrationFile.toMemory();
        MultifdPacket.writeInit(f, new byte[16], 0);
        byte[] b = f.toByteArray();
        // The main stream's magic arriving on a multifd channel.
        byte[] qevm = b.clone();
        ByteBuffer.wrap(qevm).putInt(0, 0x5145564D);
        assertThatThrownBy(() -> MultifdPacket.readInit(MigrationFile.ofBytes(qevm)))
                .isInstanceOf(StreamFormatException.class)
                .hasMessageContaining("magic 0x5145564d, expected 0x11223344").hasMessageContaining("offset 0");
        byte[] v2 = b.clone();
        ByteBuffer.wrap(v2).putInt(4, 2);
        assertThatThrownBy(() -> MultifdPacket.readInit(MigrationFile.ofBytes(v2)))
                .hasMessageContaining("version 2").hasMessageContaining("offset 4");
        assertThatThrownBy(() -> MultifdPacket.readInit(MigrationFile.ofBytes(java.util.Arrays.copyOf(b, 40))))
                .isInstanceOf(IOException.class).hasMessageContaining("truncated");
    }

    @Test
    void aPagePacketHeaderHasTheFixedPartThenTheOffsetSlots() throws IOException {
        long[] offsets = {0x1000, 0x5000, 0x2000};
        byte[] b = header(0, 128, 42, "pc.ram", offsets, 3);
        assertThat(b).hasSize(320 + 8 * 128).hasSize(MultifdPacket.headerBytes(128));
        ByteBuffer bb = ByteBuffer.wrap(b);
        assertThat(bb.getInt(0)).isEqualTo(0x11223344);
        assertThat(bb.getInt(4)).isEqualTo(1);
        assertThat(bb.getInt(8)).isZero();
        assertThat(bb.getInt(12)).isEqualTo(128);
        assertThat(bb.getInt(16)).isEqualTo(3);
        assertThat(bb.getInt(20)).isEqualTo(3 * PAGE);
        assertThat(bb.getLong(24)).isEqualTo(42);
        assertThat(new String(b, 64, 6)).isEqualTo("pc.ram");
        assertThat(b[70]).isZero();
        assertThat(bb.getLong(320)).isEqualTo(0x1000);
        assertThat(bb.getLong(336)).isEqualTo(0x2000);
        assertThat(bb.getLong(344)).as("unused slot").isZero();

        MultifdPacket.Header h = MultifdPacket.readHeader(MigrationFile.ofBytes(b), 128, PAGE);
        assertThat(h.block()).isEqualTo("pc.ram");
        assertThat(h.offsets()).containsExactly(offsets);
        assertThat(h.packetNum()).isEqualTo(42);
        assertThat(h.sync()).isFalse();
        assertThat(h.compression()).isZero();
    }

    @Test
    void randomHeadersRoundTrip() throws IOException {
        Random r = new Random(20261205);
        for (int n = 0; n < 500; n++) {
            int alloc = 1 + r.nextInt(128);
            int pages = r.nextInt(alloc + 1);
            long[] offsets = new long[pages];
            for (int i = 0; i < pages; i++) {
                offsets[i] = (long) r.nextInt(1 << 20) * PAGE;
            }
            int flags = r.nextBoolean() ? MultifdPacket.FLAG_SYNC : 0;
            String block = "blk" + r.nextInt(1000);
            long num = r.nextLong() & Long.MAX_VALUE;
            MultifdPacket.Header h = MultifdPacket.readHeader(
                    MigrationFile.ofBytes(header(flags, alloc, num, block, offsets, pages)), 128, PAGE);
            assertThat(h.pagesAlloc()).isEqualTo(alloc);
            assertThat(h.normalPages()).isEqualTo(pages);
            assertThat(h.sync()).isEqualTo(flags != 0);
            assertThat(h.packetNum()).isEqualTo(num);
            assertThat(h.offsets()).containsExactly(offsets);
            assertThat(h.block()).isEqualTo(pages > 0 ? block : null);
        }
    }

    @Test
    void qemusStalePacketsWithoutPagesAreAccepted() throws IOException {
        // QEMU 7.2 sends packets with flags 0 and no pages whose size and block are left over
        // from an earlier packet: only the counts matter then.
        byte[] b = header(0, 128, 7, "pc.ram", new long[0], 0);
        ByteBuffer.wrap(b).putInt(20, 128 * PAGE);
        MultifdPacket.Header h = MultifdPacket.readHeader(MigrationFile.ofBytes(b), 128, PAGE);
        assertThat(h.normalPages()).isZero();
        assertThat(h.block()).isNull();
        // SYNC on a packet that also carries pages.
        byte[] s = header(MultifdPacket.FLAG_SYNC, 128, 8, "pc.ram", new long[] {0}, 1);
        assertThat(MultifdPacket.readHeader(MigrationFile.ofBytes(s), 128, PAGE).sync()).isTrue();
    }

    @Test
    void mutatedHeadersGiveAHeaderOrAStreamErrorNeverAnotherException() throws IOException {
        byte[] good = header(MultifdPacket.FLAG_SYNC, 128, 9, "pc.ram", new long[] {0, PAGE, 2 * PAGE}, 3);
        Random r = new Random(7);
        int refused = 0;
        for (int n = 0; n < 5000; n++) {
            byte[] b = java.util.Arrays.copyOf(good, r.nextInt(10) == 0 ? r.nextInt(good.length) : good.length);
            for (int k = 1 + r.nextInt(4); k > 0 && b.length > 0; k--) {
                // Mostly the fixed part, where every field is checked.
                int at = r.nextInt(4) > 0 ? r.nextInt(Math.min(b.length, MultifdPacket.FIXED_HEADER_BYTES)) : r.nextInt(b.length);
                b[at] = (byte) r.nextInt(256);
            }
            try {
                MultifdPacket.Header h = MultifdPacket.readHeader(MigrationFile.ofBytes(b), 128, PAGE);
                assertThat(h.normalPages()).isBetween(0, h.pagesAlloc());
                assertThat(h.pagesAlloc()).isBetween(0, 128);
            } catch (IOException e) {
                refused++;
                assertThat(e.getMessage()).as("seed 7, round %d", n).isNotBlank();
            }
        }
        assertThat(refused).as("most mutations are caught").isGreaterThan(1000);
    }

    @Test
    void badHeadersAreRefusedNamingTheFieldAndItsOffset() throws IOException {
        byte[] good = header(0, 128, 1, "pc.ram", new long[] {0, PAGE}, 2);
        record Bad(String what, int at, int value, String message) {}
        for (Bad bad : new Bad[] {
                new Bad("magic", 0, 0x5145564D, "magic 0x5145564d"),
                new Bad("version", 4, 3, "version 3"),
                new Bad("flags", 8, 0x10, "flags 0x10: unknown bits"),
                new Bad("pages_alloc", 12, 129, "129 page slots, at most 128"),
                new Bad("pages_alloc sign", 12, -1, "4294967295 page slots"),
                new Bad("normal_pages", 16, 129, "129 pages in 128 slots"),
                new Bad("next_packet_size", 20, 3 * PAGE, "says 12288 data bytes follow, expected 8192")}) {
            byte[] b = good.clone();
            ByteBuffer.wrap(b).putInt(bad.at, bad.value);
            assertThatThrownBy(() -> MultifdPacket.readHeader(MigrationFile.ofBytes(b), 128, PAGE))
                    .as(bad.what).isInstanceOf(StreamFormatException.class)
                    .hasMessageContaining(bad.message).hasMessageContaining("offset " + bad.at);
        }
        byte[] unterminated = good.clone();
        java.util.Arrays.fill(unterminated, 64, 320, (byte) 'x');
        assertThatThrownBy(() -> MultifdPacket.readHeader(MigrationFile.ofBytes(unterminated), 128, PAGE))
                .hasMessageContaining("not NUL-terminated").hasMessageContaining("offset 64");
        assertThatThrownBy(() -> MultifdPacket.readHeader(MigrationFile.ofBytes(java.util.Arrays.copyOf(good, 400)), 128, PAGE))
                .isInstanceOf(IOException.class).hasMessageContaining("truncated");
    }
}
