package org.livemig.stream;

import java.io.IOException;

/**
 * The POSTCOPY_ADVISE command (3): the source will use postcopy, and these are its page sizes.
 * Sent at setup when postcopy-ram is on, before any RAM section.
 * <pre>
 *  0                    8                    16
 *  +--------------------+--------------------+
 *  | page-size summary  | target page size   |   be64 each; length 16
 *  +--------------------+--------------------+
 *  or no payload at all (length 0) when only dirty-bitmap postcopy is on
 * </pre>
 * The summary is the bitwise OR of every RAM block's page size; the destination compares both
 * values with its own. {@link #DIRTY_BITMAP_ONLY} stands for the empty form.
 */
public record PostcopyAdviseCommand(long pageSizeSummary, long targetPageSize) {
    public static final int PAGE_SIZE_SUMMARY_OFFSET = 0;
    public static final int TARGET_PAGE_SIZE_OFFSET = 8;
    public static final int LENGTH = 16;
    public static final int EMPTY_LENGTH = 0;
    /** Largest target page size accepted. */
    public static final long MAX_TARGET_PAGE_SIZE = 1L << 30;

    /** The empty payload: postcopy of dirty bitmaps only, no RAM page sizes. */
    public static final PostcopyAdviseCommand DIRTY_BITMAP_ONLY = new PostcopyAdviseCommand(0, 0);

    public PostcopyAdviseCommand {
        if (pageSizeSummary != 0 || targetPageSize != 0) {
            String bad = targetPageSizeProblem(targetPageSize);
            if (bad == null) {
                bad = summaryProblem(pageSizeSummary);
            }
            if (bad != null) {
                throw new IllegalArgumentException(bad);
            }
        }
    }

    private static String targetPageSizeProblem(long tps) {
        if (tps <= 0 || Long.bitCount(tps) != 1 || tps > MAX_TARGET_PAGE_SIZE) {
            return "POSTCOPY_ADVISE: target page size " + Long.toUnsignedString(tps)
                    + " is not a power of two up to " + MAX_TARGET_PAGE_SIZE;
        }
        return null;
    }

    private static String summaryProblem(long summary) {
        if (summary <= 0) {
            return "POSTCOPY_ADVISE: page-size summary " + Long.toUnsignedString(summary)
                    + " is not an OR of page sizes";
        }
        return null;
    }

    /** True for the 16-byte form that carries RAM page sizes. */
    public boolean hasPageSizes() {
        return targetPageSize != 0;
    }

    public int payloadLength() {
        return hasPageSizes() ? LENGTH : EMPTY_LENGTH;
    }

    /** Writes the whole command (framing and payload). */
    public void write(MigrationFile f) throws IOException {
        Wire.putCommandHeader(f, QemuStream.CMD_POSTCOPY_ADVISE, payloadLength());
        if (hasPageSizes()) {
            f.putBe64(pageSizeSummary);
            f.putBe64(targetPageSize);
        }
    }

    /** Reads the whole command; the file must be at its 0x08 byte. */
    public static PostcopyAdviseCommand read(MigrationFile f) throws IOException {
        int len = Wire.getCommandHeader(f, QemuStream.CMD_POSTCOPY_ADVISE);
        return readPayload(f, len);
    }

    /** Reads the payload of a POSTCOPY_ADVISE whose framing (with {@code length}) was read. */
    public static PostcopyAdviseCommand readPayload(MigrationFile f, int length) throws IOException {
        long at = f.position();
        if (length == EMPTY_LENGTH) {
            return DIRTY_BITMAP_ONLY;
        }
        if (length != LENGTH) {
            throw Wire.fail(f, "POSTCOPY_ADVISE has length " + length + ", expected " + LENGTH + " or "
                    + EMPTY_LENGTH, at - 2);
        }
        long summary = f.getBe64();
        long tps = f.getBe64();
        String bad = summaryProblem(summary);
        if (bad != null) {
            throw Wire.fail(f, bad, at + PAGE_SIZE_SUMMARY_OFFSET);
        }
        bad = targetPageSizeProblem(tps);
        if (bad != null) {
            throw Wire.fail(f, bad, at + TARGET_PAGE_SIZE_OFFSET);
        }
        return new PostcopyAdviseCommand(summary, tps);
    }
}
