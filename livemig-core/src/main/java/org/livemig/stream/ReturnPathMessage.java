package org.livemig.stream;

import java.util.Arrays;

/**
 * One message on the return path (destination to source), as QEMU numbers and lays them out.
 * Immutable values; {@link ReturnPathCodec} reads and writes them. Each record draws its payload,
 * which follows the 4-byte header ({@code be16 type, be16 length}); offsets are from the start
 * of the payload.
 */
public sealed interface ReturnPathMessage {

    /** The be16 type ({@link QemuStream#RP_SHUT} ...). */
    int type();

    /** QEMU's name of the message type. */
    default String name() {
        return ReturnPathCodec.typeName(type());
    }

    /** A REQ_PAGES or REQ_PAGES_ID: bytes {@code [start, start + length)} of a RAM block. */
    sealed interface PageRequest extends ReturnPathMessage permits ReqPagesId, ReqPages {
        long start();

        long length();

        /**
         * True when the range is whole pages of {@code pageSize} bytes inside a block of
         * {@code blockLength} bytes (the source's check before it queues the pages).
         */
        default boolean isWithin(long blockLength, long pageSize) {
            return pageSize > 0 && start() % pageSize == 0 && length() % pageSize == 0
                    && length() <= blockLength && start() <= blockLength - length();
        }
    }

    /**
     * SHUT: the destination is done; last message on the path.
     * <pre>
     *  0      4
     *  +------+
     *  |status|  be32: 0 = finished fine, anything else = failed
     *  +------+
     * </pre>
     */
    record Shut(int status) implements ReturnPathMessage {
        public static final int STATUS_OFFSET = 0;
        public static final int LENGTH = 4;

        @Override
        public int type() {
            return QemuStream.RP_SHUT;
        }
    }

    /**
     * PONG: answers a PING command with its value.
     * <pre>
     *  0      4
     *  +------+
     *  |value |  be32, the PING's value
     *  +------+
     * </pre>
     */
    record Pong(int value) implements ReturnPathMessage {
        public static final int VALUE_OFFSET = 0;
        public static final int LENGTH = 4;

        @Override
        public int type() {
            return QemuStream.RP_PONG;
        }
    }

    /**
     * REQ_PAGES_ID: asks for pages of a named block; the block becomes the one later REQ_PAGES
     * refer to.
     * <pre>
     *  0              8        12  13
     *  +--------------+--------+---+-------------+
     *  | start (be64) |len be32| n | name[n]     |   length = 13 + n, n = 1..255
     *  +--------------+--------+---+-------------+
     * </pre>
     * {@code start} is a byte offset in the block, {@code length} an unsigned byte count.
     */
    record ReqPagesId(String block, long start, long length) implements PageRequest {
        public static final int START_OFFSET = 0;
        public static final int LENGTH_OFFSET = 8;
        public static final int NAME_OFFSET = 12;
        /** Payload length without the name's bytes. */
        public static final int FIXED_LENGTH = 13;

        public ReqPagesId {
            Wire.checkName("REQ_PAGES_ID", block);
            ReqPages.checkRange("REQ_PAGES_ID", start, length);
        }

        @Override
        public int type() {
            return QemuStream.RP_REQ_PAGES_ID;
        }
    }

    /**
     * REQ_PAGES: asks for pages of the block named by the last REQ_PAGES_ID on this path.
     * <pre>
     *  0              8        12
     *  +--------------+--------+
     *  | start (be64) |len be32|
     *  +--------------+--------+
     * </pre>
     */
    record ReqPages(long start, long length) implements PageRequest {
        public static final int START_OFFSET = 0;
        public static final int LENGTH_OFFSET = 8;
        public static final int LENGTH = 12;

        public ReqPages {
            checkRange("REQ_PAGES", start, length);
        }

        static void checkRange(String what, long start, long length) {
            if (start < 0) {
                throw new IllegalArgumentException(what + ": start " + Long.toUnsignedString(start)
                        + " is beyond any block");
            }
            if (length < 0 || length > 0xFFFF_FFFFL) {
                throw new IllegalArgumentException(what + ": length " + length + " does not fit a be32");
            }
        }

        @Override
        public int type() {
            return QemuStream.RP_REQ_PAGES;
        }
    }

    /**
     * RECV_BITMAP: the destination's received-page bitmap of one block, for postcopy recovery.
     * The framed payload is only the name; the bitmap follows <em>outside</em> the frame:
     * <pre>
     *  payload:  0   1
     *            +---+-----------+
     *            | n | name[n]   |        length = 1 + n
     *            +---+-----------+
     *  then:     +-------------+------------------------------+-------------------------+
     *            | size (be64) | size bytes: little-endian    | end mark (be64)         |
     *            |  = 8 * words|  64-bit words, bit i = page i|  0x0123456789ABCDEF     |
     *            +-------------+------------------------------+-------------------------+
     * </pre>
     * The words array is owned by the message once given to it (not copied: it may be large).
     */
    record RecvBitmap(String block, long[] words) implements ReturnPathMessage {
        public static final int NAME_OFFSET = 0;

        public RecvBitmap {
            Wire.checkName("RECV_BITMAP", block);
            if (words == null) {
                throw new IllegalArgumentException("RECV_BITMAP: words must not be null");
            }
        }

        /** The be64 size on the wire: bytes of bitmap, a multiple of 8. */
        public long sizeBytes() {
            return 8L * words.length;
        }

        /** True when page {@code page}'s bit is set. */
        public boolean isSet(long page) {
            int w = (int) (page >>> 6);
            return w < words.length && (words[w] & (1L << page)) != 0;
        }

        @Override
        public int type() {
            return QemuStream.RP_RECV_BITMAP;
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof RecvBitmap r && r.block.equals(block) && Arrays.equals(r.words, words);
        }

        @Override
        public int hashCode() {
            return block.hashCode() * 31 + Arrays.hashCode(words);
        }

        @Override
        public String toString() {
            return "RecvBitmap[block=" + block + ", words=" + words.length + "]";
        }
    }

    /**
     * RESUME_ACK: the destination is ready to resume a recovered postcopy.
     * <pre>
     *  0      4
     *  +------+
     *  |  1   |  be32, always {@link #VALUE}
     *  +------+
     * </pre>
     */
    record ResumeAck() implements ReturnPathMessage {
        public static final int VALUE_OFFSET = 0;
        public static final int LENGTH = 4;
        public static final int VALUE = 1;

        @Override
        public int type() {
            return QemuStream.RP_RESUME_ACK;
        }
    }

    /** SWITCHOVER_ACK (QEMU 8.1+): the destination allows the switchover. No payload. */
    record SwitchoverAck() implements ReturnPathMessage {
        public static final int LENGTH = 0;

        @Override
        public int type() {
            return QemuStream.RP_SWITCHOVER_ACK;
        }
    }
}
