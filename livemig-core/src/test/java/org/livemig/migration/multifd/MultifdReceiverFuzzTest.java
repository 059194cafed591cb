package org.livemig.migration.multifd;

import static org.assertj.core.api.Assertions.assertThat;

import com.code_intelligence.jazzer.junit.FuzzTest;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.livemig.memory.GuestRam;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.MultifdPacket;
import org.livemig.stream.StreamFormatException;

/**
 * Jazzer fuzz target over the multifd packet receiver: the input is what one channel carries
 * (its initial packet, then page packets), read as a {@code mig/dst/recv_n} thread reads it
 * ({@link MultifdPacket#readInit}, then {@link MultifdReceiver#receivePacket} into a small
 * guest RAM until the input ends). Any input must be taken or refused with a
 * {@link StreamFormatException} with an offset inside it, and no page may land outside RAM; any
 * other throwable is a finding. Without {@code JAZZER_FUZZ=1} the seeds in
 * {@code MultifdReceiverFuzzTestInputs/fuzzChannel} run as a regression test.
 */
class MultifdReceiverFuzzTest {
    /** Two blocks, 64 KiB and 16 KiB, as a machine has them. */
    private static final GuestRam RAM = new GuestRam();

    static {
        RAM.addBlock("pc.ram", 64 << 10, false);
        RAM.addBlock("pc.bios", 16 << 10, false);
    }

    @AfterAll
    static void free() {
        RAM.close();
    }

    @FuzzTest(maxDuration = "2m")
    void fuzzChannel(byte[] data) throws IOException {
        receive(data);
    }

    /** Pages placed. */
    static long receive(byte[] data) throws IOException {
        MigrationFile f = MigrationFile.ofBytes(data);
        long pages = 0;
        try {
            MultifdPacket.readInit(f);
            while (!f.atEof()) {
                pages += MultifdReceiver.receivePacket(f, RAM, MultifdPacket.PAGES_PER_PACKET).normalPages();
            }
        } catch (StreamFormatException e) {
            if (e.offset() < 0 || e.offset() > data.length || !e.getMessage().contains("at byte offset")) {
                throw new AssertionError("format error without a valid offset: " + e.getMessage(), e);
            }
        }
        return pages;
    }

    @Test
    void seedsPlaceTheirPages() throws Exception {
        Path seed = Path.of("src/test/resources/org/livemig/migration/multifd/MultifdReceiverFuzzTestInputs/fuzzChannel/"
                + "three-packets");
        assertThat(receive(Files.readAllBytes(seed))).isEqualTo(5);
        assertThat(RAM.block("pc.ram").memory().get(java.lang.foreign.ValueLayout.JAVA_BYTE, 0x3000)).isEqualTo((byte) 3);
    }
}
