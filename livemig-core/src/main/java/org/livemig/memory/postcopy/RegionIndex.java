package org.livemig.memory.postcopy;

import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.List;
import java.util.function.ToLongFunction;

/**
 * RAM regions sorted by host address, to find the one a userfaultfd event's address falls in
 * (a binary search: a fault is read for every page a vCPU waits on). Immutable; any thread.
 *
 * @param <R> a backend's per-block region
 */
final class RegionIndex<R> {
    private final List<R> byAddress;
    private final long[] bases;
    private final long[] lengths;

    RegionIndex(Collection<R> regions, ToLongFunction<R> base, ToLongFunction<R> length) {
        List<R> sorted = new ArrayList<>(regions);
        sorted.sort(Comparator.comparingLong(base));
        this.byAddress = List.copyOf(sorted);
        this.bases = sorted.stream().mapToLong(base).toArray();
        this.lengths = sorted.stream().mapToLong(length).toArray();
    }

    /** The region holding {@code address}, or null. */
    R at(long address) {
        int lo = 0;
        int hi = bases.length - 1;
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            if (address < bases[mid]) {
                hi = mid - 1;
            } else if (address - bases[mid] >= lengths[mid]) {
                lo = mid + 1;
            } else {
                return byAddress.get(mid);
            }
        }
        return null;
    }

    /** The regions in address order. */
    List<R> all() {
        return byAddress;
    }
}
