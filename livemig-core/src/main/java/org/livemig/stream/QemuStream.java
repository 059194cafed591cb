package org.livemig.stream;

/**
 * Byte values of QEMU's migration stream, version 3 (see docs/qemu-stream-format.md).
 * These are facts of the wire format; every codec in the project takes them from here.
 */
public final class QemuStream {
    private QemuStream() {}

    /** "QEVM". */
    public static final int MAGIC = 0x5145564D;
    public static final int VERSION = 3;
    /** Obsolete stream version, rejected by the loader. */
    public static final int VERSION_COMPAT = 2;

    // Section types (one byte).
    public static final int SECTION_EOF = 0x00;
    public static final int SECTION_START = 0x01;
    public static final int SECTION_PART = 0x02;
    public static final int SECTION_END = 0x03;
    public static final int SECTION_FULL = 0x04;
    public static final int SECTION_SUBSECTION = 0x05;
    public static final int SECTION_VMDESCRIPTION = 0x06;
    public static final int SECTION_CONFIGURATION = 0x07;
    public static final int SECTION_COMMAND = 0x08;
    public static final int SECTION_FOOTER = 0x7E;

    /** Version of the "ram" section. */
    public static final int RAM_SECTION_VERSION = 4;

    // Commands (be16 after SECTION_COMMAND).
    public static final int CMD_INVALID = 0;
    public static final int CMD_OPEN_RETURN_PATH = 1;
    public static final int CMD_PING = 2;
    public static final int CMD_POSTCOPY_ADVISE = 3;
    public static final int CMD_POSTCOPY_LISTEN = 4;
    public static final int CMD_POSTCOPY_RUN = 5;
    public static final int CMD_POSTCOPY_RAM_DISCARD = 6;
    public static final int CMD_PACKAGED = 7;
    public static final int CMD_ENABLE_COLO = 8;
    public static final int CMD_POSTCOPY_RESUME = 9;
    public static final int CMD_RECV_BITMAP = 10;
    public static final int CMD_SWITCHOVER_START = 11;

    /** Name of a command, as QEMU's trace points and analyze-migration.py spell them. */
    public static String commandName(int cmd) {
        return switch (cmd) {
            case CMD_OPEN_RETURN_PATH -> "OPEN_RETURN_PATH";
            case CMD_PING -> "PING";
            case CMD_POSTCOPY_ADVISE -> "POSTCOPY_ADVISE";
            case CMD_POSTCOPY_LISTEN -> "POSTCOPY_LISTEN";
            case CMD_POSTCOPY_RUN -> "POSTCOPY_RUN";
            case CMD_POSTCOPY_RAM_DISCARD -> "POSTCOPY_RAM_DISCARD";
            case CMD_PACKAGED -> "PACKAGED";
            case CMD_ENABLE_COLO -> "ENABLE_COLO";
            case CMD_POSTCOPY_RESUME -> "POSTCOPY_RESUME";
            case CMD_RECV_BITMAP -> "RECV_BITMAP";
            case CMD_SWITCHOVER_START -> "SWITCHOVER_START";
            default -> "INVALID(" + cmd + ")";
        };
    }

    // Return-path messages (be16 type, be16 length, payload).
    public static final int RP_INVALID = 0;
    public static final int RP_SHUT = 1;
    public static final int RP_PONG = 2;
    public static final int RP_REQ_PAGES_ID = 3;
    public static final int RP_REQ_PAGES = 4;
    public static final int RP_RECV_BITMAP = 5;
    public static final int RP_RESUME_ACK = 6;
    public static final int RP_SWITCHOVER_ACK = 7;

    /**
     * The target page size of QEMU's x86 machines: the page of a stream whose configuration does
     * not name another (target-page-bits). livemig's guest page ({@code memory.RamBlock.PAGE_SIZE})
     * is this page; as stream and memory may not know each other, each layer states it and
     * a test pins the two equal.
     */
    public static final int TARGET_PAGE_BITS = 12;
    public static final int TARGET_PAGE_SIZE = 1 << TARGET_PAGE_BITS;

    /** Longest idstr or block name: a counted string's length is one byte. */
    public static final int MAX_COUNTED_STRING = 255;
}
