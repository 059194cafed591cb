package org.livemig.vmstate;

import java.util.ArrayList;
import java.util.List;

/** A small hand-written device with one field of most kinds, for the exact-bytes and version tests. */
final class TestDevice {
    long a;
    long b;
    long c;
    long d;
    boolean e;
    final byte[] buf = new byte[3];
    final int[] arr = new int[2];
    long n;
    byte[] v = new byte[0];
    final Inner s = new Inner();
    long z;
    long k;
    boolean subNeeded;
    boolean offNeeded;
    final List<String> log = new ArrayList<>();

    static final class Inner {
        long x;
        long y;
        boolean extraNeeded = true;
        final List<String> log = new ArrayList<>();
    }

    static final VMStateDescription<Inner> INNER = VMStateDescription.<Inner>builder("inner")
            .uint16("x", i -> i.x, (i, val) -> i.x = val)
            .subsection(VMStateDescription.<Inner>builder("inner/extra")
                    .uint8("y", i -> i.y, (i, val) -> i.y = val)
                    .needed(i -> i.extraNeeded)
                    .preLoad(i -> i.log.add("extra.preLoad"))
                    .postLoad((i, ver) -> i.log.add("extra.postLoad v" + ver))
                    .build())
            .preSave(i -> i.log.add("preSave"))
            .preLoad(i -> i.log.add("preLoad"))
            .postLoad((i, ver) -> i.log.add("postLoad v" + ver))
            .build();

    static final VMStateDescription<TestDevice> SUB = VMStateDescription.<TestDevice>builder("dev/sub")
            .version(2)
            .int8("k", t -> t.k, (t, val) -> t.k = val)
            .needed(t -> t.subNeeded)
            .preLoad(t -> t.log.add("sub.preLoad"))
            .postLoad((t, ver) -> t.log.add("sub.postLoad v" + ver))
            .build();

    static final VMStateDescription<TestDevice> OFF = VMStateDescription.<TestDevice>builder("dev/off")
            .uint32("never", t -> 0, (t, val) -> { })
            .needed(t -> t.offNeeded)
            .build();

    /** Version 3, reads streams from version 2 on; "n" and "v" came with version 3. */
    static final VMStateDescription<TestDevice> VMSD = VMStateDescription.<TestDevice>builder("dev")
            .version(3).minimumVersion(2)
            .uint8("a", t -> t.a, (t, val) -> t.a = val)
            .uint16("b", t -> t.b, (t, val) -> t.b = val)
            .int32("c", t -> t.c, (t, val) -> t.c = val)
            .uint64("d", t -> t.d, (t, val) -> t.d = val)
            .bool("e", t -> t.e, (t, val) -> t.e = val)
            .buffer("buf", 3, t -> t.buf)
            .unused(2)
            .uint32Array("arr", 2, t -> t.arr)
            .uint8("n", t -> t.n, (t, val) -> t.n = val).since(3)
            .varUint8Array("v", "n", t -> t.v, (t, val) -> t.v = val).since(3)
            .struct("s", INNER, t -> t.s)
            .int16("z", t -> t.z, (t, val) -> t.z = val)
            .subsection(SUB)
            .subsection(OFF)
            .preSave(t -> t.log.add("preSave"))
            .preLoad(t -> t.log.add("preLoad"))
            .postLoad((t, ver) -> t.log.add("postLoad v" + ver))
            .build();

    /** The values whose encoding {@link #EXPECTED_HEX} spells out. */
    static TestDevice sample() {
        TestDevice t = new TestDevice();
        t.a = 0x12;
        t.b = 0x3456;
        t.c = -2;
        t.d = 0x0102030405060708L;
        t.e = true;
        t.buf[0] = (byte) 0xAA;
        t.buf[1] = (byte) 0xBB;
        t.buf[2] = (byte) 0xCC;
        t.arr[0] = 1;
        t.arr[1] = 0xFFFFFFFF;
        t.n = 2;
        t.v = new byte[] {0x10, 0x20, 0x77};   // one byte more than n: only n are written
        t.s.x = 0x0102;
        t.s.y = 7;
        t.z = -1;
        t.k = -128;
        t.subNeeded = true;
        return t;
    }

    /** Hand-computed bytes of {@link #sample()} (big-endian, fields, then needed subsections). */
    static final String EXPECTED_HEX = String.join("",
            "12",                                   // a  uint8
            "3456",                                 // b  uint16
            "fffffffe",                             // c  int32 -2
            "0102030405060708",                     // d  uint64
            "01",                                   // e  bool
            "aabbcc",                               // buf
            "0000",                                 // unused(2)
            "00000001", "ffffffff",                 // arr uint32[2]
            "02",                                   // n
            "1020",                                 // v  uint8[n]
            "0102",                                 // s.x
            "05", "0b", "696e6e65722f6578747261", "00000001", "07", // subsection "inner/extra" v1, y
            "ffff",                                 // z  int16 -1
            "05", "07", "6465762f737562", "00000002", "80");        // subsection "dev/sub" v2, k = -128
}
