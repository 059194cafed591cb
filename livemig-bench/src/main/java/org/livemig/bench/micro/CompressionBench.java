package org.livemig.bench.micro;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.TimeUnit;
import org.livemig.memory.RamBlock;
import org.livemig.stream.CompressedPageCodec;
import org.livemig.stream.MultifdCompression;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * Compression of one multifd packet's worth (128 text pages, 512 KiB) at level 1: multifd zlib
 * and zstd (one stream per packet, as a channel flushes it), and the compress capability's
 * COMPRESS_PAGE (one zlib stream per page); encoding and decoding, beside copying the same bytes.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
public class CompressionBench {
    static final int PAGES = 128;
    static final int PAGE = RamBlock.PAGE_SIZE;

    @Param({"multifd-zlib", "multifd-zstd", "compress-page"})
    public String codec;

    private Arena arena;
    private MemorySegment ram;
    private MemorySegment dst;
    private final long[] offsets = new long[PAGES];
    private MultifdCompression.Encoder encoder;
    private MultifdCompression.Decoder decoder;
    private int encodedLength;
    private MemorySegment encoded;
    private CompressedPageCodec.Compressor pageCompressor;
    private CompressedPageCodec.Decompressor pageDecompressor;
    private final byte[][] pages = new byte[PAGES][];
    private final byte[] pageOut = new byte[CompressedPageCodec.compressBound(PAGE) + 16];

    @Setup
    public void setup() {
        arena = Arena.ofConfined();
        ram = arena.allocate((long) PAGES * PAGE, 4096);
        dst = arena.allocate(ram.byteSize(), 4096);
        TextPages.fill(ram, 7);
        dst.copyFrom(ram);
        for (int i = 0; i < PAGES; i++) {
            offsets[i] = (long) i * PAGE;
        }
        switch (codec) {
            case "multifd-zlib", "multifd-zstd" -> {
                MultifdCompression.Method m = codec.endsWith("zlib") ? MultifdCompression.Method.ZLIB : MultifdCompression.Method.ZSTD;
                encoder = MultifdCompression.encoder(m, 1, PAGES, PAGE);
                decoder = MultifdCompression.decoder(m, PAGES, PAGE);
                encodedLength = encoder.encode(ram, offsets, PAGES, PAGE);
                encoded = arena.allocate(encodedLength);
                MemorySegment.copy(encoder.output(), 0, encoded, 0, encodedLength);
                MemorySegment.copy(encoded, 0, decoder.input(), 0, encodedLength);
                // The encoder's own stream starts afresh too, so that each encode is a first packet.
                encoder.close();
                encoder = MultifdCompression.encoder(m, 1, PAGES, PAGE);
            }
            default -> {
                pageCompressor = new CompressedPageCodec.Compressor(1, PAGE);
                pageDecompressor = new CompressedPageCodec.Decompressor(PAGE);
                for (int i = 0; i < PAGES; i++) {
                    int n = pageCompressor.compress(ram, offsets[i], pageOut, 0);
                    pages[i] = java.util.Arrays.copyOf(pageOut, n);
                }
            }
        }
    }

    @TearDown
    public void tearDown() {
        if (encoder != null) {
            encoder.close();
            decoder.close();
        }
        if (pageCompressor != null) {
            pageCompressor.close();
            pageDecompressor.close();
        }
        arena.close();
    }

    /** Encoding runs on the channel's stream from packet to packet, as a channel does. */
    @Benchmark
    public int encode() {
        if (encoder != null) {
            return encoder.encode(ram, offsets, PAGES, PAGE);
        }
        int total = 0;
        for (int i = 0; i < PAGES; i++) {
            total += pageCompressor.compress(ram, offsets[i], pageOut, 0);
        }
        return total;
    }

    /**
     * A channel's stream runs on from packet to packet: decoding the same packet again needs a
     * fresh decoder, made before each call (not measured), as it was for the packet's encoder.
     */
    @Setup(org.openjdk.jmh.annotations.Level.Invocation)
    public void freshDecoder() {
        if (decoder != null) {
            MultifdCompression.Method m = codec.endsWith("zlib") ? MultifdCompression.Method.ZLIB : MultifdCompression.Method.ZSTD;
            decoder.close();
            decoder = MultifdCompression.decoder(m, PAGES, PAGE);
            MemorySegment.copy(encoded, 0, decoder.input(), 0, encodedLength);
        }
    }

    @Benchmark
    public MemorySegment decode() {
        if (decoder != null) {
            String err = decoder.decode(encodedLength, dst, offsets, PAGES, PAGE);
            if (err != null) {
                throw new IllegalStateException(err);
            }
            return dst;
        }
        for (int i = 0; i < PAGES; i++) {
            String err = pageDecompressor.decompress(pages[i], 0, pages[i].length);
            if (err != null) {
                throw new IllegalStateException(err);
            }
            MemorySegment.copy(pageDecompressor.page(), 0, dst, java.lang.foreign.ValueLayout.JAVA_BYTE, offsets[i], PAGE);
        }
        return dst;
    }

    /** Copying the same 512 KiB. */
    @Benchmark
    public MemorySegment baseline() {
        return dst.copyFrom(ram);
    }
}
