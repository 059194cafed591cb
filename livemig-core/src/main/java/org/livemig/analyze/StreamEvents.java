package org.livemig.analyze;

import java.lang.foreign.MemorySegment;
import java.util.List;
import org.livemig.stream.QemuStream;
import org.livemig.stream.RamPageRecord;
import org.livemig.stream.SectionHeader;

/**
 * The decoded form of a QEMU stream, as the {@link StreamReader} hands it to a {@link StreamVisitor}.
 * Names read from the stream are kept as ISO-8859-1 text (one char per byte) so they re-encode to
 * the same bytes; {@link SectionHeader#display} gives their UTF-8 reading.
 */
public final class StreamEvents {
    private StreamEvents() {}

    /** A configuration subsection: name, version and its decoded body. */
    public sealed interface ConfigSubsection {
        String name();

        int version();
    }

    /** "configuration/target-page-bits": the target page size as a power of two. */
    public record TargetPageBits(String name, int version, int bits) implements ConfigSubsection {
    }

    /** "configuration/capabilities": the validated capabilities that are on. */
    public record Capabilities(String name, int version, List<String> capabilities) implements ConfigSubsection {
    }

    /** "configuration/uuid": the VM's UUID bytes. */
    public record Uuid(String name, int version, byte[] uuid) implements ConfigSubsection {
    }

    /**
     * A RAM block of a mapped-ram stream (QEMU 9.0): its header, where its bitmap and pages lie in
     * the file, and how many of its pages the file holds (the others are zero).
     *
     * @param headerOffset  the header's absolute offset in the file
     */
    public record MappedRamBlock(String block, long headerOffset, int version, long bitmapOffset, long pagesOffset,
                                 long pagesInFile, long pages) {
    }

    /** The configuration section: machine type name and subsections, as in the stream. */
    public record Configuration(String machine, List<ConfigSubsection> subsections, long offset) {
    }

    /**
     * A COMMAND record with its payload as it was in the stream. For PACKAGED the payload is the
     * be32 blob length; the blob's records follow as events between {@code packageStart} and
     * {@code packageEnd}.
     */
    public record Command(int command, byte[] payload, long offset) {
        public String name() {
            return QemuStream.commandName(command);
        }
    }

    /**
     * One RAM record.
     *
     * @param header  the be64 as on the wire: page offset (or total size) and flags
     * @param block   block name when the record carries one, null when it has CONTINUE or none
     * @param blockOf the block the page belongs to (for page records), else null
     * @param fill    the fill byte of a ZERO record
     * @param encoded the payload of XBZRLE (without encoding byte and length) or COMPRESS_PAGE
     * @param encoding the XBZRLE encoding byte
     * @param page    the page contents after this record (PAGE, XBZRLE, COMPRESS_PAGE); valid only
     *                during the callback
     * @param blocks  the block list of a MEM_SIZE record
     */
    public record RamRecord(long offset, long header, RamPageRecord.Kind kind, String block, String blockOf, int fill,
                            int encoding, byte[] encoded, MemorySegment page, List<RamPageRecord.BlockEntry> blocks) {
        public int flags(int pageSize) {
            return (int) (header & (pageSize - 1));
        }

        public long address(int pageSize) {
            return header & -(long) pageSize;
        }
    }

    /** A device section body: decoded fields, or raw bytes with the reason it is not decoded. */
    public sealed interface DeviceBody permits Decoded, Raw {
    }

    /** Decoded with a description; {@code source} says which ("vmdesc" or "vmstate-dump"). */
    public record Decoded(StreamValue.Struct value, String source) implements DeviceBody {
    }

    /** Not decoded: the body bytes between header and footer, and why. */
    public record Raw(byte[] bytes, String reason) implements DeviceBody {
    }
}
