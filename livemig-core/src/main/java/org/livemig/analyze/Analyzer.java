package org.livemig.analyze;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.ReadableByteChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

import org.livemig.stream.MigrationFile;
import org.livemig.stream.QemuStream;
import org.livemig.stream.StreamFormatException;

/**
 * Entry points of {@code livemig analyze}: read a stream from a file or any channel into an
 * {@link Analysis}. A file's vmdesc trailer is located first (it ends exactly at end of file), so
 * device sections decode as they are read; over a plain channel they are decoded when the
 * trailer arrives.
 */
public final class Analyzer {
    private Analyzer() {}

    /**
     * @param limits  bounds on lengths and kept RAM
     * @param dump    -dump-vmstate descriptions for streams without a trailer, or null
     * @param keepRam keep RAM contents in memory (for {@link Analysis#ram()} and extraction)
     * @param ramDir  keep RAM contents as sparse files in this directory instead (the extract), or null
     */
    public record Options(Limits limits, VmstateDump dump, boolean keepRam, Path ramDir) {
        public static final Options DEFAULT = new Options(Limits.DEFAULT, null, true, null);

        public Options withDump(VmstateDump d) {
            return new Options(limits, d, keepRam, ramDir);
        }

        public Options withLimits(Limits l) {
            return new Options(l, dump, keepRam, ramDir);
        }

        /** Without RAM contents: enough for --dump state and desc. */
        public Options withoutRam() {
            return new Options(limits, dump, false, null);
        }

        public Options withRamDir(Path dir) {
            return new Options(limits, dump, true, dir);
        }
    }

    /** Analyzes a stream file. */
    public static Analysis analyzeFile(Path file, Options options) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            VmDescription trailer = locateTrailer(ch, options.limits());
            ch.position(0);
            return analyze(ch, trailer, options, null, ch);
        }
    }

    /** Analyzes a stream read from {@code channel} to its end, without seeking. */
    public static Analysis analyze(ReadableByteChannel channel, Options options) throws IOException {
        return analyze(channel, null, options);
    }

    /**
     * Analyzes a stream read from {@code channel} to its end, passing every record to
     * {@code observer} too, right after the analysis has seen it (on the calling thread). A live
     * reader uses this to answer the source as records arrive (PONG, SHUT on the return path).
     */
    public static Analysis analyze(ReadableByteChannel channel, Options options, StreamVisitor observer)
            throws IOException {
        return analyze(channel, null, options, observer);
    }

    /** Analyzes a stream held in memory, locating its trailer first as for a file. */
    public static Analysis analyze(byte[] stream, Options options) throws IOException {
        return analyze(java.nio.channels.Channels.newChannel(new java.io.ByteArrayInputStream(stream)),
                locateTrailer(stream, options.limits()), options);
    }

    private static Analysis analyze(ReadableByteChannel channel, VmDescription trailer, Options options)
            throws IOException {
        return analyze(channel, trailer, options, null, null);
    }

    private static Analysis analyze(ReadableByteChannel channel, VmDescription trailer, Options options,
                                    StreamVisitor observer) throws IOException {
        return analyze(channel, trailer, options, observer, null);
    }

    /** {@code file}: the file {@code channel} reads, from its start (mapped-ram's pages lie in it), or null. */
    private static Analysis analyze(ReadableByteChannel channel, VmDescription trailer, Options options,
                                    StreamVisitor observer, FileChannel file) throws IOException {
        Analysis a = new Analysis();
        MigrationFile f = MigrationFile.forReading(channel);
        StreamVisitor visitor = observer == null ? a : StreamVisitor.tee(a, observer);
        try (StreamReader r = new StreamReader(visitor, options.limits(), trailer, options.dump(), options.keepRam(),
                options.ramDir())) {
            if (file != null) {
                r.readMappedRamFrom(file);
            }
            try {
                r.read(f);
            } catch (StreamFormatException e) {
                a.finish(r, f.position());
                a.close();
                throw e;
            }
            a.finish(r, f.position());
        }
        return a;
    }

    /**
     * Finds the vmdesc trailer of a stream file: a VMDESCRIPTION byte whose be32 length makes the
     * JSON end exactly at end of file and whose JSON starts with '{'. Returns null when there is
     * none (or it is not valid JSON; the reader will then meet it, or not, in the stream).
     */
    static VmDescription locateTrailer(FileChannel ch, Limits limits) throws IOException {
        long size = ch.size();
        int window = (int) Math.min(size, (long) limits.maxVmdescBytes() + 5);
        ByteBuffer buf = ByteBuffer.allocate(window);
        long start = size - window;
        while (buf.hasRemaining()) {
            if (ch.read(buf, start + buf.position()) < 0) {
                return null;
            }
        }
        return locateTrailer(buf.array(), start, limits);
    }

    /** The vmdesc trailer at the end of a stream held in memory, or null. */
    public static VmDescription locateTrailer(byte[] stream, Limits limits) {
        int window = (int) Math.min(stream.length, (long) limits.maxVmdescBytes() + 5);
        int start = stream.length - window;
        return locateTrailer(java.util.Arrays.copyOfRange(stream, start, stream.length), start, limits);
    }

    private static VmDescription locateTrailer(byte[] tail, long start, Limits limits) {
        int window = tail.length;
        for (int p = window - 6; p >= 0; p--) {
            if (tail[p] != QemuStream.SECTION_VMDESCRIPTION || tail[p + 5] != '{') {
                continue;
            }
            long len = StreamReader.be32(tail, p + 1) & 0xFFFFFFFFL;
            if (len == window - p - 5L) {
                byte[] json = java.util.Arrays.copyOfRange(tail, p + 5, window);
                try {
                    return VmDescription.parse(json, start + p, limits);
                } catch (StreamFormatException e) {
                    return null;
                }
            }
        }
        return null;
    }
}
