package org.livemig.migration;

import java.io.IOException;
import java.util.function.Consumer;
import org.livemig.machine.Machine;
import org.livemig.machine.RunState;
import org.livemig.memory.RamBlock;
import org.livemig.memory.postcopy.WriteTracker;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.QemuStream;
import org.livemig.vmstate.SaveStateEntry;
import org.livemig.vmstate.VmDesc;

/**
 * A background snapshot (QEMU's {@code background-snapshot} capability, its bg_migration_thread)
 * on {@code mig/src/main}, after the outgoing migration's setup: the guest stops briefly while
 * its device state is taken and RAM is write-protected ({@link WriteTracker#start}), then runs
 * on; RAM is saved in one pass, pages the guest writes first, each released to it once it is
 * out; then come the device state of the pause, EOF and the vmdesc. The stream is an ordinary
 * precopy stream holding RAM and devices as they were at the pause, which any destination loads.
 *
 * <p>Fields are owned by {@code mig/src/main}; the statistics are read by the monitor.
 */
final class BackgroundSnapshot {
    /** What a background snapshot needs of its outgoing migration. */
    interface Host {
        Machine machine();

        StatusMachine status();

        RamStats ram();

        /** The main channel's rate limit for now, from the current parameters. */
        void applyRateLimit(MigrationFile f);

        /** Bytes put on the file so far (stream and pages beside it). */
        long sent(MigrationFile f);
    }

    private final Host host;
    private final Machine machine;
    private final WriteTracker tracker;
    private final Consumer<Machine> observer;
    private volatile long pauseNanos = -1;
    /** The pause by phase, in ns: stop, CPU sync, devices, observer, write-protect, start. */
    private final long[] pausePhases = new long[6];
    private byte[] devices;
    private VmDesc vmdesc;

    BackgroundSnapshot(Host host, WriteTracker tracker, Consumer<Machine> observer) {
        this.host = host;
        this.machine = host.machine();
        this.tracker = tracker;
        this.observer = observer;
    }

    WriteTracker tracker() {
        return tracker;
    }

    /** How long the guest was stopped for the snapshot's start, or -1 before. */
    long pauseNanos() {
        return pauseNanos;
    }

    /** The pause by phase, for the log: "stop 1.2 + CPU sync 0.3 + ... ms". */
    String pauseAccount() {
        String[] names = {"stop", "CPU sync", "devices", "observer", "write-protect", "start"};
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < names.length; i++) {
            sb.append(i == 0 ? "" : " + ").append(names[i]).append(String.format(" %.1f", pausePhases[i] / 1e6));
        }
        return sb.append(" ms").toString();
    }

    /**
     * Called without the BQL; blocks on IO: takes the snapshot's state with the guest stopped,
     * then saves RAM as it was then while the guest runs, then the device state, EOF and vmdesc.
     * The guest's run state is left as it was.
     */
    void run(MigrationFile f, RamSaver saver) throws IOException, InterruptedException {
        machine.bql().assertNotHeld();
        var live = SaveVm.devices(machine);
        if (!live.isEmpty()) {
            // Their iterative state would be saved as the guest runs on, not as it was at the start.
            throw new IOException("background-snapshot: device " + live.getFirst().sectionName()
                    + " saves its state iteratively, which a snapshot of the start cannot hold");
        }
        tracker.prepare();
        pause(saver);
        while (!saver.passComplete()) {
            if (host.status().get() != MigrationStatus.ACTIVE) {
                throw new IOException("cancelled");
            }
            host.applyRateLimit(f);
            if (f.rateLimitExceeded()) {
                waitOutRateWindow(f, saver);
                continue;
            }
            SaveVm.saveIterate(machine, f);
            host.ram().transferred.set(host.sent(f));
        }
        saver.stopWriteTracking();
        SaveVm.saveCompleteIterative(machine, f);
        f.putBytes(devices);
        SaveVm.writeEofAndVmdesc(f, vmdesc);
        f.flush();
        host.ram().transferred.set(host.sent(f));
        tracker.close();
    }

    /**
     * Called without the BQL: the guest stops, the CPUs are synchronised, the devices are read
     * into memory, RAM is write-protected, and the guest runs again (as it did before). On any
     * failure the guest runs again all the same and the tracking ends.
     */
    private void pause(RamSaver saver) throws IOException {
        long t0 = System.nanoTime();
        boolean[] stopped = new boolean[1];
        try {
            machine.bql().withHeld(false, () -> {
                long t = System.nanoTime();
                if (machine.runState().isRunning()) {
                    machine.vmStop(RunState.PAUSED);
                    stopped[0] = true;
                }
                t = phase(0, t);
                machine.cpuSynchronizeAllStates();
                t = phase(1, t);
                VmDesc d = new VmDesc(RamBlock.PAGE_SIZE);
                devices = SaveVm.encodeDevices(machine, d);
                vmdesc = d;
                t = phase(2, t);
                if (observer != null) {
                    observer.accept(machine);
                }
                t = phase(3, t);
                tracker.start();
                saver.writeTrackingStarted();
                t = phase(4, t);
                if (stopped[0]) {
                    machine.vmStart();
                }
                phase(5, t);
            });
        } catch (IOException | RuntimeException | Error e) {
            tracker.close();
            if (stopped[0]) {
                machine.bql().withHeld(false, () -> {
                    if (!machine.runState().isRunning()) {
                        machine.vmStart();
                    }
                });
            }
            throw e;
        }
        pauseNanos = System.nanoTime() - t0;
    }

    private long phase(int i, long since) {
        long now = System.nanoTime();
        pausePhases[i] = now - since;
        return now;
    }

    /**
     * The rate window's budget is spent: flush, then wait until the window ends; the copies of
     * the pages guest writes fault on meanwhile go out as they come (in RAM sections of their
     * own: between sections a page record would be misread), so that their pool never runs dry.
     */
    private void waitOutRateWindow(MigrationFile f, RamSaver saver) throws IOException {
        f.flush();
        long until = System.nanoTime() + f.nanosUntilRateWindowEnds();
        while (true) {
            long left = until - System.nanoTime();
            if (left <= 0 || host.status().get() != MigrationStatus.ACTIVE) {
                return;
            }
            if (saver.hasFaultedCopies()) {
                SaveStateEntry ram = RamHandlers.entry(machine);
                SaveVm.writeShortHeader(f, QemuStream.SECTION_PART, ram);
                saver.saveFaultedCopies(f);
                SaveVm.writeFooter(f, ram);
                f.flush();
            }
            java.util.concurrent.locks.LockSupport.parkNanos(Math.min(left, 1_000_000L));
        }
    }

    /** A failure or cancel: stops the fault thread, then ends the tracking; every waiting guest write goes on. */
    void abort(RamSaver saver) {
        if (saver != null) {
            saver.stopWriteTracking();
        }
        tracker.close();
    }
}
