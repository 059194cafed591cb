package org.livemig.analyze;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.livemig.stream.QemuStream;
import org.livemig.stream.SectionHeader;
import org.livemig.stream.StreamFormatException;

/**
 * Decodes a device section body into {@link StreamValue}s following a {@link VmsdLayout}, the way a
 * generic reader must: fields in order, then subsections. With a vmdesc layout the decode is
 * exact; with a {@code -dump-vmstate} layout the existence of test-gated fields is guessed and a
 * guess is accepted only when it consumes the section's bytes exactly.
 *
 * <p>Not thread-safe: one per reader.
 */
final class DeviceDecoder {
    private final Limits limits;
    private int steps;
    /** Existence decisions of the current guess (bit i: i-th test-gated field is present). */
    private long guessMask;
    private int guessUsed;

    DeviceDecoder(Limits limits) {
        this.limits = limits;
    }

    /** Decodes exactly as the vmdesc layout says. */
    StreamValue.Struct decode(VmsdLayout layout, Src s, int sectionVersion) throws IOException {
        steps = 0;
        guessMask = 0;
        guessUsed = 0;
        return struct(layout, s, sectionVersion, 0);
    }

    /**
     * Decodes a section's bytes with a guessed (dump) layout: tries the combinations of the
     * test-gated fields' existence, fewest present first, and returns the first decode that uses
     * every byte.
     *
     * @throws StreamFormatException naming why no guess fitted
     */
    StreamValue.Struct decodeGuessing(VmsdLayout layout, byte[] body, long base, String section, int sectionVersion)
            throws StreamFormatException {
        long budget = Limits.MAX_GUESS_BYTES;
        String firstProblem = null;
        int decisions = -1;
        List<Long> masks = new ArrayList<>();
        masks.add(0L);
        for (int m = 0; m < masks.size(); m++) {
            Src.ArraySrc src = Src.of(body, base, section);
            steps = 0;
            guessMask = masks.get(m);
            guessUsed = 0;
            try {
                StreamValue.Struct v = struct(layout, src, sectionVersion, 0);
                if (src.atEnd()) {
                    return v;
                }
                if (firstProblem == null) {
                    firstProblem = "decoding used " + src.at + " of the section's " + body.length + " bytes";
                }
            } catch (IOException e) {
                if (firstProblem == null) {
                    firstProblem = e.getMessage();
                }
            }
            if (decisions < 0) {
                decisions = Math.min(guessUsed, 12);
                for (int k = 1; k <= decisions; k++) {
                    for (long mask = 1; mask < (1L << decisions); mask++) {
                        if (Long.bitCount(mask) == k) {
                            masks.add(mask);
                        }
                    }
                }
            }
            budget -= Math.max(body.length, 64);
            if (budget <= 0) {
                break;
            }
        }
        throw new StreamFormatException("the -dump-vmstate description does not fit the section: " + firstProblem,
                base, section, null);
    }

    private StreamValue.Struct struct(VmsdLayout l, Src s, int version, int depth) throws IOException {
        if (depth > limits.maxNesting()) {
            throw s.error("device state nested deeper than " + limits.maxNesting());
        }
        List<StreamValue.Field> fields = new ArrayList<>();
        for (VmsdLayout.FieldLayout f : l.fields()) {
            if (!l.exact()) {
                if (f.versionId() > version) {
                    continue;
                }
                if (f.existsTest() && !guess()) {
                    continue;
                }
            }
            int n = f.arrayLen() >= 0 ? f.arrayLen() : 1;
            for (int i = 0; i < n; i++) {
                if (++steps > limits.maxDecodeSteps()) {
                    throw s.error("more than " + limits.maxDecodeSteps() + " fields in one section");
                }
                int index = f.arrayLen() >= 0 ? i : f.index();
                StreamValue v;
                if (f.struct() != null) {
                    v = struct(f.struct(), s, f.struct().version(), depth + 1);
                } else {
                    v = leaf(f, s);
                }
                fields.add(new StreamValue.Field(f.name(), index, v));
            }
        }
        List<StreamValue.Subsection> subs = new ArrayList<>();
        if (l.exact()) {
            for (VmsdLayout sub : l.subsections()) {
                long at = s.pos();
                int t = s.u8();
                if (t != QemuStream.SECTION_SUBSECTION) {
                    throw new StreamFormatException("subsection " + sub.name() + " not found (byte 0x"
                            + Integer.toHexString(t) + ")", at, section(s), null);
                }
                String name = s.countedString();
                int ver = s.be32();
                if (!SectionHeader.display(name).equals(sub.name())) {
                    throw new StreamFormatException("subsection " + SectionHeader.display(name) + " where the vmdesc says "
                            + sub.name(), at, section(s), null);
                }
                subs.add(new StreamValue.Subsection(name, ver, struct(sub, s, ver, depth + 1)));
            }
        } else {
            while (isSubsection(s, l.name())) {
                long at = s.pos();
                s.u8();
                String name = s.countedString();
                int ver = s.be32();
                VmsdLayout sub = null;
                for (VmsdLayout c : l.subsections()) {
                    if (c.name().equals(SectionHeader.display(name))) {
                        sub = c;
                    }
                }
                if (sub == null) {
                    throw new StreamFormatException("unknown subsection " + SectionHeader.display(name), at, section(s), null);
                }
                subs.add(new StreamValue.Subsection(name, ver, struct(sub, s, ver, depth + 1)));
            }
        }
        return new StreamValue.Struct(fields, subs);
    }

    private static String section(Src s) {
        return s instanceof Src.ArraySrc a ? a.section : null;
    }

    private boolean guess() {
        int bit = guessUsed++;
        return bit < 63 && ((guessMask >>> bit) & 1) != 0;
    }

    private StreamValue leaf(VmsdLayout.FieldLayout f, Src s) throws IOException {
        StreamValue.Kind kind = StreamValue.Kind.ofType(f.type());
        if (kind == StreamValue.Kind.CAPABILITY) {
            int n = s.u8();
            return new StreamValue.Leaf(f.type(), kind, s.bytes(n, 255, "capability"));
        }
        return new StreamValue.Leaf(f.type(), kind, s.bytes(f.size(), limits.maxFieldBytes(), "field " + f.name()));
    }

    /**
     * QEMU's test for a subsection: the next byte is SUBSECTION, and the name that follows is at
     * least one longer than the parent's and starts with it.
     */
    static boolean isSubsection(Src s, String parent) throws IOException {
        if (s.peek(0) != QemuStream.SECTION_SUBSECTION) {
            return false;
        }
        byte[] p = parent.getBytes(StandardCharsets.UTF_8);
        int len = s.peek(1);
        if (len < p.length + 1) {
            return false;
        }
        for (int i = 0; i < p.length; i++) {
            if (s.peek(2 + i) != (p[i] & 0xFF)) {
                return false;
            }
        }
        return true;
    }
}
