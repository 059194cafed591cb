package org.livemig.analyze;

import static org.assertj.core.api.Assertions.assertThat;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;
import java.util.zip.Deflater;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

import tools.jackson.databind.node.JsonNodeFactory;
import tools.jackson.databind.node.ObjectNode;

/** XBZRLE and zlib page codecs, and the Python-compatible JSON printer. */
class PageCodecsTest {
    static final int PAGE = 4096;

    static MemorySegment page(byte[] b) {
        MemorySegment s = Arena.ofAuto().allocate(PAGE);
        MemorySegment.copy(b, 0, s, ValueLayout.JAVA_BYTE, 0, b.length);
        return s;
    }

    @Test
    void decodesTheDeltasSeenIn72() {
        MemorySegment p = page(new byte[PAGE]);
        assertThat(PageCodecs.xbzrleDecode(new byte[] {0, 1, 0x75}, p, PAGE)).isNull();
        assertThat(p.get(ValueLayout.JAVA_BYTE, 0)).isEqualTo((byte) 0x75);
        assertThat(PageCodecs.xbzrleDecode(new byte[] {0, 2, 0x11, 0x15}, p, PAGE)).isNull();
        assertThat(p.asSlice(0, 3).toArray(ValueLayout.JAVA_BYTE)).containsExactly(0x11, 0x15, 0);
        // a two-byte run length: 0x81 0x20 = 1 + (0x20 << 7) = 4097 is past the page
        assertThat(PageCodecs.xbzrleDecode(new byte[] {(byte) 0x80, 0x20, 1, 9}, p, PAGE)).contains("past the end");
        assertThat(PageCodecs.xbzrleDecode(new byte[] {(byte) 0xFF, 0x1F, 1, 9}, p, PAGE)).isNull();
        assertThat(p.get(ValueLayout.JAVA_BYTE, 4095)).isEqualTo((byte) 9);
    }

    @Test
    void rejectsMalformedDeltas() {
        MemorySegment p = page(new byte[PAGE]);
        assertThat(PageCodecs.xbzrleDecode(new byte[] {5}, p, PAGE)).contains("ends inside a run header");
        assertThat(PageCodecs.xbzrleDecode(new byte[] {0, 0}, p, PAGE)).contains("length 0");
        assertThat(PageCodecs.xbzrleDecode(new byte[] {0, 3, 1}, p, PAGE)).contains("past the end of the delta");
        assertThat(PageCodecs.xbzrleDecode(new byte[] {(byte) 0x80, (byte) 0x80, 1}, p, PAGE)).contains("malformed");
        assertThat(PageCodecs.xbzrleDecode(new byte[] {0, 1, 1, (byte) 0xFF, 0x1F, 1, 1}, p, PAGE))
                .contains("past the end of the page");
    }

    @ParameterizedTest(name = "seed {0}")
    @ValueSource(longs = {1, 2, 3, 4, 5, 6, 7, 8})
    void encodeThenDecodeGivesTheNewPage(long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        byte[] prev = new byte[PAGE];
        rnd.nextBytes(prev);
        byte[] next = prev.clone();
        for (int i = 0, n = rnd.nextInt(200); i < n; i++) {
            next[rnd.nextInt(PAGE)] ^= (byte) (1 + rnd.nextInt(255));
        }
        byte[] delta = PageCodecs.xbzrleEncode(prev, next, PAGE);
        MemorySegment p = page(prev);
        assertThat(PageCodecs.xbzrleDecode(delta, p, PAGE)).as("seed " + seed).isNull();
        assertThat(p.toArray(ValueLayout.JAVA_BYTE)).as("seed " + seed).isEqualTo(next);
    }

    static byte[] deflate(byte[] data) {
        Deflater d = new Deflater(1);
        d.setInput(data);
        d.finish();
        byte[] out = new byte[data.length + 64];
        int n = d.deflate(out);
        d.end();
        return java.util.Arrays.copyOf(out, n);
    }

    @Test
    void inflatesExactlyOnePage() {
        try (PageCodecs c = new PageCodecs()) {
            byte[] data = new byte[PAGE];
            new SplittableRandom(9).nextBytes(data);
            MemorySegment p = page(new byte[PAGE]);
            assertThat(c.inflate(deflate(data), p, PAGE)).isNull();
            assertThat(p.toArray(ValueLayout.JAVA_BYTE)).isEqualTo(data);
            assertThat(c.inflate(deflate(new byte[2 * PAGE]), p, PAGE)).contains("more than one page");
            assertThat(c.inflate(deflate(new byte[100]), p, PAGE)).contains("100 bytes");
            byte[] z = deflate(data);
            assertThat(c.inflate(java.util.Arrays.copyOf(z, z.length / 2), p, PAGE)).contains("ends before");
            assertThat(c.inflate(new byte[] {1, 2, 3, 4}, p, PAGE)).contains("corrupt");
        }
    }

    @Test
    void pythonJsonEscapesLikeJsonDumps() {
        ObjectNode o = JsonNodeFactory.instance.objectNode();
        o.put("a\u00e9\"\\", "x\n\u0001");
        o.putArray("empty");
        o.putObject("none");
        o.putArray("list").add(1).add(true).addNull();
        assertThat(PythonJson.write(o)).isEqualTo("""
                {
                    "a\\u00e9\\"\\\\": "x\\n\\u0001",
                    "empty": [],
                    "none": {},
                    "list": [
                        1,
                        true,
                        null
                    ]
                }""");
    }
}
