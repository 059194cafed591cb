package org.livemig.bench;

import java.util.stream.DoubleStream;
import java.util.stream.LongStream;

/** The median the benchmarks report over repeated runs: the lower middle value for an even count. */
final class Medians {
    private Medians() {}

    /** The lower median of {@code values}, -1 when there are none. */
    static long of(LongStream values) {
        long[] v = values.sorted().toArray();
        return v.length == 0 ? -1 : v[(v.length - 1) / 2];
    }

    /** The lower median of {@code values}, 0 when there are none. */
    static double of(DoubleStream values) {
        double[] v = values.sorted().toArray();
        return v.length == 0 ? 0 : v[(v.length - 1) / 2];
    }
}
