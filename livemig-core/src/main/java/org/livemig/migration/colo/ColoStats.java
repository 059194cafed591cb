package org.livemig.migration.colo;

import java.util.Arrays;

/**
 * Figures of one side's checkpoints: how many, the bytes of the last one (RAM and device state),
 * and how long each kept the guest stopped. Written by the checkpoint thread, read by the monitor
 * and benchmarks (synchronized).
 */
public final class ColoStats {
    private long checkpoints;
    private long lastBytes;
    private long lastRamBytes;
    private long lastDeviceBytes;
    private long lastPauseNanos = -1;
    private long totalBytes;
    private long[] pauses = new long[64];

    synchronized void checkpoint(long bytes, long ramBytes, long deviceBytes, long pauseNanos) {
        checkpoints++;
        lastBytes = bytes;
        lastRamBytes = ramBytes;
        lastDeviceBytes = deviceBytes;
        lastPauseNanos = pauseNanos;
        totalBytes += bytes;
        if (checkpoints > pauses.length && pauses.length < (1 << 20)) {
            pauses = Arrays.copyOf(pauses, pauses.length * 2);
        }
        if (checkpoints <= pauses.length) {
            pauses[(int) checkpoints - 1] = pauseNanos;
        }
    }

    public synchronized long checkpoints() {
        return checkpoints;
    }

    /** Bytes of the last checkpoint on the wire (messages, RAM, device state). */
    public synchronized long lastBytes() {
        return lastBytes;
    }

    public synchronized long lastRamBytes() {
        return lastRamBytes;
    }

    public synchronized long lastDeviceBytes() {
        return lastDeviceBytes;
    }

    /** How long the last checkpoint kept the guest stopped, in ns; -1 before the first. */
    public synchronized long lastPauseNanos() {
        return lastPauseNanos;
    }

    public synchronized long totalBytes() {
        return totalBytes;
    }

    /** The {@code q} quantile (0..1) of the checkpoint pauses so far, in ns; -1 before the first. */
    public synchronized long pauseQuantileNanos(double q) {
        int n = (int) Math.min(checkpoints, pauses.length);
        if (n == 0) {
            return -1;
        }
        long[] sorted = Arrays.copyOf(pauses, n);
        Arrays.sort(sorted);
        int rank = Math.max(0, Math.min(n - 1, (int) Math.ceil(q * n) - 1));
        return sorted[rank];
    }

    /** Every checkpoint's pause, in ns, oldest first (the first million). */
    public synchronized long[] pauseNanos() {
        return Arrays.copyOf(pauses, (int) Math.min(checkpoints, pauses.length));
    }
}
