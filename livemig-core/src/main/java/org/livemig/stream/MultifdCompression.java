package org.livemig.stream;

import java.lang.foreign.MemorySegment;

/**
 * Compression of multifd packet data (QEMU 7.2's {@code multifd-compression}): each channel keeps
 * one compression stream for its whole life, feeds it the packet's pages one after the other and
 * flushes it at the packet's last page, so that the receiver can inflate every packet as soon as it
 * has it, against the history of the packets before it on that channel.
 *
 * <pre>
 * page packet (see MultifdPacket) with compression:
 *   flags             SYNC | method flag (ZLIB 0x2, ZSTD 0x4) when the packet has pages
 *   next_packet_size  bytes of compressed data that follow the offset list
 *   data              the stream's output for normal_pages pages, ending in a flush:
 *                     zlib: Z_SYNC_FLUSH after the last page (the first packet of a channel
 *                           starts with the zlib header; the stream never ends)
 *                     zstd: ZSTD_e_flush after the last page (one frame for the channel's
 *                           life, never ended)
 * </pre>
 *
 * A packet without pages (a SYNC) carries no data and no method flag, as in QEMU 7.2.
 *
 * <p>An {@link Encoder} or {@link Decoder} belongs to one channel thread.
 */
public final class MultifdCompression {
    private MultifdCompression() {}

    /** QEMU's MultiFDCompression values. */
    public enum Method {
        NONE("none", 0),
        ZLIB("zlib", MultifdPacket.FLAG_ZLIB),
        ZSTD("zstd", MultifdPacket.FLAG_ZSTD);

        private final String qemuName;
        private final int flag;

        Method(String qemuName, int flag) {
            this.qemuName = qemuName;
            this.flag = flag;
        }

        public String qemuName() {
            return qemuName;
        }

        /** The packet flag bits of this method (within {@link MultifdPacket#FLAG_COMPRESSION_MASK}). */
        public int flag() {
            return flag;
        }

        /** The method of this QEMU name, or null. */
        public static Method fromQemuName(String name) {
            for (Method m : values()) {
                if (m.qemuName.equals(name)) {
                    return m;
                }
            }
            return null;
        }
    }

    /**
     * The most compressed data a packet of {@code pages} pages may carry: twice the uncompressed
     * packet, as QEMU sizes its receive buffer. Encoders fail past it, decoders refuse more.
     */
    public static int maxPacketData(int pages, int pageSize) {
        return 2 * pages * pageSize;
    }

    /** The sending half of one channel's stream. */
    public interface Encoder extends AutoCloseable {
        /**
         * Compresses the {@code count} pages at {@code offsets} of {@code ram} (each copied first:
         * a guest may be writing them) and flushes the stream.
         *
         * @return the bytes of packet data now at the start of {@link #output()}; 0 when {@code count} is 0
         * @throws IllegalStateException when the output would exceed {@link #maxPacketData}
         */
        int encode(MemorySegment ram, long[] offsets, int count, int pageSize);

        /** Where {@link #encode} puts the packet data; the same segment for the encoder's life. */
        MemorySegment output();

        @Override
        void close();
    }

    /** The receiving half of one channel's stream. */
    public interface Decoder extends AutoCloseable {
        /** Where the caller puts a packet's data before {@link #decode}; {@link #maxPacketData} bytes. */
        MemorySegment input();

        /**
         * Inflates {@code len} bytes of {@link #input()} into the {@code count} pages at
         * {@code offsets} of {@code ram}: each page gets exactly {@code pageSize} bytes and nothing
         * outside the pages is written. The data must end exactly after the last page.
         *
         * @return null on success, otherwise what is wrong, naming the page index in the packet
         */
        String decode(int len, MemorySegment ram, long[] offsets, int count, int pageSize);

        /** The index in the packet of the page the last failed {@link #decode} stopped at, or -1 past the last page. */
        int failedPage();

        @Override
        void close();
    }

    /** An encoder of {@code method} (not NONE) at {@code level}, for packets of up to {@code pages} pages. */
    public static Encoder encoder(Method method, int level, int pages, int pageSize) {
        return switch (method) {
            case ZLIB -> new MultifdZlib.ZlibEncoder(level, pages, pageSize);
            case ZSTD -> new MultifdZstd.ZstdEncoder(level, pages, pageSize);
            case NONE -> throw new IllegalArgumentException("no encoder for multifd-compression none");
        };
    }

    /** A decoder of {@code method} (not NONE) for packets of up to {@code pages} pages. */
    public static Decoder decoder(Method method, int pages, int pageSize) {
        return switch (method) {
            case ZLIB -> new MultifdZlib.ZlibDecoder(pages, pageSize);
            case ZSTD -> new MultifdZstd.ZstdDecoder(pages, pageSize);
            case NONE -> throw new IllegalArgumentException("no decoder for multifd-compression none");
        };
    }
}
