package org.livemig.stream;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * QEMU 10's multifd device-state packet header, and the accelerator's records and packet data:
 * written and read back, and every bad field refused with the offset it was found at.
 */
class DeviceStateCodecTest {
    private static final int CHUNK = 64 * 1024;

    @Test
    void aDeviceStatePacketHeaderIsQemus276BytesAndReadsBack() throws Exception {
        MigrationFile f = MigrationFile.toMemory();
        MultifdPacket.writeDeviceStateHeader(f, "0000:00:02.0/vfio", 3, 1234);
        byte[] b = f.toByteArray();
        assertThat(b).hasSize(MultifdPacket.DEVICE_STATE_HEADER_BYTES).hasSize(276);
        ByteBuffer bb = ByteBuffer.wrap(b);
        assertThat(bb.getInt(0)).isEqualTo(0x11223344);
        assertThat(bb.getInt(4)).isEqualTo(1);
        assertThat(bb.getInt(8)).isEqualTo(0x40).isEqualTo(MultifdPacket.FLAG_DEVICE_STATE);
        assertThat(bb.getInt(MultifdPacket.DEVICE_STATE_INSTANCE_OFFSET)).isEqualTo(3);
        assertThat(bb.getInt(MultifdPacket.DEVICE_STATE_SIZE_OFFSET)).isEqualTo(1234);
        MultifdPacket.Packet p = MultifdPacket.readPacket(MigrationFile.ofBytes(b), 128, 4096, 1 << 20);
        assertThat(p).isEqualTo(new MultifdPacket.DeviceStateHeader(0, "0000:00:02.0/vfio", 3, 1234));
        // A reader of QEMU 7.2's packets only refuses it, as 7.2 does.
        assertThatThrownBy(() -> MultifdPacket.readHeader(MigrationFile.ofBytes(b), 128, 4096))
                .hasMessageContaining("multifd packet flags 0x40: unknown bits").hasMessageContaining("offset 8");
    }

    private static byte[] header(int flags, String idstr, int size) throws Exception {
        MigrationFile f = MigrationFile.toMemory();
        MultifdPacket.writeDeviceStateHeader(f, idstr, 0, size);
        byte[] b = f.toByteArray();
        ByteBuffer.wrap(b).putInt(8, flags);
        return b;
    }

    @Test
    void badDeviceStateHeadersAreRefusedNamingTheField() throws Exception {
        assertThatThrownBy(() -> MultifdPacket.readPacket(MigrationFile.ofBytes(header(0x41, "d", 1)), 128, 4096, 100))
                .hasMessageContaining("device-state packet flags 0x41").hasMessageContaining("offset 8");
        assertThatThrownBy(() -> MultifdPacket.readPacket(MigrationFile.ofBytes(header(0x40, "d", 101)), 128, 4096, 100))
                .hasMessageContaining("'d' instance 0 says 101 data bytes follow, more than the 100 allowed")
                .hasMessageContaining("offset 272");
        byte[] noNul = header(0x40, "d", 1);
        java.util.Arrays.fill(noNul, 12, 268, (byte) 'x');
        assertThatThrownBy(() -> MultifdPacket.readPacket(MigrationFile.ofBytes(noNul), 128, 4096, 100))
                .hasMessageContaining("idstr is not NUL-terminated").hasMessageContaining("offset 12");
        byte[] empty = header(0x40, "d", 1);
        empty[12] = 0;
        assertThatThrownBy(() -> MultifdPacket.readPacket(MigrationFile.ofBytes(empty), 128, 4096, 100))
                .hasMessageContaining("idstr is empty");
    }

    @Test
    void dataRecordsCarryAChecksumThatFindsAFlippedByte() throws Exception {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment mem = arena.allocate(4L * CHUNK);
            long seed = System.nanoTime();
            SplittableRandom r = new SplittableRandom(seed);
            for (long i = 0; i < mem.byteSize(); i++) {
                mem.set(java.lang.foreign.ValueLayout.JAVA_BYTE, i, (byte) r.nextInt());
            }
            for (boolean stable : new boolean[] {true, false}) {
                MigrationFile f = MigrationFile.toMemory();
                AcceleratorState.writeData(f, mem, 2L * CHUNK, CHUNK, stable, new byte[CHUNK]);
                byte[] b = f.toByteArray();
                assertThat(b).hasSize(AcceleratorState.DATA_RECORD_HEADER_BYTES + CHUNK);
                MemorySegment dst = arena.allocate(4L * CHUNK);
                MigrationFile in = MigrationFile.ofBytes(b);
                assertThat(AcceleratorState.readMarker(in)).isEqualTo(AcceleratorState.DATA);
                AcceleratorState.Chunk c = AcceleratorState.readChunk(in, 0, dst.byteSize(), CHUNK);
                in.readInto(dst, c.offset(), c.length());
                AcceleratorState.checkCrc(c, dst, "acc0");
                assertThat(dst.asSlice(2L * CHUNK, CHUNK).mismatch(mem.asSlice(2L * CHUNK, CHUNK))).as("seed " + seed).isEqualTo(-1);
                dst.set(java.lang.foreign.ValueLayout.JAVA_BYTE, 2L * CHUNK + r.nextInt(CHUNK), (byte) 0x5A);
                if (dst.asSlice(2L * CHUNK, CHUNK).mismatch(mem.asSlice(2L * CHUNK, CHUNK)) >= 0) {
                    assertThatThrownBy(() -> AcceleratorState.checkCrc(c, dst, "acc0")).as("seed " + seed)
                            .hasMessageContaining("accelerator 'acc0': chunk at 0x20000 (0x10000 bytes) is damaged");
                }
            }
        }
    }

    @Test
    void chunksOutsideTheMemoryOrOffTheirBoundaryAndUnknownMarkersAreRefused() throws Exception {
        for (long[] bad : new long[][] {{4L * CHUNK, CHUNK}, {CHUNK + 1, CHUNK}, {0, CHUNK + 1}, {0, 0}, {-CHUNK, CHUNK},
                {3L * CHUNK, 2L * CHUNK}}) {
            MigrationFile f = MigrationFile.toMemory();
            f.putBe64(bad[0]);
            f.putBe32((int) bad[1]);
            f.putBe32(0);
            assertThatThrownBy(() -> AcceleratorState.readChunk(MigrationFile.ofBytes(f.toByteArray()), 99, 4L * CHUNK, CHUNK))
                    .as("offset %d length %d", bad[0], bad[1])
                    .hasMessageContaining("outside its memory of 0x40000 bytes or not on a chunk (0x10000) boundary")
                    .hasMessageContaining("offset 99");
        }
        MigrationFile f = MigrationFile.toMemory();
        f.putBe64(0xffffffff_ac000007L);
        assertThatThrownBy(() -> AcceleratorState.readMarker(MigrationFile.ofBytes(f.toByteArray())))
                .hasMessageContaining("unknown record marker 0xffffffffac000007");
    }

    @Test
    void packetDataCarriesItsIdxAndChunks() throws Exception {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment mem = arena.allocate(4L * CHUNK);
            mem.fill((byte) 7);
            MultifdPacket.DeviceStatePayload p = AcceleratorState.dataPacket(5, mem, new long[] {CHUNK, 3L * CHUNK, 0}, 2, CHUNK);
            MigrationFile f = MigrationFile.toMemory();
            p.write(f);
            byte[] b = f.toByteArray();
            assertThat(b).hasSize(p.size());
            ByteBuffer d = ByteBuffer.wrap(b);
            assertThat(AcceleratorState.readPacketHeader(d, 0)).isEqualTo(new AcceleratorState.PacketHeader(5, false));
            for (long want : new long[] {CHUNK, 3L * CHUNK}) {
                AcceleratorState.Chunk c = AcceleratorState.readPacketChunk(d, 0, mem.byteSize(), CHUNK);
                assertThat(c.offset()).isEqualTo(want);
                assertThat(AcceleratorState.crc(d, c.length())).isEqualTo(c.crc());
                d.position(d.position() + c.length());
            }
            assertThat(d.hasRemaining()).isFalse();
            MigrationFile g = MigrationFile.toMemory();
            AcceleratorState.configPacket(2, new byte[] {1, 2, 3}).write(g);
            assertThat(AcceleratorState.readPacketHeader(ByteBuffer.wrap(g.toByteArray()), 0))
                    .isEqualTo(new AcceleratorState.PacketHeader(2, true));
            // a packet cut inside its chunk, and one with a flag this version does not have
            ByteBuffer cut = ByteBuffer.wrap(java.util.Arrays.copyOf(b, 100));
            AcceleratorState.readPacketHeader(cut, 0);
            assertThatThrownBy(() -> AcceleratorState.readPacketChunk(cut, 0, mem.byteSize(), CHUNK))
                    .hasMessageContaining("ends inside the chunk at 0x10000");
            ByteBuffer flags = ByteBuffer.wrap(b.clone()).putInt(8, 2);
            assertThatThrownBy(() -> AcceleratorState.readPacketHeader(flags, 40))
                    .hasMessageContaining("flags 0x2: unknown flags").hasMessageContaining("offset 44");
        }
    }
}
