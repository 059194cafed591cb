package org.livemig.migration;

import org.livemig.stream.MultifdCompression;

/**
 * Migration parameters with QEMU's names, units and defaults (qapi/migration.json
 * MigrationParameters). Mutable only through {@link Migration}, which refuses changes while a
 * migration runs; a copy is taken when a migration starts.
 */
public final class MigrationParameters {
    /** QEMU's MAX_MIGRATE_DOWNTIME: 2000 s, in milliseconds. */
    public static final long MAX_DOWNTIME_LIMIT = 2_000_000;

    /** Bytes per second (unsigned, as QMP's size); QEMU's default MAX_THROTTLE is 128 MiB/s. 0 means unlimited. */
    public long maxBandwidth = 128L << 20;
    /** Bytes per second (unsigned) for the background pages of postcopy (requested pages are never held back); 0 means unlimited. */
    public long maxPostcopyBandwidth = 0;
    /** Milliseconds the guest may be stopped at switchover (0 to {@link #MAX_DOWNTIME_LIMIT}). */
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
    /** QEMU's MultiFDCompression: none, zlib or zstd. */
    public String multifdCompression = "none";
    /** COLO: milliseconds between checkpoints (QEMU's x-checkpoint-delay, a uint32; default 20 s). */
    public long xCheckpointDelay = 20_000;
    /** zlib level of multifd-compression zlib, 0-9. */
    public int multifdZlibLevel = 1;
    /** zstd level of multifd-compression zstd, 0-20 (0: zstd's default). */
    public int multifdZstdLevel = 1;
    /** Bytes of the source's XBZRLE cache: a power of two of at least a page (QEMU's default 64 MiB). */
    public long xbzrleCacheSize = 64L << 20;
    /** zlib level of the compress capability, 0-9. */
    public int compressLevel = 1;
    /** Compress threads on the source (compress capability), 1-255. */
    public int compressThreads = 8;
    /** Decompress threads on the destination (compress capability), 1-255. */
    public int decompressThreads = 2;
    /** With every compress thread busy, wait for one (true) or send the page uncompressed. */
    public boolean compressWaitThread = true;
    /**
     * Zero-page detection (QEMU 9.0's ZeroPageDetection names; 7.2 always detects): "legacy"
     * looks for zero pages and sends them as ZERO records, "none" sends them as any other page.
     */
    public String zeroPageDetection = "legacy";
    /**
     * QEMU 9.0's direct-io: the multifd channels of a mapped-ram migration open the file with
     * O_DIRECT (used only with both capabilities, as in QEMU).
     */
    public boolean directIo;

    /** Whether this JVM can open files with O_DIRECT (QEMU: built with O_DIRECT). */
    public static boolean directIoSupported() {
        return System.getProperty("os.name", "").toLowerCase(java.util.Locale.ROOT).contains("linux");
    }

    /** multifd-compression as its method. */
    public MultifdCompression.Method multifdCompressionMethod() {
        return MultifdCompression.Method.fromQemuName(multifdCompression);
    }

    /** The level multifd-compression uses: multifd-zlib-level or multifd-zstd-level. */
    public int multifdCompressionLevel() {
        return multifdCompressionMethod() == MultifdCompression.Method.ZSTD ? multifdZstdLevel : multifdZlibLevel;
    }

    /** zero-page-detection is "legacy": zero pages are looked for. */
    public boolean detectZeroPages() {
        return !"none".equals(zeroPageDetection);
    }
    /** Id of the TLS credentials object; empty (JSON null too, as QEMU) for a plain migration. */
    public String tlsCreds = "";
    /** Name the server's certificate must carry instead of the connected host; empty for none. */
    public String tlsHostname = "";
    /** Id of the authz object a destination checks the client's distinguished name with; empty for none. */
    public String tlsAuthz = "";

    public MigrationParameters copy() {
        return new MigrationParameters().assignFrom(this);
    }

    /** Takes every value of {@code o} (the one list of the parameters' fields); returns this. */
    public MigrationParameters assignFrom(MigrationParameters o) {
        maxBandwidth = o.maxBandwidth;
        downtimeLimit = o.downtimeLimit;
        maxPostcopyBandwidth = o.maxPostcopyBandwidth;
        cpuThrottleInitial = o.cpuThrottleInitial;
        cpuThrottleIncrement = o.cpuThrottleIncrement;
        maxCpuThrottle = o.maxCpuThrottle;
        throttleTriggerThreshold = o.throttleTriggerThreshold;
        multifdChannels = o.multifdChannels;
        multifdCompression = o.multifdCompression;
        xCheckpointDelay = o.xCheckpointDelay;
        multifdZlibLevel = o.multifdZlibLevel;
        multifdZstdLevel = o.multifdZstdLevel;
        xbzrleCacheSize = o.xbzrleCacheSize;
        compressLevel = o.compressLevel;
        compressThreads = o.compressThreads;
        decompressThreads = o.decompressThreads;
        compressWaitThread = o.compressWaitThread;
        zeroPageDetection = o.zeroPageDetection;
        directIo = o.directIo;
        tlsCreds = o.tlsCreds;
        tlsHostname = o.tlsHostname;
        tlsAuthz = o.tlsAuthz;
        return this;
    }

    /**
     * Checks ranges as QEMU 7.2's migrate-set-parameters does, in its order and with its texts;
     * throws with a message naming the parameter. The two bandwidths and the downtime limit are
     * QMP uint64/size values held as their 64-bit pattern (read them unsigned): a bandwidth
     * above {@code Long.MAX_VALUE}, or -1 sent over QMP, is as good as unlimited.
     */
    public void validate() {
        if (throttleTriggerThreshold < 1 || throttleTriggerThreshold > 100) {
            throw new IllegalArgumentException("Parameter 'throttle_trigger_threshold' expects an integer in the range of 1 to 100");
        }
        if (cpuThrottleInitial < 1 || cpuThrottleInitial > 99) {
            throw new IllegalArgumentException("Parameter 'cpu_throttle_initial' expects an integer in the range of 1 to 99");
        }
        if (cpuThrottleIncrement < 1 || cpuThrottleIncrement > 99) {
            throw new IllegalArgumentException("Parameter 'cpu_throttle_increment' expects an integer in the range of 1 to 99");
        }
        if (Long.compareUnsigned(downtimeLimit, MAX_DOWNTIME_LIMIT) > 0) {
            throw new IllegalArgumentException("Parameter 'downtime_limit' expects an integer in the range of 0 to (2000 * 1000) ms");
        }
        if (multifdChannels < 1 || multifdChannels > 255) {
            throw new IllegalArgumentException("Parameter 'multifd_channels' expects a value between 1 and 255");
        }
        if (maxCpuThrottle < cpuThrottleInitial || maxCpuThrottle > 99) {
            throw new IllegalArgumentException("Parameter 'max_cpu_throttle' expects an integer in the range of cpu_throttle_initial to 99");
        }
        if (MultifdCompression.Method.fromQemuName(multifdCompression) == null) {
            throw new IllegalArgumentException("Parameter 'multifd-compression' does not accept value '"
                    + multifdCompression + "'");
        }
        // QEMU 7.2's texts; its binary skips these two checks (a has_ flag it never sets), livemig does not.
        if (multifdZlibLevel < 0 || multifdZlibLevel > 9) {
            throw new IllegalArgumentException("Parameter 'multifd_zlib_level' expects a value between 0 and 9");
        }
        if (multifdZstdLevel < 0 || multifdZstdLevel > 20) {
            throw new IllegalArgumentException("Parameter 'multifd_zstd_level' expects a value between 0 and 20");
        }
        if (xbzrleCacheSize < org.livemig.memory.RamBlock.PAGE_SIZE || Long.bitCount(xbzrleCacheSize) != 1) {
            throw new IllegalArgumentException(
                    "Parameter 'xbzrle_cache_size' expects a power of two no less than the target page size");
        }
        if (compressLevel < 0 || compressLevel > 9) {
            throw new IllegalArgumentException("Parameter 'compress_level' expects a value between 0 and 9");
        }
        if (compressThreads < 1 || compressThreads > 255) {
            throw new IllegalArgumentException("Parameter 'compress_threads' expects a value between 1 and 255");
        }
        if (decompressThreads < 1 || decompressThreads > 255) {
            throw new IllegalArgumentException("Parameter 'decompress_threads' expects a value between 1 and 255");
        }
        if (!"none".equals(zeroPageDetection) && !"legacy".equals(zeroPageDetection)) {
            throw new IllegalArgumentException("Parameter 'zero-page-detection' does not accept value '"
                    + zeroPageDetection + "'");
        }
        if (xCheckpointDelay < 0 || xCheckpointDelay > 0xFFFF_FFFFL) {
            throw new IllegalArgumentException("Parameter 'x-checkpoint-delay' expects uint32_t");
        }
        if (directIo && !directIoSupported()) {
            throw new IllegalArgumentException("No build-time support for direct-io"); // QEMU 9.0's words
        }
    }
}
