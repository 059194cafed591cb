package org.livemig.migration;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;
import org.livemig.memory.GuestRam;
import org.livemig.memory.RamBlock;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.RamPageRecord;

/** The RAM section's encoding on the source, byte for byte. */
class RamSaverTest {

    /** The records QEMU writes for all-zero pages: the first of a block names it, the rest CONTINUE. */
    private static byte[] zeroRecords(String block, long pages) {
        ByteBuffer b = ByteBuffer.allocate((int) (pages * 9 + 1 + block.length()));
        for (long p = 0; p < pages; p++) {
            long header = (p << RamBlock.PAGE_BITS) | RamPageRecord.FLAG_ZERO | (p == 0 ? 0 : RamPageRecord.FLAG_CONTINUE);
            b.putLong(header);
            if (p == 0) {
                b.put((byte) block.length()).put(block.getBytes(StandardCharsets.US_ASCII));
            }
            b.put((byte) 0);
        }
        return b.array();
    }

    private static byte[] firstPass(GuestRam ram) throws Exception {
        RamSaver saver = new RamSaver(ram, new RamStats());
        saver.startDirtyTracking();
        MigrationFile f = MigrationFile.toMemory();
        while (!saver.saveIterate(f)) {
            // one pass, in as many iterations as it takes
        }
        return f.toByteArray();
    }

    @Test
    void neverWrittenRamGoesAsTheSameZeroRecordsAsScannedZeroRam() throws Exception {
        // Never-written RAM takes the run-at-once path; RAM that was written (then zeroed again)
        // is scanned page by page. The records must be the same, and QEMU's.
        GuestRam pristine = new GuestRam();
        pristine.addBlock("pc.ram", 3000L * RamBlock.PAGE_SIZE, false);
        pristine.addBlock("vga.vram", 70L * RamBlock.PAGE_SIZE, false);
        GuestRam scanned = new GuestRam();
        RamBlock a = scanned.addBlock("pc.ram", 3000L * RamBlock.PAGE_SIZE, false);
        scanned.addBlock("vga.vram", 70L * RamBlock.PAGE_SIZE, false);
        scanned.writeByte(a, 5 * RamBlock.PAGE_SIZE, (byte) 1);
        scanned.writeByte(a, 5 * RamBlock.PAGE_SIZE, (byte) 0);
        assertThat(pristine.isPristine()).isTrue();
        assertThat(scanned.isPristine()).isFalse();

        byte[] fast = firstPass(pristine);
        byte[] slow = firstPass(scanned);
        // Where each iteration ends (its EOS) depends on time; the records may not.
        assertThat(stripEos(fast)).isEqualTo(stripEos(slow));

        // Each iteration ends with EOS; the records between are QEMU's.
        ByteBuffer want = ByteBuffer.allocate(fast.length);
        want.put(zeroRecords("pc.ram", 3000)).put(zeroRecords("vga.vram", 70));
        byte[] records = stripEos(fast);
        assertThat(records).isEqualTo(java.util.Arrays.copyOf(want.array(), want.position()));
    }

    /** The stream without its EOS markers (8-byte headers carrying only the EOS flag). */
    private static byte[] stripEos(byte[] s) {
        ByteBuffer in = ByteBuffer.wrap(s);
        ByteBuffer out = ByteBuffer.allocate(s.length);
        while (in.remaining() >= 8) {
            long h = in.getLong();
            if (h == RamPageRecord.FLAG_EOS) {
                continue;
            }
            out.putLong(h);
            if ((h & RamPageRecord.FLAG_CONTINUE) == 0) {
                int n = in.get() & 0xFF;
                out.put((byte) n);
                byte[] name = new byte[n];
                in.get(name);
                out.put(name);
            }
            out.put(in.get());
        }
        return java.util.Arrays.copyOf(out.array(), out.position());
    }

    @Test
    void aPageWrittenDuringTheFirstPassIsSentAgainWithItsContents() throws Exception {
        GuestRam ram = new GuestRam();
        RamBlock b = ram.addBlock("pc.ram", 64L * RamBlock.PAGE_SIZE, false);
        RamSaver saver = new RamSaver(ram, new RamStats());
        saver.startDirtyTracking();
        ram.writeByte(b, 7 * RamBlock.PAGE_SIZE + 3, (byte) 42);
        MigrationFile f = MigrationFile.toMemory();
        while (!saver.saveIterate(f)) {
            // first pass
        }
        assertThat(saver.syncDirtyBitmap()).isEqualTo(1);
        assertThat(saver.pendingBytes()).isEqualTo(RamBlock.PAGE_SIZE);
        MigrationFile g = MigrationFile.toMemory();
        saver.saveIterate(g);
        byte[] second = g.toByteArray();
        ByteBuffer s = ByteBuffer.wrap(second);
        assertThat(s.getLong()).isEqualTo((7L << RamBlock.PAGE_BITS) | RamPageRecord.FLAG_PAGE | RamPageRecord.FLAG_CONTINUE);
        byte[] page = new byte[RamBlock.PAGE_SIZE];
        s.get(page);
        assertThat(page[3]).isEqualTo((byte) 42);
        assertThat(b.memory().get(ValueLayout.JAVA_BYTE, 7 * RamBlock.PAGE_SIZE + 3)).isEqualTo((byte) 42);
    }
}
