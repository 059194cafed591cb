package org.livemig.migration.postcopy;

import java.io.IOException;
import java.lang.System.Logger.Level;
import java.util.concurrent.RejectedExecutionException;
import org.livemig.memory.RamBlock;
import org.livemig.migration.IncomingReturnPath;
import org.livemig.migration.MigrationException;
import org.livemig.migration.MigrationStatus;
import org.livemig.migration.StatusMachine;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.RecvBitmapCommand;
import org.livemig.stream.StreamFormatException;
import org.livemig.transport.FaultInjectingConnection;
import org.livemig.transport.FaultPoints;
import org.livemig.transport.FaultSpec;
import org.livemig.transport.MigrationAddress;
import org.livemig.transport.MigrationConnection;
import org.livemig.transport.MigrationListener;
import org.livemig.transport.Transports;

/**
 * Postcopy recovery on the destination: when its channel breaks while the guest runs here, the
 * listen thread pauses ({@code postcopy-paused}, vCPUs that need a missing page wait) until
 * {@code migrate-recover} listens on a new address and the source connects to it; the source then
 * asks with RECV_BITMAP what this side holds of each block, and POSTCOPY_RESUME ends the pause
 * (RESUME_ACK, and page requests lost with the old channel go out again).
 *
 * <p>{@link #pause} runs on {@code mig/dst/listen}; {@link #recover} comes from the monitor out
 * of band (any thread, no BQL); the new connection is taken on {@code mig/dst/accept} and
 * adopted on the main loop; RECV_BITMAP and POSTCOPY_RESUME are read by the listen thread.
 */
public final class IncomingRecovery {
    private static final System.Logger LOG = System.getLogger(IncomingRecovery.class.getName());
    /** As {@code Incoming}'s: the thread that takes connections. */
    private static final String ACCEPT_THREAD_NAME = "mig/dst/accept";

    private final IncomingHost host;
    private final PostcopyIncoming postcopy;
    private final StatusMachine status;
    /** Guards the pause: the listen thread waits on it for a recovery connection. */
    private final Object pauseLock = new Object();
    private volatile MigrationListener listener;

    IncomingRecovery(IncomingHost host, PostcopyIncoming postcopy) {
        this.host = host;
        this.postcopy = postcopy;
        this.status = host.status();
    }

    /**
     * The listen thread lost its channel while the guest runs here: postcopy-paused. Drops the
     * broken channels and waits, without a timeout (the guest must not lose its state; faulting
     * vCPUs wait too), for {@link #recover}'s connection. Returns the new main stream, with
     * status postcopy-recover, or null when the migration cannot pause (then it fails).
     */
    MigrationFile pause(String why) throws InterruptedException {
        synchronized (pauseLock) {
            MigrationStatus s = status.get();
            boolean pausable = s == MigrationStatus.POSTCOPY_ACTIVE || s == MigrationStatus.POSTCOPY_RECOVER
                    // RUN was read but its BH has not run yet: the guest starts regardless
                    || s == MigrationStatus.ACTIVE;
            if (!pausable) {
                return null;
            }
            // Drop the broken channels (and a recovery listener still waiting for a preempt
            // channel) before the status says paused: from then on migrate-recover may install new ones.
            host.dropChannels();
            closeListener();
            if (!status.transition(s, MigrationStatus.POSTCOPY_PAUSED)) {
                return null;
            }
        }
        LOG.log(Level.WARNING, "postcopy paused (" + why + "); waiting for migrate-recover");
        synchronized (pauseLock) {
            while (status.get() == MigrationStatus.POSTCOPY_PAUSED && !host.destroyed()) {
                pauseLock.wait(1000);
            }
            if (status.get() != MigrationStatus.POSTCOPY_RECOVER) {
                return null;
            }
            return adopted;
        }
    }

    /** The recovered channel's reader, handed from the main loop to the paused listen thread. */
    private MigrationFile adopted;

    /**
     * QMP migrate-recover: listens on a new address for the source's recovery connection, with
     * test faults on it. Any thread (it is an out-of-band command, run without the BQL).
     */
    public void recover(MigrationAddress address, FaultSpec faults) throws MigrationException {
        MigrationListener l;
        synchronized (pauseLock) {
            if (status.get() != MigrationStatus.POSTCOPY_PAUSED) {
                throw new MigrationException("Migrate recover can only be run when postcopy is paused.");
            }
            if (listener != null) {
                throw new MigrationException("Migrate recovery is triggered already");
            }
            try {
                l = Transports.listen(address);
            } catch (IOException e) {
                throw new MigrationException("Failed to listen on " + address + ": " + e.getMessage());
            }
            listener = l;
            host.boundTo(l.boundAddress());
        }
        Thread.ofPlatform().name(ACCEPT_THREAD_NAME).daemon(true).start(() -> {
            try {
                MigrationConnection c = FaultInjectingConnection.wrapIfAny(host.secure(l.accept()), faults);
                try {
                    FaultInjectingConnection.reached(c, FaultPoints.RECOVER);
                } catch (IOException e) {
                    c.close(); // a test's cut (or a yank during its stall): this recovery is over
                    throw e;
                }
                host.machine().mainLoop().schedule(() -> connected(c));
                if (host.preempt()) {
                    host.preemptConnected(host.secure(l.accept()));
                }
            } catch (IOException | RejectedExecutionException e) {
                LOG.log(Level.DEBUG, "recovery listener closed: " + e.getMessage());
            } finally {
                if (listener == l) {
                    closeListener();
                }
            }
        });
    }

    /** Called with the BQL held, on the main loop: the source reconnected; the listen thread goes on with it. */
    private void connected(MigrationConnection c) {
        host.machine().bql().assertHeld();
        synchronized (pauseLock) {
            if (status.get() != MigrationStatus.POSTCOPY_PAUSED) {
                try {
                    c.close();
                } catch (IOException e) {
                    LOG.log(Level.DEBUG, "closing a late recovery connection", e);
                }
                return;
            }
            adopted = host.adoptChannel(c);
            status.transition(MigrationStatus.POSTCOPY_PAUSED, MigrationStatus.POSTCOPY_RECOVER);
            pauseLock.notifyAll();
        }
    }

    /** RECV_BITMAP (listen thread): answers with what this side holds of the block. */
    void recvBitmap(RecvBitmapCommand cmd, long at) throws IOException {
        if (status.get() != MigrationStatus.POSTCOPY_RECOVER || postcopy.backend() == null) {
            throw new StreamFormatException("RECV_BITMAP outside postcopy recovery (status "
                    + status.get().qemuName() + ")", at);
        }
        RamBlock b = host.machine().ram().block(cmd.block());
        if (b == null) {
            throw new StreamFormatException("RECV_BITMAP for unknown RAM block '" + cmd.block() + "'", at);
        }
        host.returnPath().sendRecvBitmap(b.name(), postcopy.backend().receivedMap(b).toWords());
    }

    /**
     * POSTCOPY_RESUME (listen thread): the source is ready. postcopy-recover to postcopy-active,
     * RESUME_ACK, and page requests lost with the old channel or made while paused go out again.
     */
    void resume(long at) throws IOException {
        if (status.get() != MigrationStatus.POSTCOPY_RECOVER) {
            throw new StreamFormatException("POSTCOPY_RESUME outside postcopy recovery (status "
                    + status.get().qemuName() + ")", at);
        }
        postcopy.loader().resetContinuation();
        status.transition(MigrationStatus.POSTCOPY_RECOVER, MigrationStatus.POSTCOPY_ACTIVE);
        IncomingReturnPath rp = host.returnPath();
        rp.sendResumeAck();
        int again = postcopy.requestMissingAgain(rp);
        LOG.log(Level.INFO, "postcopy resumed; " + again + " page requests sent again");
    }

    /** The incoming state is being torn down: a paused listen thread stops waiting. Any thread. */
    public void abandon() {
        synchronized (pauseLock) {
            pauseLock.notifyAll();
        }
        closeListener();
    }

    /** Closes the recovery listener, if one waits. Any thread. */
    public void closeListener() {
        MigrationListener l = listener;
        listener = null;
        if (l != null) {
            try {
                l.close();
            } catch (IOException e) {
                LOG.log(Level.DEBUG, "closing recovery listener", e);
            }
        }
    }
}
