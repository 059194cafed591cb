package org.livemig.stream;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.channels.GatheringByteChannel;
import java.util.ArrayList;
import java.util.List;

/**
 * A gathering channel for the writer's tests: takes at most {@code maxPerWrite} bytes a call (a
 * slow peer), keeps them when asked, and counts the bytes and the buffers of every call.
 */
final class RecordingSink implements GatheringByteChannel {
    final ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    /** How many buffers each gathering call was given. */
    final List<Integer> buffersPerWrite = new ArrayList<>();
    final boolean keep;
    final int maxPerWrite;
    long written;

    RecordingSink(boolean keep, int maxPerWrite) {
        this.keep = keep;
        this.maxPerWrite = maxPerWrite;
    }

    /** Keeps everything, whole writes. */
    RecordingSink() {
        this(true, Integer.MAX_VALUE);
    }

    @Override
    public long write(ByteBuffer[] srcs, int offset, int length) {
        buffersPerWrite.add(length);
        long n = 0;
        for (int i = offset; i < offset + length && n < maxPerWrite; i++) {
            ByteBuffer b = srcs[i];
            int take = (int) Math.min(b.remaining(), maxPerWrite - n);
            if (keep) {
                for (int k = 0; k < take; k++) {
                    bytes.write(b.get());
                }
            } else {
                b.position(b.position() + take);
            }
            n += take;
        }
        written += n;
        return n;
    }

    @Override
    public long write(ByteBuffer[] srcs) {
        return write(srcs, 0, srcs.length);
    }

    @Override
    public int write(ByteBuffer src) {
        return (int) write(new ByteBuffer[] {src}, 0, 1);
    }

    @Override
    public boolean isOpen() {
        return true;
    }

    @Override
    public void close() {
    }
}
