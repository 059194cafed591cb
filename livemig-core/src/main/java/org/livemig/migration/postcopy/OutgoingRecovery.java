package org.livemig.migration.postcopy;

import java.io.IOException;
import java.lang.System.Logger.Level;
import java.util.List;
import java.util.concurrent.locks.LockSupport;
import org.livemig.memory.RamBlock;
import org.livemig.migration.MigrationStatus;
import org.livemig.migration.RamSaver;
import org.livemig.migration.ReturnPathReader;
import org.livemig.migration.SaveVm;
import org.livemig.migration.StatusMachine;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.QemuStream;
import org.livemig.stream.RecvBitmapCommand;
import org.livemig.transport.FaultSpec;
import org.livemig.transport.MigrationAddress;
import org.livemig.transport.MigrationConnection;

/**
 * Postcopy recovery on the source (QEMU's postcopy_pause and postcopy_do_resume): a broken
 * channel pauses the migration ({@code postcopy-paused}; the guest lives on the destination, so
 * the source waits for the user rather than failing); {@code migrate} with {@code resume=true}
 * names a new address; the source connects, asks with RECV_BITMAP what the destination holds of
 * every block, sends again everything else, and goes on after POSTCOPY_RESUME and RESUME_ACK.
 * {@code migrate-pause} breaks the channels on purpose.
 *
 * <p>{@link #pauseUntilRecovered} runs on {@code mig/src/main}; {@link #resume} and {@link #pause}
 * come from the monitor (any thread, migrate-pause out of band without the BQL).
 */
public final class OutgoingRecovery {
    private static final System.Logger LOG = System.getLogger(OutgoingRecovery.class.getName());
    private static final long CONTROL_TIMEOUT_MILLIS = 60_000;

    private final OutgoingHost host;
    private final PostcopySource postcopy;
    private final RamSaver saver;
    private final StatusMachine status;
    /** Where and with which test faults a paused postcopy resumes; set by {@link #resume}. */
    private volatile MigrationAddress resumeAddress;
    private volatile FaultSpec resumeFaults = FaultSpec.NONE;
    /** The thread waiting in {@link #pauseUntilRecovered}, woken by {@link #resume}. */
    private volatile Thread waiter;
    /** migrate-pause came during a recovery: it pauses again even if its connection was not made yet. */
    private volatile boolean pauseRequested;

    OutgoingRecovery(OutgoingHost host, PostcopySource postcopy, RamSaver saver) {
        this.host = host;
        this.postcopy = postcopy;
        this.saver = saver;
        this.status = host.status();
    }

    /**
     * QMP migrate with resume=true: resumes a paused postcopy on a new address, with test faults
     * on its new main connection. Any thread; the migration thread connects and recovers. Returns
     * false when the migration is not paused.
     */
    public boolean resume(MigrationAddress address, FaultSpec faults) {
        resumeAddress = address;
        resumeFaults = faults;
        pauseRequested = false;
        if (!status.transition(MigrationStatus.POSTCOPY_PAUSED, MigrationStatus.POSTCOPY_RECOVER)) {
            return false;
        }
        Thread t = waiter;
        if (t != null) {
            LockSupport.unpark(t);
        }
        return true;
    }

    /**
     * QMP migrate-pause: shuts the channels down, as a network failure would, so that postcopy
     * pauses. Any thread. Returns false when postcopy is neither active nor recovering. As since
     * QEMU 8.2 (7.2 refuses it there), a recovery whose handshake hangs is paused too: its new
     * connection is shut down, and the source goes back to postcopy-paused.
     */
    public boolean pause() {
        if (status.get() == MigrationStatus.POSTCOPY_RECOVER) {
            pauseRequested = true;
            host.shutdownMainConnection();
            return true;
        }
        if (status.get() != MigrationStatus.POSTCOPY_ACTIVE) {
            return false;
        }
        host.shutdownMainConnection();
        postcopy.shutdownPreempt();
        return true;
    }

    /**
     * postcopy-paused: drops the broken channels and waits (without a timeout: the guest lives on
     * the destination, and only the user knows when the network is back) for {@link #resume} or
     * a cancel; then recovers on the new address. A recovery that fails pauses again. Returns the
     * new main and preempt (or null) channels, with status postcopy-active.
     */
    MigrationFile[] pauseUntilRecovered(String why) throws IOException {
        waiter = Thread.currentThread();
        while (true) {
            MigrationStatus s = status.get();
            if ((s != MigrationStatus.POSTCOPY_ACTIVE && s != MigrationStatus.POSTCOPY_RECOVER)
                    || !status.transition(s, MigrationStatus.POSTCOPY_PAUSED)) {
                throw new IOException("cancelled");
            }
            LOG.log(Level.WARNING, "postcopy paused (" + why + "); waiting for migrate with resume=true");
            host.shutdownMainConnection(); // first: a writer blocked on the preempt channel lets go of the lock
            postcopy.closePreempt();
            host.closeMainConnection();
            while (status.get() == MigrationStatus.POSTCOPY_PAUSED) {
                LockSupport.parkNanos(200_000_000L); // resume() and cancel() unpark at once
            }
            if (status.get() != MigrationStatus.POSTCOPY_RECOVER) {
                throw new IOException("cancelled while postcopy was paused");
            }
            try {
                return recover();
            } catch (IOException e) {
                if (host.cancelled()) {
                    throw e;
                }
                why = "recovery failed: " + PostcopySource.describe(e);
            }
        }
    }

    /**
     * The source's half of a recovery (QEMU's postcopy_do_resume): a new channel and return path,
     * RECV_BITMAP for every block (what the destination holds decides what goes again),
     * POSTCOPY_RESUME, RESUME_ACK.
     */
    private MigrationFile[] recover() throws IOException {
        MigrationAddress addr = resumeAddress;
        MigrationConnection conn = host.connect(addr, resumeFaults);
        host.replaceMainConnection(conn);
        if (status.get() != MigrationStatus.POSTCOPY_RECOVER) {
            throw new IOException("cancelled during recovery");
        }
        if (pauseRequested) {
            throw new IOException("paused by migrate-pause during the recovery");
        }
        MigrationFile f = MigrationFile.forWriting(conn.out());
        ReturnPathReader returnPath = host.startReturnPath(conn, saver);
        saver.prepareResume();
        List<RamBlock> blocks = host.machine().ram().blocks();
        for (RamBlock b : blocks) {
            new RecvBitmapCommand(b.name()).write(f);
        }
        f.flush();
        try {
            for (RamBlock b : blocks) {
                saver.reloadFromReceived(b, returnPath.awaitRecvBitmap(b.name(), CONTROL_TIMEOUT_MILLIS));
            }
            SaveVm.writeCommand(f, QemuStream.CMD_POSTCOPY_RESUME, new byte[0]);
            f.flush();
            returnPath.awaitResumeAck(CONTROL_TIMEOUT_MILLIS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted during postcopy recovery", e);
        }
        MigrationFile preempt = host.preempt() ? postcopy.openPreemptChannel(addr, FaultSpec.NONE) : null;
        if (!status.transition(MigrationStatus.POSTCOPY_RECOVER, MigrationStatus.POSTCOPY_ACTIVE)) {
            throw new IOException("cancelled during recovery");
        }
        LOG.log(Level.INFO, String.format("postcopy recovered on %s: %d KiB still to send", addr, saver.pendingBytes() >> 10));
        return new MigrationFile[] {f, preempt};
    }
}
