package org.livemig.stream;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.ByteArrayOutputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The XBZRLE encoder against the decoder, and both against a plain byte-by-byte reading of the
 * format written here: seeded random pages with random small changes (a change in the last byte,
 * no change at all, runs across the one- to two-byte ULEB128 boundary, a page changed throughout),
 * and hostile deltas. Every case names its seed; {@code -Dlivemig.seed=N} reruns from another one.
 */
class XbzrleCodecTest {
    static final int PAGE = 4096;
    static final long BASE_SEED = Long.getLong("livemig.seed", 0x5EED_17L);

    static MemorySegment segment(byte[] b) {
        MemorySegment s = Arena.ofAuto().allocate(b.length);
        MemorySegment.copy(b, 0, s, ValueLayout.JAVA_BYTE, 0, b.length);
        return s;
    }

    /** The format read the slow way: pairs of (unchanged, changed, bytes), changed runs ending at an equal byte. */
    static byte[] referenceEncode(byte[] old, byte[] cur) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        int i = 0;
        while (i < old.length) {
            int z = 0;
            while (i + z < old.length && old[i + z] == cur[i + z]) {
                z++;
            }
            if (i + z == old.length) {
                break;
            }
            int n = 0;
            while (i + z + n < old.length && old[i + z + n] != cur[i + z + n]) {
                n++;
            }
            uleb(out, z);
            uleb(out, n);
            out.write(cur, i + z, n);
            i += z + n;
        }
        return out.toByteArray();
    }

    private static void uleb(ByteArrayOutputStream out, int v) {
        if (v < 0x80) {
            out.write(v);
        } else {
            out.write(0x80 | (v & 0x7F));
            out.write(v >>> 7);
        }
    }

    /** A page changed in a way drawn from {@code r}: the kinds of change a guest makes. */
    static byte[] change(byte[] old, SplittableRandom r) {
        byte[] cur = old.clone();
        switch (r.nextInt(8)) {
            case 0 -> cur[PAGE - 1] ^= (byte) (1 + r.nextInt(255)); // the last byte only
            case 1 -> cur[0] ^= (byte) (1 + r.nextInt(255)); // the first byte only
            case 2 -> { } // no change
            case 3 -> { // a long run, across the ULEB128 one-byte limit
                int start = r.nextInt(PAGE - 300);
                for (int k = start; k < start + 128 + r.nextInt(150); k++) {
                    cur[k] = (byte) ~cur[k];
                }
            }
            case 4 -> { // scattered single bytes
                for (int k = 0, n = 1 + r.nextInt(200); k < n; k++) {
                    cur[r.nextInt(PAGE)] ^= (byte) (1 + r.nextInt(255));
                }
            }
            case 5 -> { // runs of random new bytes (some equal to the old ones by chance)
                for (int k = 0, n = 1 + r.nextInt(10); k < n; k++) {
                    int start = r.nextInt(PAGE);
                    for (int j = start; j < Math.min(PAGE, start + 1 + r.nextInt(40)); j++) {
                        cur[j] = (byte) r.nextInt(256);
                    }
                }
            }
            case 6 -> { // a word written every 64 bytes (a counter per cache line)
                for (int k = r.nextInt(64) & ~7; k < PAGE; k += 64) {
                    cur[k] ^= 1;
                }
            }
            default -> r.nextBytes(cur); // changed throughout
        }
        return cur;
    }

    static byte[] randomPage(SplittableRandom r) {
        byte[] p = new byte[PAGE];
        switch (r.nextInt(3)) {
            case 0 -> r.nextBytes(p);
            case 1 -> { } // zero
            default -> { // sparse
                for (int k = 0; k < 64; k++) {
                    p[r.nextInt(PAGE)] = (byte) r.nextInt(256);
                }
            }
        }
        return p;
    }

    @Test
    void encoderMatchesTheReferenceAndTheDecoderRestoresThePage() {
        SplittableRandom seeds = new SplittableRandom(BASE_SEED);
        byte[] dst = new byte[PAGE];
        for (int n = 0; n < 3000; n++) {
            long seed = seeds.nextLong();
            SplittableRandom r = new SplittableRandom(seed);
            byte[] old = randomPage(r);
            byte[] cur = change(old, r);
            byte[] ref = referenceEncode(old, cur);
            int len = XbzrleCodec.encode(segment(old), 0, segment(cur), 0, PAGE, dst, PAGE - 1);
            String what = "seed " + seed + " (base " + BASE_SEED + ", case " + n + ")";
            if (Arrays.equals(old, cur)) {
                assertThat(len).as(what).isEqualTo(XbzrleCodec.UNCHANGED);
                continue;
            }
            if (ref.length > PAGE - 1) {
                assertThat(len).as(what + ": a delta of %d bytes overflows", ref.length).isEqualTo(XbzrleCodec.OVERFLOW);
                continue;
            }
            assertThat(Arrays.copyOf(dst, len)).as(what).isEqualTo(ref);
            MemorySegment page = segment(old);
            assertThat(XbzrleCodec.decode(dst, len, page, 0, PAGE)).as(what).isNull();
            assertThat(page.toArray(ValueLayout.JAVA_BYTE)).as(what).isEqualTo(cur);
        }
    }

    @Test
    void theEdgesOfTheFormat() {
        byte[] old = new byte[PAGE];
        byte[] dst = new byte[PAGE];
        // no difference: nothing to send
        assertThat(XbzrleCodec.encode(segment(old), 0, segment(old.clone()), 0, PAGE, dst, PAGE - 1)).isZero();
        // the last byte: one unchanged run of 4095 (two ULEB bytes), one changed byte
        byte[] cur = old.clone();
        cur[PAGE - 1] = 7;
        int len = XbzrleCodec.encode(segment(old), 0, segment(cur), 0, PAGE, dst, PAGE - 1);
        assertThat(Arrays.copyOf(dst, len)).containsExactly(0xFF, 0x1F, 1, 7);
        // the first byte: an empty unchanged run, then the byte, and the rest left out
        cur = old.clone();
        cur[0] = 0x75;
        len = XbzrleCodec.encode(segment(old), 0, segment(cur), 0, PAGE, dst, PAGE - 1);
        assertThat(Arrays.copyOf(dst, len)).containsExactly(0, 1, 0x75);
        // a page changed throughout overflows at any limit below its size
        byte[] all = new byte[PAGE];
        Arrays.fill(all, (byte) 1);
        assertThat(XbzrleCodec.encode(segment(old), 0, segment(all), 0, PAGE, dst, PAGE - 1)).isEqualTo(XbzrleCodec.OVERFLOW);
        assertThat(XbzrleCodec.encode(segment(old), 0, segment(all), 0, PAGE, dst, PAGE)).isEqualTo(XbzrleCodec.OVERFLOW);
        // pages at offsets inside larger segments
        MemorySegment big = Arena.ofAuto().allocate(3 * PAGE);
        big.asSlice(2 * PAGE, PAGE).copyFrom(segment(cur));
        len = XbzrleCodec.encode(segment(old), 0, big, 2 * PAGE, PAGE, dst, PAGE - 1);
        assertThat(Arrays.copyOf(dst, len)).containsExactly(0, 1, 0x75);
    }

    @Test
    void decodesTheDeltasSeenIn72() {
        MemorySegment p = segment(new byte[PAGE]);
        assertThat(XbzrleCodec.decode(new byte[] {0, 1, 0x75}, 3, p, 0, PAGE)).isNull();
        assertThat(p.get(ValueLayout.JAVA_BYTE, 0)).isEqualTo((byte) 0x75);
        assertThat(XbzrleCodec.decode(new byte[] {0, 2, 0x11, 0x15}, 4, p, 0, PAGE)).isNull();
        assertThat(p.asSlice(0, 3).toArray(ValueLayout.JAVA_BYTE)).containsExactly(0x11, 0x15, 0);
        assertThat(XbzrleCodec.decode(new byte[] {(byte) 0xFF, 0x1F, 1, 9}, 4, p, 0, PAGE)).isNull();
        assertThat(p.get(ValueLayout.JAVA_BYTE, 4095)).isEqualTo((byte) 9);
        assertThat(XbzrleCodec.decode(new byte[0], 0, p, 0, PAGE)).as("an empty delta changes nothing").isNull();
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"05", "00 00", "00 03 01", "80 80 01", "00 01 01 FF 1F 01 01", "80 20 01 09",
        "00 01 01 00 01 02", "00 01", "00 81"})
    void malformedDeltasAreRefusedWithTheirByte(String hex) {
        byte[] d = Hex.bytes(hex);
        MemorySegment p = segment(new byte[PAGE]);
        String err = XbzrleCodec.decode(d, d.length, p, 0, PAGE);
        assertThat(err).as(hex).isNotNull().containsPattern("byte \\d+");
    }

    @Test
    void noDeltaWritesOutsideItsPage() {
        // The page sits between two guard pages; hostile deltas of every shape must leave them alone.
        SplittableRandom seeds = new SplittableRandom(BASE_SEED ^ 0xBAD);
        MemorySegment ram = Arena.ofAuto().allocate(3 * PAGE);
        MemorySegment guard = Arena.ofAuto().allocate(PAGE).fill((byte) 0x5A);
        for (int n = 0; n < 20_000; n++) {
            long seed = seeds.nextLong();
            SplittableRandom r = new SplittableRandom(seed);
            ram.fill((byte) 0x5A);
            byte[] d = new byte[r.nextInt(64)];
            for (int k = 0; k < d.length; k++) {
                // mostly small counts and ULEB continuation bytes, so that runs reach the page's end
                d[k] = (byte) switch (r.nextInt(4)) {
                    case 0 -> r.nextInt(256);
                    case 1 -> 0x80 | r.nextInt(128);
                    case 2 -> r.nextInt(0x20);
                    default -> 0x1F;
                };
            }
            XbzrleCodec.decode(d, d.length, ram, PAGE, PAGE);
            for (long g : new long[] {0, 2 * PAGE}) {
                if (ram.asSlice(g, PAGE).mismatch(guard) >= 0) {
                    throw new AssertionError(String.format("guard page at %d written, seed %d (base %d), delta %s",
                            g, seed, BASE_SEED, java.util.HexFormat.of().formatHex(d)));
                }
            }
        }
    }

    @Test
    void payloadRoundTripsAndIsChecked() throws Exception {
        MigrationFile w = MigrationFile.toMemory();
        XbzrleCodec.putPayload(w, new byte[] {0, 1, 0x75, 9}, 3);
        byte[] bytes = w.toByteArray();
        assertThat(bytes).containsExactly(1, 0, 3, 0, 1, 0x75);
        byte[] into = new byte[PAGE];
        assertThat(XbzrleCodec.readPayload(MigrationFile.ofBytes(bytes), into, PAGE)).isEqualTo(3);
        assertThat(Arrays.copyOf(into, 3)).containsExactly(0, 1, 0x75);
        org.assertj.core.api.Assertions.assertThatThrownBy(() ->
                XbzrleCodec.readPayload(MigrationFile.ofBytes(new byte[] {2, 0, 1, 0}), into, PAGE))
                .isInstanceOf(StreamFormatException.class).hasMessageContaining("encoding 2");
        org.assertj.core.api.Assertions.assertThatThrownBy(() ->
                XbzrleCodec.readPayload(MigrationFile.ofBytes(new byte[] {1, 0x10, 1}), into, PAGE))
                .isInstanceOf(StreamFormatException.class).hasMessageContaining("4097 bytes")
                .hasMessageContaining("offset 1");
    }
}
