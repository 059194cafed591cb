package org.livemig.stream;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

import java.io.IOException;
import java.io.InputStream;
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
import org.livemig.stream.ReturnPathMessage.Pong;
import org.livemig.stream.ReturnPathMessage.RecvBitmap;
import org.livemig.stream.ReturnPathMessage.ReqPages;
import org.livemig.stream.ReturnPathMessage.ReqPagesId;
import org.livemig.stream.ReturnPathMessage.ResumeAck;
import org.livemig.stream.ReturnPathMessage.Shut;
import org.livemig.stream.ReturnPathMessage.SwitchoverAck;

class ReturnPathCodecTest {
    private static final long SEED = 0x5EED_0F_0209L;

    // ------------------------------------------------------------------ exact bytes

    static Stream<Arguments> exactBytes() {
        return Stream.of(
                // [observed 7.2] precopy with return path, and the postcopy capture of the format doc §7.2
                Arguments.of(new Pong(1), "0002 0004 00000001"),
                Arguments.of(new Shut(0), "0001 0004 00000000"),
                Arguments.of(new ReqPagesId("pc.bios", 0, 0x1000),
                        "0003 0014 0000000000000000 00001000 07 \"pc.bios\""),
                // layouts of the format doc §9 and §6.5
                Arguments.of(new Pong(4), "0002 0004 00000004"),
                Arguments.of(new Shut(1), "0001 0004 00000001"),
                Arguments.of(new ReqPages(0x7fe000, 0x2000), "0004 000c 00000000007fe000 00002000"),
                Arguments.of(new ResumeAck(), "0006 0004 00000001"),
                Arguments.of(new SwitchoverAck(), "0007 0000"),
                Arguments.of(new RecvBitmap("pc.ram", new long[] {0x0102030405060708L, 0x80L}),
                        "0005 0007 06 \"pc.ram\" 0000000000000010 0807060504030201 8000000000000000 0123456789abcdef"),
                Arguments.of(new RecvBitmap("mem0", new long[0]),
                        "0005 0005 04 \"mem0\" 0000000000000000 0123456789abcdef"));
    }

    @ParameterizedTest
    @MethodSource("exactBytes")
    void encodesAndDecodesExactBytes(ReturnPathMessage m, String hex) throws IOException {
        byte[] want = Hex.bytes(hex);
        assertThat(Hex.of(ReturnPathCodec.toBytes(m))).isEqualTo(Hex.of(want));
        MigrationFile f = MigrationFile.ofBytes(want);
        assertThat(ReturnPathCodec.read(f)).isEqualTo(m);
        assertThat(f.atEof()).isTrue();
    }

    /** The return path a real QEMU 7.2 destination sent during a precopy migration. */
    @Test
    void decodesTheQemuReturnPathFixture() throws IOException {
        byte[] rp;
        try (InputStream in = getClass().getResourceAsStream("/qemu-7.2/pc-16M-live-tcp-returnpath.rp")) {
            assertThat(in).isNotNull();
            rp = in.readAllBytes();
        }
        MigrationFile f = MigrationFile.ofBytes(rp);
        List<ReturnPathMessage> got = new ArrayList<>();
        while (!f.atEof()) {
            got.add(ReturnPathCodec.read(f));
        }
        assertThat(got).containsExactly(new Pong(1), new Shut(0));
    }

    @Test
    void typeNamesFollowQemu() {
        assertThat(new ReqPagesId("a", 0, 0).name()).isEqualTo("REQ_PAGES_ID");
        assertThat(ReturnPathCodec.typeName(QemuStream.RP_RECV_BITMAP)).isEqualTo("RECV_BITMAP");
        assertThat(ReturnPathCodec.typeName(99)).isEqualTo("UNKNOWN(99)");
    }

    // ------------------------------------------------------------------ round trips

    @RepeatedTest(100)
    void randomSequencesRoundTrip(RepetitionInfo rep) throws IOException {
        long seed = SEED + rep.getCurrentRepetition();
        WireGen gen = new WireGen(new SplittableRandom(seed));
        List<ReturnPathMessage> sent = gen.messages(20);
        MigrationFile w = MigrationFile.toMemory();
        for (ReturnPathMessage m : sent) {
            ReturnPathCodec.write(w, m);
        }
        byte[] bytes = w.toByteArray();
        MigrationFile f = MigrationFile.ofBytes(bytes);
        List<ReturnPathMessage> got = new ArrayList<>();
        for (int i = 0; i < sent.size(); i++) {
            got.add(ReturnPathCodec.read(f));
        }
        assertThat(got).as("seed %d", seed).isEqualTo(sent);
        assertThat(f.atEof()).as("seed %d: trailing bytes", seed).isTrue();
        assertThat(f.position()).as("seed %d", seed).isEqualTo(bytes.length);
    }

    /** Every strict prefix of a message is a truncation error inside the message, never a hang or another error. */
    @RepeatedTest(25)
    void everyTruncationFailsWithAnOffset(RepetitionInfo rep) throws IOException {
        long seed = SEED * 7 + rep.getCurrentRepetition();
        ReturnPathMessage m = new WireGen(new SplittableRandom(seed)).message();
        byte[] bytes = ReturnPathCodec.toBytes(m);
        for (int cut : Hex.cuts(bytes.length, new SplittableRandom(seed))) {
            MigrationFile f = MigrationFile.ofBytes(Arrays.copyOf(bytes, cut));
            StreamFormatException e = catchThrowableOfType(StreamFormatException.class, () -> ReturnPathCodec.read(f));
            assertThat(e).as("seed %d, %s cut at %d", seed, m, cut).isNotNull();
            assertThat(e.getMessage()).as("seed %d, cut at %d", seed, cut).contains("truncated");
            assertThat(e.offset()).as("seed %d, cut at %d", seed, cut).isBetween(0L, (long) cut);
            assertThat(f.error()).as("sticky").isSameAs(e);
        }
    }

    /** Random bytes: only ever a message or a StreamFormatException, never another exception or a big allocation. */
    @RepeatedTest(150)
    void garbageFailsCleanly(RepetitionInfo rep) throws IOException {
        long seed = SEED * 31 + rep.getCurrentRepetition();
        SplittableRandom r = new SplittableRandom(seed);
        byte[] bytes = new byte[r.nextInt(64)];
        r.nextBytes(bytes);
        if (bytes.length >= 2 && r.nextBoolean()) {
            bytes[0] = 0; // a plausible type, so payload checks run
            bytes[1] = (byte) (1 + r.nextInt(7));
        }
        if (bytes.length >= 4 && r.nextBoolean()) {
            bytes[2] = 0;
        }
        MigrationFile f = MigrationFile.ofBytes(bytes);
        try {
            while (!f.atEof()) {
                ReturnPathCodec.read(f);
            }
        } catch (StreamFormatException e) {
            assertThat(e.offset()).as("seed %d: %s", seed, e.getMessage()).isBetween(0L, (long) bytes.length);
        } catch (RuntimeException | IOException e) {
            throw new AssertionError("seed " + seed + ": " + Hex.of(bytes), e);
        }
    }

    // ------------------------------------------------------------------ bad fields

    static Stream<Arguments> badInput() {
        return Stream.of(
                Arguments.of("0000 0000", 0, "unknown type 0"),
                Arguments.of("0008 0000", 0, "unknown type 8"),
                Arguments.of("ffff 0004 00000000", 0, "unknown type 65535"),
                Arguments.of("0002 0201", 2, "longer than 512"),
                Arguments.of("0002 0005 0000000100", 2, "PONG has length 5, expected 4"),
                Arguments.of("0001 0000", 2, "SHUT has length 0, expected 4"),
                Arguments.of("0004 000d 00000000000000000000000000", 2, "REQ_PAGES has length 13, expected 12"),
                Arguments.of("0004 000c 8000000000000000 00001000", 4, "REQ_PAGES start 9223372036854775808"),
                Arguments.of("0003 000d 0000000000000000 00001000 00", 2, "at least 1"),
                Arguments.of("0003 0014 0000000000000000 00001000 06 \"pc.bios\"", 2,
                        "its block name is 6 bytes (expected length 19)"),
                Arguments.of("0003 0014 0000000000000000 00001000 08 \"pc.bios\"", 2, "block name is 8 bytes"),
                Arguments.of("0003 0014 ffffffffffffffff 00001000 07 \"pc.bios\"", 4, "beyond any block"),
                Arguments.of("0003 000e 0000000000000000 00001000 01 00", 17, "NUL"),
                Arguments.of("0003 000f 0000000000000000 00001000 02 c328", 17, "not valid UTF-8"),
                Arguments.of("0005 0001 00", 2, "at least 1"),
                Arguments.of("0005 0003 01 \"ab\"", 2, "block name is 1 bytes (expected length 2)"),
                Arguments.of("0005 0002 01 \"a\" 0000000000000009", 6, "not a multiple of 8"),
                Arguments.of("0005 0002 01 \"a\" 7fffffffffffffff", 6, "beyond the limit"),
                Arguments.of("0005 0002 01 \"a\" ffffffffffffffff", 6, "beyond the limit"),
                Arguments.of("0005 0002 01 \"a\" 0000000000000008 0100000000000000 0123456789abcdee", 22,
                        "end mark 0x0123456789abcdee"),
                Arguments.of("0006 0004 00000002", 4, "RESUME_ACK value 2, expected 1"),
                Arguments.of("0006 0000", 2, "RESUME_ACK has length 0"),
                Arguments.of("0007 0004 00000000", 2, "SWITCHOVER_ACK has length 4, expected 0"));
    }

    @ParameterizedTest
    @MethodSource("badInput")
    void badFieldsAreNamedWithTheirOffset(String hex, long offset, String text) {
        MigrationFile f = MigrationFile.ofBytes(Hex.bytes(hex));
        StreamFormatException e = catchThrowableOfType(StreamFormatException.class, () -> ReturnPathCodec.read(f));
        assertThat(e).as(hex).isNotNull();
        assertThat(e.getMessage()).contains(text);
        assertThat(e.offset()).isEqualTo(offset);
        assertThat(f.error()).as("the error sticks to the file").isSameAs(e);
    }

    @Test
    void bitmapLimitIsCheckedBeforeAllocating() {
        byte[] bytes = Hex.bytes("0005 0007 06 \"pc.ram\" 0000000000000010");
        MigrationFile f = MigrationFile.ofBytes(bytes);
        assertThatThrownBy(() -> ReturnPathCodec.read(f, 8)).isInstanceOf(StreamFormatException.class)
                .hasMessageContaining("bitmap size 16 bytes is beyond the limit of 8");
    }

    @Test
    void messagesRefuseWhatTheWireCannotCarry() {
        assertThatThrownBy(() -> new ReqPagesId("", 0, 0)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("empty");
        assertThatThrownBy(() -> new ReqPagesId("x".repeat(256), 0, 0)).hasMessageContaining("256 bytes");
        assertThatThrownBy(() -> new ReqPagesId("a\0b", 0, 0)).hasMessageContaining("NUL");
        assertThatThrownBy(() -> new ReqPages(-1, 0)).hasMessageContaining("beyond any block");
        assertThatThrownBy(() -> new ReqPages(0, 1L << 32)).hasMessageContaining("be32");
        assertThatThrownBy(() -> new RecvBitmap("pc.ram", null)).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void pageRequestRangeCheck() {
        assertThat(new ReqPages(0x1000, 0x1000).isWithin(0x2000, 0x1000)).isTrue();
        assertThat(new ReqPages(0x1000, 0x2000).isWithin(0x2000, 0x1000)).isFalse();
        assertThat(new ReqPages(0x800, 0x1000).isWithin(0x4000, 0x1000)).isFalse();
        assertThat(new ReqPagesId("pc.ram", 0, 0x800).isWithin(0x4000, 0x1000)).isFalse();
        assertThat(new ReqPagesId("pc.ram", Long.MAX_VALUE & ~0xFFFL, 0x1000).isWithin(0x4000, 0x1000)).isFalse();
    }

    @Test
    void recvBitmapHelpers() {
        RecvBitmap b = new RecvBitmap("pc.ram", new long[] {0b101, 1L << 63});
        assertThat(b.sizeBytes()).isEqualTo(16);
        assertThat(b.isSet(0)).isTrue();
        assertThat(b.isSet(1)).isFalse();
        assertThat(b.isSet(127)).isTrue();
        assertThat(b.isSet(128)).isFalse();
        assertThat(b).isEqualTo(new RecvBitmap("pc.ram", new long[] {5, Long.MIN_VALUE}));
        assertThat(b.hashCode()).isEqualTo(new RecvBitmap("pc.ram", new long[] {5, Long.MIN_VALUE}).hashCode());
    }
}
