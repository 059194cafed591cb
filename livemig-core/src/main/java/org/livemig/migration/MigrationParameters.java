package org.livemig.migration;

/**
 * Migration parameters with QEMU's names, units and defaults (qapi/migration.json
 * MigrationParameters). Mutable only through {@link Migration}, which refuses changes while a
 * migration runs; a copy is taken when a migration starts.
 */
public final class MigrationParameters {
    /** Bytes per second; QEMU's default MAX_THROTTLE is 128 MiB/s. 0 means unlimited. */
    public long maxBandwidth = 128L << 20;
    /** Bytes per second for the background pages of postcopy (requested pages are never held back); 0 means unlimited. */
    public long maxPostcopyBandwidth = 0;
    /** Milliseconds the guest may be stopped at switchover. */
    public long downtimeLimit = 300;
    /** Percent of vCPU time taken at the first auto-converge throttle step. */
    public int cpuThrottleInitial = 20;
    /** Percent added at each later step. */
    public int cpuThrottleIncrement = 10;
    /** Highest throttle, percent. */
    public int maxCpuThrottle = 99;
    /** Dirty rate (percent of the bytes sent in a period) above which auto-converge steps up. */
    public int throttleTriggerThreshold = 50;
    /** Connections besides the main one when the multifd capability is on (QEMU's default 2). */
    public int multifdChannels = 2;
    /** QEMU's MultiFDCompression: none, zlib or zstd; livemig takes none. */
    public String multifdCompression = "none";
    /** Id of the TLS credentials object; empty (JSON null too, as QEMU) for a plain migration. */
    public String tlsCreds = "";
    /** Name the server's certificate must carry instead of the connected host; empty for none. */
    public String tlsHostname = "";
    /** Id of the authz object a destination checks the client's distinguished name with; empty for none. */
    public String tlsAuthz = "";

    public MigrationParameters copy() {
        MigrationParameters p = new MigrationParameters();
        p.maxBandwidth = maxBandwidth;
        p.downtimeLimit = downtimeLimit;
        p.maxPostcopyBandwidth = maxPostcopyBandwidth;
        p.cpuThrottleInitial = cpuThrottleInitial;
        p.cpuThrottleIncrement = cpuThrottleIncrement;
        p.maxCpuThrottle = maxCpuThrottle;
        p.throttleTriggerThreshold = throttleTriggerThreshold;
        p.multifdChannels = multifdChannels;
        p.multifdCompression = multifdCompression;
        p.tlsCreds = tlsCreds;
        p.tlsHostname = tlsHostname;
        p.tlsAuthz = tlsAuthz;
        return p;
    }

    /** Checks ranges as QEMU does; throws with a message naming the parameter. */
    public void validate() {
        if (maxBandwidth < 0) {
            throw new IllegalArgumentException("Parameter 'max-bandwidth' expects a non-negative size");
        }
        if (maxPostcopyBandwidth < 0) {
            throw new IllegalArgumentException("Parameter 'max-postcopy-bandwidth' expects a non-negative size");
        }
        if (downtimeLimit < 0 || downtimeLimit > 2_000_000) {
            throw new IllegalArgumentException("Parameter 'downtime_limit' expects an integer in the range of 0 to 2000000 milliseconds");
        }
        if (cpuThrottleInitial < 1 || cpuThrottleInitial > 99) {
            throw new IllegalArgumentException("Parameter 'cpu_throttle_initial' expects an integer in the range of 1 to 99");
        }
        if (cpuThrottleIncrement < 1 || cpuThrottleIncrement > 99) {
            throw new IllegalArgumentException("Parameter 'cpu_throttle_increment' expects an integer in the range of 1 to 99");
        }
        if (maxCpuThrottle < 1 || maxCpuThrottle > 99) {
            throw new IllegalArgumentException("Parameter 'max_cpu_throttle' expects an integer in the range of 1 to 99");
        }
        if (multifdChannels < 1 || multifdChannels > 255) {
            throw new IllegalArgumentException("Parameter 'multifd_channels' expects a value between 1 and 255");
        }
        if (!"none".equals(multifdCompression)) {
            throw new IllegalArgumentException("Parameter 'multifd-compression' value '" + multifdCompression
                    + "' is not supported by livemig yet (only 'none')");
        }
        if (throttleTriggerThreshold < 1 || throttleTriggerThreshold > 100) {
            throw new IllegalArgumentException("Parameter 'throttle_trigger_threshold' expects an integer in the range of 1 to 100");
        }
    }
}
