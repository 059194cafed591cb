package org.livemig.migration;

import java.io.IOException;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import org.livemig.machine.Machine;
import org.livemig.machine.RunState;
import org.livemig.memory.RamBlock;
import org.livemig.memory.postcopy.PageFault;
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

    /**
     * Called without the BQL; blocks on IO: takes the snapshot's state with the guest stopped,
     * then saves RAM as it was then while the guest runs, then the device state, EOF and vmdesc.
     * The guest's run state is left as it was.
     */
    void run(MigrationFile f, RamSaver saver) throws IOException, InterruptedException {
        machine.bql().assertNotHeld();
        tracker.prepare();
        pause();
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
    private void pause() throws IOException {
        long t0 = System.nanoTime();
        boolean[] stopped = new boolean[1];
        try {
            machine.bql().withHeld(false, () -> {
                if (machine.runState().isRunning()) {
                    machine.vmStop(RunState.PAUSED);
                    stopped[0] = true;
                }
                machine.cpuSynchronizeAllStates();
                VmDesc d = new VmDesc(RamBlock.PAGE_SIZE);
                devices = SaveVm.encodeDevices(machine, d);
                vmdesc = d;
                if (observer != null) {
                    observer.accept(machine);
                }
                tracker.start();
                if (stopped[0]) {
                    machine.vmStart();
                }
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

    /**
     * The rate window's budget is spent: flush, then wait until the window ends, saving the
     * pages guest writes wait for as they come, so that the limit never holds a guest write up.
     */
    private void waitOutRateWindow(MigrationFile f, RamSaver saver) throws IOException, InterruptedException {
        f.flush();
        long until = System.nanoTime() + f.nanosUntilRateWindowEnds();
        while (true) {
            long left = until - System.nanoTime();
            if (left <= 0 || host.status().get() != MigrationStatus.ACTIVE) {
                return;
            }
            PageFault pf = tracker.pollFault(left, TimeUnit.NANOSECONDS);
            if (pf != null) {
                // Pages go in a RAM section of their own: between sections a page record would be misread.
                SaveStateEntry ram = RamHandlers.entry(machine);
                SaveVm.writeShortHeader(f, QemuStream.SECTION_PART, ram);
                saver.saveWriteFaults(f, pf);
                SaveVm.writeFooter(f, ram);
                f.flush();
            }
        }
    }

    /** Ends the tracking (a failure or cancel): every waiting guest write goes on. Any thread. */
    void abort() {
        tracker.close();
    }
}
