package org.livemig.stream;

import java.io.IOException;

/**
 * The messages of a COLO checkpoint (QEMU's COLOMessage), exchanged on the migration connection
 * once the initial migration has ended: primary to secondary on the stream, secondary to primary
 * on the same connection's other direction (QEMU 7.2 runs COLO without the return-path
 * capability).
 *
 * <pre>
 *   0          4
 *   +----------+
 *   | be32 id  |             every message
 *   +----------+
 *   | be64 n   |             after VMSTATE_SIZE only: the device state's length
 *   +----------+
 * </pre>
 *
 * A checkpoint: primary REQUEST, secondary REPLY, primary VMSTATE_SEND followed at once by the RAM
 * the guest dirtied (a RAM section and an EOF byte), then VMSTATE_SIZE n and n bytes of device
 * state (FULL sections and EOF, no stream header), secondary RECEIVED and LOADED. The secondary
 * sends READY once, after the initial migration.
 */
public enum ColoMessage {
    CHECKPOINT_READY("checkpoint-ready"),
    CHECKPOINT_REQUEST("checkpoint-request"),
    CHECKPOINT_REPLY("checkpoint-reply"),
    VMSTATE_SEND("vmstate-send"),
    VMSTATE_SIZE("vmstate-size"),
    VMSTATE_RECEIVED("vmstate-received"),
    VMSTATE_LOADED("vmstate-loaded");

    /** Largest device state a VMSTATE_SIZE may announce (a reader allocates it). */
    public static final long MAX_VMSTATE_BYTES = 1L << 30;

    private final String qemuName;

    ColoMessage(String qemuName) {
        this.qemuName = qemuName;
    }

    /** QEMU's name of the message (qapi/migration.json). */
    public String qemuName() {
        return qemuName;
    }

    /** The message with this id, or null. */
    public static ColoMessage of(int id) {
        ColoMessage[] all = values();
        return id >= 0 && id < all.length ? all[id] : null;
    }

    /** Writes this message (not VMSTATE_SIZE, which has a value: {@link #writeSize}) and flushes. */
    public void write(MigrationFile f) throws IOException {
        if (this == VMSTATE_SIZE) {
            throw new IllegalArgumentException("VMSTATE_SIZE carries a value: use writeSize");
        }
        f.putBe32(ordinal());
        f.flush();
    }

    /** Writes VMSTATE_SIZE with the device state's length (flushed with what follows). */
    public static void writeSize(MigrationFile f, long bytes) throws IOException {
        f.putBe32(VMSTATE_SIZE.ordinal());
        f.putBe64(bytes);
    }

    /** Reads one message id. */
    public static ColoMessage read(MigrationFile f) throws IOException {
        long at = f.position();
        int id = f.getBe32();
        ColoMessage m = of(id);
        if (m == null) {
            throw new StreamFormatException("invalid COLO message " + Integer.toUnsignedString(id)
                    + " (known: 0 to " + (values().length - 1) + ")", at);
        }
        return m;
    }

    /**
     * Reads the message that must come next.
     *
     * @throws StreamFormatException naming both when another one came
     */
    public static void expect(MigrationFile f, ColoMessage want) throws IOException {
        long at = f.position();
        ColoMessage m = read(f);
        if (m != want) {
            throw new StreamFormatException("COLO message " + m.qemuName() + " where " + want.qemuName()
                    + " was expected", at);
        }
    }

    /** Reads VMSTATE_SIZE and its value, checked against {@link #MAX_VMSTATE_BYTES}. */
    public static long readSize(MigrationFile f) throws IOException {
        expect(f, VMSTATE_SIZE);
        long at = f.position();
        long n = f.getBe64();
        if (n < 0 || n > MAX_VMSTATE_BYTES) {
            throw new StreamFormatException("COLO device state of " + Long.toUnsignedString(n)
                    + " bytes (at most " + MAX_VMSTATE_BYTES + ")", at);
        }
        return n;
    }
}
