package org.livemig.stream;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.RepeatedTest;
import org.junit.jupiter.api.RepetitionInfo;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.livemig.stream.PostcopyRamDiscardCommand.Range;

class PostcopyCommandsTest {
    private static final long SEED = 0xC0DE_5EEDL;

    /** A command as a codec under test: write it, read it back. */
    interface Codec<T> {
        void write(MigrationFile f, T value) throws IOException;

        T read(MigrationFile f) throws IOException;
    }

    static final Codec<PostcopyAdviseCommand> ADVISE = new Codec<>() {
        public void write(MigrationFile f, PostcopyAdviseCommand v) throws IOException {
            v.write(f);
        }

        public PostcopyAdviseCommand read(MigrationFile f) throws IOException {
            return PostcopyAdviseCommand.read(f);
        }
    };
    static final Codec<PostcopyRamDiscardCommand> DISCARD = new Codec<>() {
        public void write(MigrationFile f, PostcopyRamDiscardCommand v) throws IOException {
            v.write(f);
        }

        public PostcopyRamDiscardCommand read(MigrationFile f) throws IOException {
            return PostcopyRamDiscardCommand.read(f);
        }
    };
    static final Codec<PackagedCommand> PACKAGED = new Codec<>() {
        public void write(MigrationFile f, PackagedCommand v) throws IOException {
            v.write(f);
        }

        public PackagedCommand read(MigrationFile f) throws IOException {
            return PackagedCommand.read(f);
        }
    };
    static final Codec<RecvBitmapCommand> RECV_BITMAP = new Codec<>() {
        public void write(MigrationFile f, RecvBitmapCommand v) throws IOException {
            v.write(f);
        }

        public RecvBitmapCommand read(MigrationFile f) throws IOException {
            return RecvBitmapCommand.read(f);
        }
    };

    @SuppressWarnings({"unchecked", "rawtypes"})
    static byte[] encode(Codec codec, Object v) throws IOException {
        MigrationFile f = MigrationFile.toMemory();
        codec.write(f, v);
        return f.toByteArray();
    }

    // ------------------------------------------------------------------ exact bytes

    static Stream<Arguments> exactBytes() {
        return Stream.of(
                // [observed 7.2] (format doc §7): ADVISE with 4 KiB host and target pages, the DISCARD header
                // of pc.ram with two ranges, PACKAGED of 0x7ef3 bytes
                Arguments.of(ADVISE, new PostcopyAdviseCommand(0x1000, 0x1000),
                        "08 0003 0010 0000000000001000 0000000000001000"),
                Arguments.of(DISCARD, new PostcopyRamDiscardCommand("pc.ram",
                                List.of(new Range(0x0, 0x1000), new Range(0x100000, 0xf00000))),
                        "08 0006 0029 00 06 \"pc.ram\" 00 0000000000000000 0000000000001000"
                                + " 0000000000100000 0000000000f00000"),
                Arguments.of(PACKAGED, new PackagedCommand(0x7ef3), "08 0007 0004 00007ef3"),
                // layouts of the format doc §7
                Arguments.of(ADVISE, PostcopyAdviseCommand.DIRTY_BITMAP_ONLY, "08 0003 0000"),
                Arguments.of(ADVISE, new PostcopyAdviseCommand(0x201000, 0x1000),
                        "08 0003 0010 0000000000201000 0000000000001000"),
                Arguments.of(DISCARD, new PostcopyRamDiscardCommand("pc.bios", List.of()),
                        "08 0006 000a 00 07 \"pc.bios\" 00"),
                Arguments.of(RECV_BITMAP, new RecvBitmapCommand("pc.ram"), "08 000a 0007 06 \"pc.ram\""));
    }

    @ParameterizedTest
    @MethodSource("exactBytes")
    @SuppressWarnings({"unchecked", "rawtypes"})
    void encodesAndDecodesExactBytes(Codec codec, Object value, String hex) throws IOException {
        byte[] want = Hex.bytes(hex);
        assertThat(Hex.of(encode(codec, value))).isEqualTo(Hex.of(want));
        MigrationFile f = MigrationFile.ofBytes(want);
        assertThat(codec.read(f)).isEqualTo(value);
        assertThat(f.atEof()).isTrue();
    }

    @Test
    void packagedBlobFollowsTheCommand() throws IOException {
        byte[] blob = Hex.bytes("08 0004 0000 08 0005 0000");
        MigrationFile w = MigrationFile.toMemory();
        PackagedCommand.write(w, blob);
        byte[] bytes = w.toByteArray();
        assertThat(Hex.of(bytes)).isEqualTo("08000700040000000a" + "0800040000080005" + "0000");
        MigrationFile f = MigrationFile.ofBytes(bytes);
        PackagedCommand p = PackagedCommand.read(f);
        assertThat(p.length()).isEqualTo(10);
        assertThat(p.readBlob(f)).isEqualTo(blob);
        assertThat(f.atEof()).isTrue();
    }

    // ------------------------------------------------------------------ round trips

    @RepeatedTest(100)
    void randomCommandsRoundTrip(RepetitionInfo rep) throws IOException {
        long seed = SEED + rep.getCurrentRepetition();
        SplittableRandom r = new SplittableRandom(seed);
        WireGen gen = new WireGen(r);
        List<Object> sent = new ArrayList<>();
        MigrationFile w = MigrationFile.toMemory();
        int n = 1 + r.nextInt(8);
        for (int i = 0; i < n; i++) {
            Object v = switch (r.nextInt(4)) {
                case 0 -> gen.advise();
                case 1 -> gen.discard();
                case 2 -> new PackagedCommand(r.nextInt(PackagedCommand.MAX_LENGTH + 1));
                default -> new RecvBitmapCommand(gen.blockName());
            };
            sent.add(v);
            switch (v) {
                case PostcopyAdviseCommand a -> a.write(w);
                case PostcopyRamDiscardCommand d -> d.write(w);
                case PackagedCommand p -> p.write(w);
                case RecvBitmapCommand b -> b.write(w);
                default -> throw new AssertionError(v);
            }
        }
        MigrationFile f = MigrationFile.ofBytes(w.toByteArray());
        List<Object> got = new ArrayList<>();
        for (Object v : sent) {
            long at = f.position();
            assertThat(f.peekByte()).isEqualTo(QemuStream.SECTION_COMMAND);
            got.add(switch (v) {
                case PostcopyAdviseCommand a -> PostcopyAdviseCommand.read(f);
                case PostcopyRamDiscardCommand d -> PostcopyRamDiscardCommand.read(f);
                case PackagedCommand p -> PackagedCommand.read(f);
                default -> RecvBitmapCommand.read(f);
            });
            int len = switch (v) {
                case PostcopyAdviseCommand a -> a.payloadLength();
                case PostcopyRamDiscardCommand d -> d.payloadLength();
                case PackagedCommand p -> PackagedCommand.LENGTH;
                case RecvBitmapCommand b -> b.payloadLength();
                default -> throw new AssertionError(v);
            };
            assertThat(f.position() - at).as("seed %d: %s", seed, v).isEqualTo(5 + len);
        }
        assertThat(got).as("seed %d", seed).isEqualTo(sent);
        assertThat(f.atEof()).as("seed %d", seed).isTrue();
    }

    /** Through readPayload, as the loader calls it after reading the framing itself. */
    @RepeatedTest(50)
    void payloadReadersMatchTheLoadersDispatch(RepetitionInfo rep) throws IOException {
        long seed = SEED * 3 + rep.getCurrentRepetition();
        WireGen gen = new WireGen(new SplittableRandom(seed));
        PostcopyRamDiscardCommand d = gen.discard();
        PostcopyAdviseCommand a = gen.advise();
        MigrationFile w = MigrationFile.toMemory();
        d.write(w);
        a.write(w);
        MigrationFile f = MigrationFile.ofBytes(w.toByteArray());
        List<Object> got = new ArrayList<>();
        for (int i = 0; i < 2; i++) {
            assertThat(f.getByte()).isEqualTo(QemuStream.SECTION_COMMAND);
            int cmd = f.getBe16();
            int len = f.getBe16();
            got.add(switch (cmd) {
                case QemuStream.CMD_POSTCOPY_RAM_DISCARD -> PostcopyRamDiscardCommand.readPayload(f, len);
                case QemuStream.CMD_POSTCOPY_ADVISE -> PostcopyAdviseCommand.readPayload(f, len);
                default -> throw new AssertionError("seed " + seed + ": command " + cmd);
            });
        }
        assertThat(got).as("seed %d", seed).containsExactly(d, a);
    }

    @RepeatedTest(25)
    void everyTruncationFailsWithAnOffset(RepetitionInfo rep) throws IOException {
        long seed = SEED * 5 + rep.getCurrentRepetition();
        SplittableRandom r = new SplittableRandom(seed);
        WireGen gen = new WireGen(r);
        Codec<?> codec;
        Object v;
        switch (r.nextInt(4)) {
            case 0 -> {
                codec = ADVISE;
                v = gen.advise();
            }
            case 1 -> {
                codec = DISCARD;
                v = gen.discard();
            }
            case 2 -> {
                codec = PACKAGED;
                v = new PackagedCommand(r.nextInt(1 << 20));
            }
            default -> {
                codec = RECV_BITMAP;
                v = new RecvBitmapCommand(gen.blockName());
            }
        }
        byte[] bytes = encode(codec, v);
        for (int cut : Hex.cuts(bytes.length, new SplittableRandom(seed))) {
            MigrationFile f = MigrationFile.ofBytes(Arrays.copyOf(bytes, cut));
            Codec<?> c = codec;
            StreamFormatException e = catchThrowableOfType(StreamFormatException.class, () -> c.read(f));
            assertThat(e).as("seed %d, %s cut at %d", seed, v, cut).isNotNull();
            assertThat(e.getMessage()).contains("truncated");
            assertThat(e.offset()).as("seed %d, cut at %d", seed, cut).isBetween(0L, (long) cut);
        }
    }

    /** Random payloads after a valid framing: a value or a StreamFormatException, nothing else. */
    @RepeatedTest(150)
    void garbagePayloadsFailCleanly(RepetitionInfo rep) {
        long seed = SEED * 11 + rep.getCurrentRepetition();
        SplittableRandom r = new SplittableRandom(seed);
        int[] cmds = {QemuStream.CMD_POSTCOPY_ADVISE, QemuStream.CMD_POSTCOPY_RAM_DISCARD, QemuStream.CMD_PACKAGED,
            QemuStream.CMD_RECV_BITMAP};
        int cmd = cmds[r.nextInt(cmds.length)];
        byte[] payload = new byte[r.nextInt(80)];
        r.nextBytes(payload);
        if (payload.length > 2 && r.nextBoolean()) {
            payload[0] = 0;
            payload[1] = (byte) r.nextInt(Math.min(payload.length, 20));
        }
        int len = r.nextInt(4) == 0 ? r.nextInt(0x10000) : payload.length;
        MigrationFile f = MigrationFile.ofBytes(payload);
        try {
            switch (cmd) {
                case QemuStream.CMD_POSTCOPY_ADVISE -> PostcopyAdviseCommand.readPayload(f, len);
                case QemuStream.CMD_POSTCOPY_RAM_DISCARD -> PostcopyRamDiscardCommand.readPayload(f, len);
                case QemuStream.CMD_PACKAGED -> PackagedCommand.readPayload(f, len);
                default -> RecvBitmapCommand.readPayload(f, len);
            }
        } catch (StreamFormatException e) {
            assertThat(e.offset()).as("seed %d: %s", seed, e.getMessage()).isBetween(-2L, (long) payload.length);
        } catch (RuntimeException | IOException e) {
            throw new AssertionError("seed " + seed + ": command " + cmd + " length " + len + " " + Hex.of(payload), e);
        }
    }

    // ------------------------------------------------------------------ bad fields

    static Stream<Arguments> badInput() {
        return Stream.of(
                Arguments.of(ADVISE, "08 0003 0008 0000000000001000", 3, "length 8, expected 16 or 0"),
                Arguments.of(ADVISE, "08 0003 0010 0000000000000000 0000000000000000", 5, "page-size summary 0"),
                Arguments.of(ADVISE, "08 0003 0010 0000000000001000 0000000000001800", 13, "not a power of two"),
                Arguments.of(ADVISE, "08 0003 0010 0000000000001000 0000000000000000", 13, "target page size 0"),
                Arguments.of(ADVISE, "08 0003 0010 8000000000001000 0000000000001000", 5, "not an OR of page sizes"),
                Arguments.of(ADVISE, "08 0004 0000", 1, "expected command POSTCOPY_ADVISE, found POSTCOPY_LISTEN"),
                Arguments.of(ADVISE, "04 0003 0000", 0, "found section type 0x04"),
                Arguments.of(DISCARD, "08 0006 0002 0000", 3, "shorter than version"),
                Arguments.of(DISCARD, "08 0006 000a 01 07 \"pc.bios\" 00", 5, "version 1, expected 0"),
                Arguments.of(DISCARD, "08 0006 000a 00 07 \"pc.bios\" 41", 14, "byte 0x41 after the block name"),
                Arguments.of(DISCARD, "08 0006 000a 00 08 \"pc.bios\" 00", 3, "block name is 8 bytes"),
                Arguments.of(DISCARD, "08 0006 0004 00 00 00 00", 6, "empty block name"),
                Arguments.of(DISCARD, "08 0006 000b 00 07 \"pc.bios\" 00 00", 3, "1 bytes of ranges, not a multiple of 16"),
                Arguments.of(DISCARD, "08 0006 001a 00 07 \"pc.bios\" 00 8000000000000000 0000000000001000", 15,
                        "range 0 of block pc.bios [9223372036854775808, +4096) is beyond any block"),
                Arguments.of(DISCARD, "08 0006 002a 00 07 \"pc.bios\" 00 0000000000000000 0000000000001000"
                        + " 7ffffffffffff000 0000000000002000", 31, "range 1 of block pc.bios"),
                Arguments.of(PACKAGED, "08 0007 0008 00000001 00000000", 3, "PACKAGED has length 8, expected 4"),
                Arguments.of(PACKAGED, "08 0007 0004 10000001", 5, "PACKAGED blob of 268435457 bytes is beyond the limit"),
                Arguments.of(PACKAGED, "08 0007 0004 ffffffff", 5, "PACKAGED blob of 4294967295 bytes"),
                Arguments.of(RECV_BITMAP, "08 000a 0001 00", 3, "at least 1"),
                Arguments.of(RECV_BITMAP, "08 000a 0004 02 \"abc\"", 3, "block name is 2 bytes (expected length 3)"),
                Arguments.of(RECV_BITMAP, "08 000a 0003 02 ff61", 6, "not valid UTF-8"));
    }

    @ParameterizedTest
    @MethodSource("badInput")
    void badFieldsAreNamedWithTheirOffset(Codec<?> codec, String hex, long offset, String text) {
        MigrationFile f = MigrationFile.ofBytes(Hex.bytes(hex));
        StreamFormatException e = catchThrowableOfType(StreamFormatException.class, () -> codec.read(f));
        assertThat(e).as(hex).isNotNull();
        assertThat(e.getMessage()).contains(text);
        assertThat(e.offset()).isEqualTo(offset);
        assertThat(f.error()).as("the error sticks to the file").isSameAs(e);
    }

    @Test
    void packagedLimitIsCheckedBeforeTheBlobIsRead() throws IOException {
        MigrationFile f = MigrationFile.ofBytes(Hex.bytes("08 0007 0004 01000001"));
        assertThat(f.getByte()).isEqualTo(8);
        assertThat(f.getBe16()).isEqualTo(QemuStream.CMD_PACKAGED);
        int len = f.getBe16();
        assertThatThrownBy(() -> PackagedCommand.readPayload(f, len, PackagedCommand.QEMU_MAX_LENGTH))
                .isInstanceOf(StreamFormatException.class)
                .hasMessageContaining("16777217 bytes is beyond the limit of 16777216");
    }

    @Test
    void discardRefusesMoreRangesThanTheLengthCarries() {
        int max = PostcopyRamDiscardCommand.maxRanges(6);
        assertThat(max).isEqualTo((0xFFFF - 9) / 16);
        List<Range> ranges = new ArrayList<>();
        for (int i = 0; i <= max; i++) {
            ranges.add(new Range((long) i << 12, 4096));
        }
        assertThatThrownBy(() -> new PostcopyRamDiscardCommand("pc.ram", ranges))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("do not fit one command");
        assertThat(new PostcopyRamDiscardCommand("pc.ram", ranges.subList(0, max)).payloadLength()).isLessThanOrEqualTo(0xFFFF);
    }

    @Test
    void discardBatchesAsQemuDoes() {
        List<Range> ranges = new ArrayList<>();
        for (int i = 0; i < 30; i++) {
            ranges.add(new Range((long) i << 13, 4096));
        }
        List<PostcopyRamDiscardCommand> batches = PostcopyRamDiscardCommand.batches("pc.ram", ranges);
        assertThat(batches).extracting(b -> b.ranges().size()).containsExactly(12, 12, 6);
        assertThat(batches.stream().flatMap(b -> b.ranges().stream()).toList()).isEqualTo(ranges);
        assertThat(PostcopyRamDiscardCommand.batches("pc.ram", List.of())).isEmpty();
    }

    @Test
    void rangesAndValuesRefuseWhatTheWireCannotCarry() {
        assertThatThrownBy(() -> new Range(-1, 0)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> new Range(Long.MAX_VALUE, 1)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> new PostcopyAdviseCommand(0x1000, 0x1001)).hasMessageContaining("power of two");
        assertThatThrownBy(() -> new PostcopyAdviseCommand(0, 0x1000)).hasMessageContaining("summary 0");
        assertThatThrownBy(() -> new PackagedCommand(PackagedCommand.MAX_LENGTH + 1)).hasMessageContaining("limit");
        assertThatThrownBy(() -> new RecvBitmapCommand("")).hasMessageContaining("empty");
        assertThat(new Range(0x2000, 0x1000).isWithin(0x3000, 0x1000)).isTrue();
        assertThat(new Range(0x2000, 0x2000).isWithin(0x3000, 0x1000)).isFalse();
        assertThat(new Range(0x2000, 0x800).isWithin(0x3000, 0x1000)).isFalse();
    }
}
