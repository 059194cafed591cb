package org.livemig.migration;

import java.io.IOException;
import org.livemig.stream.LastRequestedBlock;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.ReturnPathCodec;
import org.livemig.stream.ReturnPathMessage;

/**
 * The destination's end of the return path: PONG, SHUT and SWITCHOVER_ACK from {@code mig/dst/main} or
 * {@code mig/dst/listen}, page requests from {@code mig/dst/fault} or (checked postcopy) from
 * the faulting vCPU thread itself. Writers take turns on the one stream (synchronized); each
 * message is flushed at once.
 */
public final class IncomingReturnPath implements LoadVm.ReturnPath {
    private final MigrationFile out;
    private final LastRequestedBlock lastBlock = new LastRequestedBlock();

    public IncomingReturnPath(MigrationFile out) {
        this.out = out;
    }

    @Override
    public synchronized void sendPong(int value) throws IOException {
        ReturnPathCodec.write(out, new ReturnPathMessage.Pong(value));
        out.flush();
    }

    public synchronized void sendShut(int status) throws IOException {
        ReturnPathCodec.write(out, new ReturnPathMessage.Shut(status));
        out.flush();
    }

    /** RECV_BITMAP for postcopy recovery: what this side holds of {@code block}. */
    public synchronized void sendRecvBitmap(String block, long[] words) throws IOException {
        ReturnPathCodec.write(out, new ReturnPathMessage.RecvBitmap(block, words));
        out.flush();
    }

    /** SWITCHOVER_ACK (switchover-ack): the devices here have loaded their initial data. */
    @Override
    public synchronized void sendSwitchoverAck() throws IOException {
        ReturnPathCodec.write(out, new ReturnPathMessage.SwitchoverAck());
        out.flush();
    }

    public synchronized void sendResumeAck() throws IOException {
        ReturnPathCodec.write(out, new ReturnPathMessage.ResumeAck());
        out.flush();
    }

    /** REQ_PAGES_ID, or REQ_PAGES when the block is the one asked for last. */
    public synchronized void requestPages(String block, long start, long length) throws IOException {
        ReturnPathCodec.write(out, lastBlock.request(block, start, length));
        out.flush();
    }
}
