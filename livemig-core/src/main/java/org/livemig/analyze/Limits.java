package org.livemig.analyze;

/**
 * Upper bounds the reader checks every length against before it allocates or loops, so that a
 * hostile stream fails with a {@link org.livemig.stream.StreamFormatException} instead of
 * exhausting memory or time. The defaults are far above anything QEMU writes for x86 guests.
 *
 * @param maxVmdescBytes     longest vmdesc JSON trailer
 * @param maxPackageBytes    longest PACKAGED postcopy blob (QEMU's own limit is 16 MiB)
 * @param maxSectionBytes    longest device section body kept as bytes or decoded
 * @param maxFieldBytes      longest single field in a device section
 * @param maxDecodeSteps     most fields (array elements counted) decoded in one section
 * @param maxNesting         deepest nesting of structs and subsections
 * @param maxRamBlocks       most RAM blocks in a MEM_SIZE list
 * @param maxCapabilities    most entries in the configuration capabilities subsection
 * @param maxMachineName     longest machine type name in the configuration section
 * @param maxRamBytes        most off-heap bytes an in-memory {@link RamImage} keeps (4 GiB by default;
 *                           larger guests are extracted to files instead)
 */
public record Limits(int maxVmdescBytes, int maxPackageBytes, int maxSectionBytes, int maxFieldBytes,
                     int maxDecodeSteps, int maxNesting, int maxRamBlocks, int maxCapabilities,
                     int maxMachineName, long maxRamBytes) {

    public static final Limits DEFAULT = new Limits(
            32 << 20, 16 << 20, 16 << 20, 16 << 20, 1 << 20, 32, 4096, 256, 4096, 4L << 30);

    /** The same limits with a different cap on kept guest RAM. */
    public Limits withMaxRamBytes(long bytes) {
        return new Limits(maxVmdescBytes, maxPackageBytes, maxSectionBytes, maxFieldBytes, maxDecodeSteps,
                maxNesting, maxRamBlocks, maxCapabilities, maxMachineName, bytes);
    }

    /** Bytes tried in total when guessing optional fields of a -dump-vmstate description. */
    static final long MAX_GUESS_BYTES = 32L << 20;
}
