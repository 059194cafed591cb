package org.livemig.stream;

import java.util.Objects;
import org.livemig.stream.ReturnPathMessage.PageRequest;
import org.livemig.stream.ReturnPathMessage.ReqPages;
import org.livemig.stream.ReturnPathMessage.ReqPagesId;

/**
 * The block named by the last REQ_PAGES_ID on one return path (QEMU's {@code last_rb}): the
 * destination uses it to send the short REQ_PAGES when the block did not change, the source to
 * learn which block a REQ_PAGES means. Owned by one thread (the destination's
 * {@code mig/dst/fault}, or the source's {@code mig/src/rp_thr}); {@link #reset()} it when a new
 * return path is opened after recovery, since the other side's memory starts over too.
 */
public final class LastRequestedBlock {
    private String last;

    /** Destination side: the message asking for {@code [start, start + length)} of {@code block}. */
    public PageRequest request(String block, long start, long length) {
        Objects.requireNonNull(block);
        if (block.equals(last)) {
            return new ReqPages(start, length);
        }
        ReqPagesId r = new ReqPagesId(block, start, length);
        last = block;
        return r;
    }

    /**
     * Source side: the block {@code r} refers to, remembering it for later REQ_PAGES. A REQ_PAGES
     * before any REQ_PAGES_ID fails; {@code at} is where the message started, for the error.
     */
    public String blockOf(PageRequest r, long at) throws StreamFormatException {
        return switch (r) {
            case ReqPagesId id -> last = id.block();
            case ReqPages p -> {
                if (last == null) {
                    throw new StreamFormatException("REQ_PAGES before any REQ_PAGES_ID named a block", at);
                }
                yield last;
            }
        };
    }

    /** The last block named, or null. */
    public String last() {
        return last;
    }

    public void reset() {
        last = null;
    }
}
