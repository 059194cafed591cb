package org.livemig.relay;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.channels.WritableByteChannel;

import org.livemig.analyze.StreamEvents.Command;
import org.livemig.analyze.StreamVisitor;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.QemuStream;
import org.livemig.stream.ReturnPathCodec;
import org.livemig.stream.ReturnPathMessage;

/**
 * Called on the stream reader's thread. Plays the destination's part of the return path for a
 * reader that is the end of a live migration: once the source sends OPEN_RETURN_PATH it answers
 * each PING with a PONG of the same value and, at the stream's EOF section, sends SHUT 0, which
 * a QEMU source with the return-path capability waits for before it completes. Without
 * OPEN_RETURN_PATH it writes nothing.
 *
 * <p>SHUT goes out at EOF rather than after the vmdesc trailer: the source has written the
 * trailer before it waits, and streams without a trailer (postcopy) would otherwise never end.
 * A write failure surfaces as an {@link UncheckedIOException} out of the reader.
 */
public final class ReturnPathResponder implements StreamVisitor {
    private final MigrationFile out;
    private boolean open;
    private boolean shut;
    private int pongs;

    /** @param out the connection's outgoing direction (towards the source) */
    public ReturnPathResponder(WritableByteChannel out) {
        this.out = MigrationFile.forWriting(out);
    }

    @Override
    public void command(Command c) {
        switch (c.command()) {
            case QemuStream.CMD_OPEN_RETURN_PATH -> open = true;
            case QemuStream.CMD_PING -> {
                if (open && c.payload().length >= 4) {
                    send(new ReturnPathMessage.Pong(be32(c.payload())));
                    pongs++;
                }
            }
            default -> {
            }
        }
    }

    @Override
    public void eof() {
        finish(0);
    }

    /**
     * Sends SHUT with {@code status} (0 fine, 1 failed) if the return path is open and SHUT was
     * not sent yet. Errors writing are ignored here: the source may already be gone.
     */
    public void finishQuietly(int status) {
        try {
            finish(status);
        } catch (UncheckedIOException e) {
            // the source is gone; nothing to tell it
        }
    }

    private void finish(int status) {
        if (open && !shut) {
            shut = true;
            send(new ReturnPathMessage.Shut(status));
        }
    }

    /** Whether the source opened a return path. */
    public boolean opened() {
        return open;
    }

    /** PONGs sent. */
    public int pongs() {
        return pongs;
    }

    /** Whether SHUT was sent. */
    public boolean shut() {
        return shut;
    }

    private void send(ReturnPathMessage m) {
        try {
            ReturnPathCodec.write(out, m);
            out.flush();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot send " + m.name() + " on the return path: " + e.getMessage(), e);
        }
    }

    private static int be32(byte[] b) {
        return (b[0] & 0xFF) << 24 | (b[1] & 0xFF) << 16 | (b[2] & 0xFF) << 8 | (b[3] & 0xFF);
    }
}
