package org.livemig.transport;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * A {@code file:} connection: the source writes the stream into a file (created or truncated),
 * the destination reads it back, both from the address's offset on (QEMU's {@code ,offset=}).
 * One direction only; the other fails with a clear error.
 *
 * <p>Threads: one reader or writer; {@link #shutdown()} from any thread closes the channel,
 * which wakes a thread blocked in it (a FIFO).
 */
final class FileConnection extends AbstractConnection {
    private final FileChannel channel;
    private final ReadableByteChannel in;
    private final WritableByteChannel out;

    private FileConnection(FileChannel channel, MigrationAddress.File addr, boolean writing) {
        super(addr.uri() + (writing ? " (writing)" : " (reading)"));
        this.channel = channel;
        if (writing) {
            this.in = missingDirection(addr.uri() + " was opened for writing; it has no incoming stream");
            this.out = channel;
        } else {
            this.in = input(channel);
            this.out = missingDirection(addr.uri() + " was opened for reading; it has no outgoing stream");
        }
    }

    static FileConnection create(MigrationAddress.File addr) throws IOException {
        Path path = addr.path();
        FileChannel ch;
        try {
            ch = FileChannel.open(path, StandardOpenOption.WRITE, StandardOpenOption.CREATE,
                    StandardOpenOption.TRUNCATE_EXISTING);
            ch.position(addr.offset());
        } catch (IOException e) {
            throw new IOException("cannot create " + addr.uri() + ": " + Transports.reason(e), e);
        }
        return new FileConnection(ch, addr, true);
    }

    static FileConnection open(MigrationAddress.File addr) throws IOException {
        FileChannel ch;
        try {
            ch = FileChannel.open(addr.path(), StandardOpenOption.READ);
        } catch (IOException e) {
            throw new IOException("cannot open " + addr.uri() + " for reading: " + Transports.reason(e), e);
        }
        try {
            if (addr.offset() > ch.size()) {
                throw new IOException("cannot read " + addr.uri() + ": the offset is beyond the file's end ("
                        + ch.size() + " bytes)");
            }
            ch.position(addr.offset());
        } catch (IOException e) {
            ch.close();
            throw e;
        }
        return new FileConnection(ch, addr, false);
    }

    @Override
    public FileChannel fileChannel() {
        return channel;
    }

    @Override
    public ReadableByteChannel in() {
        return in;
    }

    @Override
    public WritableByteChannel out() {
        return out;
    }

    @Override
    void doShutdown() {
        try {
            channel.close();
        } catch (IOException e) {
            // closing wakes blocked threads even when it reports an error
        }
    }

    @Override
    void doClose() throws IOException {
        channel.close();
    }
}
