package org.livemig.migration.multifd;

import java.io.IOException;

/** What both ends of multifd tell a waiter once their channels cannot go on. */
final class ChannelState {
    private ChannelState() {}

    /** Throws the first channel's failure (wrapped, so the caller's stack shows), or that the channels were shut down. */
    static void check(IOException failure, boolean stopping) throws IOException {
        if (failure != null) {
            throw new IOException(failure.getMessage(), failure);
        }
        if (stopping) {
            throw new IOException("multifd channels were shut down");
        }
    }
}
