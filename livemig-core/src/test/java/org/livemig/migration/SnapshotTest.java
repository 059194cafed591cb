package org.livemig.migration;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.livemig.machine.Machine;
import org.livemig.machine.RunState;
import org.livemig.memory.RamBlock;
import org.livemig.stream.StreamFormatException;
import tools.jackson.databind.node.ObjectNode;

class SnapshotTest {
    @TempDir
    Path dir;

    private ObjectNode save(Machine m, Path file) throws Exception {
        return m.mainLoop().call(() -> {
            Snapshots.save(m, file);
            return StateDigest.of(m);
        }, 60_000);
    }

    private ObjectNode load(Machine m, Path file) throws Exception {
        return m.mainLoop().call(() -> {
            Snapshots.load(m, file);
            return StateDigest.of(m);
        }, 60_000);
    }

    /** RAM that mixes zero pages, random pages and pages with a single byte set. */
    private static void mixPages(Machine m, long seed) {
        m.ram().markWritten(); // written directly below, not through the guest accessors
        SplittableRandom r = new SplittableRandom(seed);
        RamBlock b = m.mainBlock();
        for (long p = 0; p < b.pageCount(); p++) {
            switch (r.nextInt(3)) {
                case 0 -> b.page(p).fill((byte) 0);
                case 1 -> {
                    for (int i = 0; i < RamBlock.PAGE_SIZE; i += 8) {
                        b.memory().set(ValueLayout.JAVA_LONG, (p << 12) + i, r.nextLong());
                    }
                }
                default -> b.memory().set(ValueLayout.JAVA_BYTE, (p << 12) + r.nextInt(4096), (byte) (1 + r.nextInt(255)));
            }
        }
    }

    @ParameterizedTest(name = "fill={0}")
    @ValueSource(strings = {"zero", "random", "mixed"})
    void saveThenLoadRestoresRamAndEveryDevice(String fill) throws Exception {
        Machine.Config cfg = TestMachines.small("ab").withFill("random".equals(fill) ? Machine.Fill.RANDOM : Machine.Fill.ZERO);
        Path file = dir.resolve("vm.mig");
        ObjectNode saved;
        try (Machine src = TestMachines.booted(cfg, RunState.RUNNING)) {
            if ("mixed".equals(fill)) {
                src.mainLoop().runAndWait(() -> src.vmStop(RunState.PAUSED));
                mixPages(src, 42);
                src.mainLoop().runAndWait(src::vmStart);
            }
            org.awaitility.Awaitility.await().atMost(java.time.Duration.ofSeconds(10))
                    .until(() -> src.devices().serial().toString() != null && src.devices().blob() != null);
            saved = save(src, file);
            assertThat(src.runState()).isEqualTo(RunState.PAUSED);
        }
        try (Machine dst = TestMachines.booted(cfg.withSeed(99).withFill(Machine.Fill.ZERO), RunState.PAUSED)) {
            ObjectNode loaded = load(dst, file);
            assertThat(loaded.get("ram")).isEqualTo(saved.get("ram"));
            assertThat(loaded.get("devices")).isEqualTo(saved.get("devices"));
            if (!"mixed".equals(fill)) {
                assertThat(loaded.get("ab-check").get("ok").asBoolean()).as(loaded.toString()).isTrue();
            }
            assertThat(dst.runState()).isEqualTo(RunState.PAUSED);
        }
    }

    private Path savedSmall() throws Exception {
        Path file = dir.resolve("small.mig");
        try (Machine src = TestMachines.booted(TestMachines.small("ab").withFill(Machine.Fill.RANDOM), RunState.RUNNING)) {
            save(src, file);
        }
        return file;
    }

    private StreamFormatException loadFails(Path file, Machine.Config cfg) throws Exception {
        try (Machine dst = TestMachines.booted(cfg, RunState.PAUSED)) {
            Throwable t = null;
            try {
                load(dst, file);
            } catch (Exception e) {
                t = e;
            }
            assertThat(t).isInstanceOf(StreamFormatException.class);
            // The machine that failed to load is left paused and usable.
            assertThat(dst.runState()).isEqualTo(RunState.PAUSED);
            dst.mainLoop().runAndWait(dst::vmStart);
            assertThat(dst.runState()).isEqualTo(RunState.RUNNING);
            return (StreamFormatException) t;
        }
    }

    private Path variant(Path file, String name, java.util.function.UnaryOperator<byte[]> edit) throws IOException {
        Path out = dir.resolve(name);
        Files.write(out, edit.apply(Files.readAllBytes(file)));
        return out;
    }

    @Test
    void truncatedFileFailsWithOffsetAndSection() throws Exception {
        Path file = savedSmall();
        long size = Files.size(file);
        for (long cut : new long[] {3, 20, size / 3, size - 200}) {
            Path t = variant(file, "cut" + cut, b -> java.util.Arrays.copyOf(b, (int) cut));
            StreamFormatException e = loadFails(t, TestMachines.small("ab"));
            assertThat(e.getMessage()).contains("truncated").contains("offset");
            assertThat(e.offset()).isBetween(0L, cut);
        }
    }

    @Test
    void wrongMagicOrVersionIsRejected() throws Exception {
        Path file = savedSmall();
        Path magic = variant(file, "magic", b -> { b[0] = 'X'; return b; });
        assertThat(loadFails(magic, TestMachines.small("ab")).getMessage()).contains("magic").contains("offset 0");
        Path v2 = variant(file, "v2", b -> { b[7] = 2; return b; });
        assertThat(loadFails(v2, TestMachines.small("ab")).getMessage()).contains("version 2").contains("offset 4");
        Path v9 = variant(file, "v9", b -> { b[7] = 9; return b; });
        assertThat(loadFails(v9, TestMachines.small("ab")).getMessage()).contains("unsupported stream version 9");
    }

    @Test
    void ramBlockOfTheWrongSizeIsRejected() throws Exception {
        Path file = savedSmall();
        StreamFormatException e = loadFails(file, TestMachines.small("ab").withRam(32L << 20));
        assertThat(e.getMessage()).contains("RAM block 'pc.ram' has size 0x1000000 in the stream but 0x2000000 here")
                .contains("'ram' instance 0");
    }

    @Test
    void unknownSectionIsRejected() throws Exception {
        Path file = savedSmall();
        byte[] b = Files.readAllBytes(file);
        int at = indexOf(b, "\u0006serial".getBytes());
        assertThat(at).isPositive();
        Path renamed = variant(file, "unknown", x -> { x[at + 1] = 'S'; return x; });
        StreamFormatException e = loadFails(renamed, TestMachines.small("ab"));
        assertThat(e.getMessage()).contains("unknown section 'Serial' instance 0");
    }

    @Test
    void corruptedDeviceStateIsRefusedByTheDevice() throws Exception {
        Path file = savedSmall();
        byte[] b = Files.readAllBytes(file);
        // serial body: divider(2) lcr lsr ier scr fifo[16] fifo_head ...; set fifo_head to 200
        int at = indexOf(b, "\u0006serial".getBytes()) + 7 + 4 + 4;
        int head = at + 2 + 4 + 16;
        Path bad = variant(file, "badserial", x -> { x[head] = (byte) 200; return x; });
        StreamFormatException e = loadFails(bad, TestMachines.small("ab"));
        assertThat(e.getMessage()).contains("FIFO head 200").contains("'serial' instance 0");
    }

    @Test
    void corruptedRamRecordIsRejected() throws Exception {
        Path file = savedSmall();
        byte[] b = Files.readAllBytes(file);
        int at = indexOf(b, "\u0006pc.ram".getBytes(), indexOf(b, "\u0006pc.ram".getBytes()) + 1); // first page record's name
        Path bad = variant(file, "badram", x -> { x[at - 1] = 0x41; return x; }); // flags 0x.41: XBZRLE+FULL
        StreamFormatException e = loadFails(bad, TestMachines.small("ab"));
        assertThat(e.getMessage()).contains("RAM record flags").contains("offset");
    }

    private static int indexOf(byte[] hay, byte[] needle) {
        return indexOf(hay, needle, 0);
    }

    private static int indexOf(byte[] hay, byte[] needle, int from) {
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
    void streamStartsAsQemuStreamsDo() throws Exception {
        Path file = savedSmall();
        ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(file));
        assertThat(b.getInt()).isEqualTo(0x5145564D);
        assertThat(b.getInt()).isEqualTo(3);
        assertThat(b.get()).isEqualTo((byte) 0x07);
        int len = b.getInt();
        byte[] name = new byte[len];
        b.get(name);
        assertThat(new String(name)).isEqualTo(SaveVm.MACHINE_TYPE);
        assertThat(b.get()).isEqualTo((byte) 0x01); // START of ram
    }
}
