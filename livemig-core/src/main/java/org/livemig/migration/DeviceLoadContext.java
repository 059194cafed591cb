package org.livemig.migration;

import java.io.IOException;
import java.lang.System.Logger.Level;
import java.util.List;
import java.util.function.Supplier;
import org.livemig.machine.Machine;
import org.livemig.stream.StreamFormatException;
import org.livemig.vmstate.HookLock;
import org.livemig.vmstate.LoadContext;
import org.livemig.vmstate.SaveStateEntry;

/**
 * One load's side of the live devices (QEMU's switchover-ack count in MigrationIncomingState and
 * its load-thread pool): runs every iterative handler's load setup, counts those that approve the
 * switchover themselves and sends SWITCHOVER_ACK once all have (or when the return path opens,
 * if none needs to), starts load threads for them, and lets {@code mig/dst/main} wait for those
 * threads without the BQL.
 *
 * <p>Made by {@link LoadVm} for each whole-stream load, on the loading thread; approvals may
 * come from any thread (synchronized).
 */
final class DeviceLoadContext implements LoadContext {
    private static final System.Logger LOG = System.getLogger(DeviceLoadContext.class.getName());

    private final Machine machine;
    private final boolean switchoverAck;
    /** The pool, or null when this load has none (no multifd). */
    private final LoadThreads threads;
    private final boolean bqlHeld;
    private final Supplier<LoadVm.ReturnPath> returnPath;
    private final HookLock hookLock;
    private final SwitchoverTimeline timeline;
    // Guarded by this.
    private int ackPending;
    private boolean ackSent;
    private boolean returnPathOpen;

    DeviceLoadContext(Machine machine, boolean switchoverAck, LoadThreads threads, boolean bqlHeld,
                      Supplier<LoadVm.ReturnPath> returnPath, SwitchoverTimeline timeline) {
        this.timeline = timeline;
        this.machine = machine;
        this.switchoverAck = switchoverAck;
        this.threads = threads;
        this.bqlHeld = bqlHeld;
        this.returnPath = returnPath;
        this.hookLock = hookLock(machine, bqlHeld);
    }

    /**
     * Called with the BQL held or not, as {@code bqlHeld} says: the BQL around each load step a
     * device says needs it. Held, the caller holds it throughout; not, each such step takes it
     * briefly and the others run without it.
     */
    static HookLock hookLock(Machine machine, boolean bqlHeld) {
        if (bqlHeld) {
            return HookLock.HELD;
        }
        return (needed, step) -> {
            if (needed) {
                machine.bql().withHeld(false, step::run);
            } else {
                machine.bql().assertNotHeld();
                step.run();
            }
        };
    }

    /** The handlers' load setup (QEMU's qemu_loadvm_state_setup), and the count of approvals to wait for. */
    void setup(List<SaveStateEntry> entries) throws IOException {
        int needed = 0;
        for (SaveStateEntry e : entries) {
            if (!e.isIterative()) {
                continue;
            }
            e.handlers().loadSetup(this);
            if (switchoverAck && e.handlers().switchoverAckNeeded()) {
                needed++;
            }
        }
        synchronized (this) {
            ackPending = needed;
        }
    }

    /** OPEN_RETURN_PATH was read: with nobody to wait for, the ack goes at once (QEMU does the same). */
    void returnPathOpened() throws IOException {
        boolean send;
        synchronized (this) {
            returnPathOpen = true;
            send = switchoverAck && ackPending == 0 && !ackSent;
            ackSent |= send;
        }
        if (send) {
            sendAck();
        }
    }

    @Override
    public boolean switchoverAck() {
        return switchoverAck;
    }

    @Override
    public void approveSwitchover() throws IOException {
        if (!switchoverAck) {
            return;
        }
        boolean send;
        synchronized (this) {
            if (ackPending == 0) {
                throw new StreamFormatException("a device approved the switchover, but none was waited for", -1);
            }
            ackPending--;
            send = ackPending == 0 && returnPathOpen && !ackSent;
            ackSent |= send;
        }
        if (send) {
            sendAck();
        }
    }

    private void sendAck() throws IOException {
        LoadVm.ReturnPath rp = returnPath.get();
        if (rp == null) {
            throw new IOException("switchover-ack: no return path to send SWITCHOVER_ACK on");
        }
        rp.sendSwitchoverAck();
        LOG.log(Level.DEBUG, "switchover-ack: SWITCHOVER_ACK sent");
    }

    /** Whether SWITCHOVER_ACK went to the source. */
    synchronized boolean ackSent() {
        return ackSent;
    }

    /** SWITCHOVER_START was read: each handler's switchover_start. */
    void switchoverStart(List<SaveStateEntry> entries) throws IOException {
        for (SaveStateEntry e : entries) {
            if (e.isIterative()) {
                e.handlers().switchoverStart();
            }
        }
    }

    @Override
    public int loadThreads() {
        return threads == null ? 0 : threads.size();
    }

    @Override
    public void startLoadThread(String what, LoadTask task) {
        threads(what).submit(what, task);
    }

    @Override
    public Runnable holdLoad(String what) {
        return threads(what).hold();
    }

    @Override
    public void startLoadStep(String what, LoadTask step) {
        threads(what).submitStep(what, step);
    }

    /** The pool, or a failure naming {@code what} when this load has none. */
    private LoadThreads threads(String what) {
        if (threads == null) {
            throw new IllegalStateException(what + ": this load has no load threads");
        }
        return threads;
    }

    @Override
    public void mark(String step) {
        timeline.mark(step);
    }

    @Override
    public HookLock hookLock() {
        return hookLock;
    }

    /**
     * Called with the BQL held or not, as this load's {@code bqlHeld} says; waits for the load
     * threads with the BQL released (the seed's qemu_loadvm_thread_pool_wait under
     * WITHOUT_BQL_HELD). Throws with the first failed thread's message.
     */
    void awaitLoadThreads() throws IOException {
        if (threads == null) {
            return;
        }
        String[] failure = new String[1];
        try {
            machine.bql().withoutHeld(bqlHeld, () -> {
                machine.bql().assertNotHeld();
                failure[0] = threads.await();
            });
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted waiting for the load threads", e);
        }
        if (failure[0] != null) {
            throw new IOException(failure[0]);
        }
    }
}
