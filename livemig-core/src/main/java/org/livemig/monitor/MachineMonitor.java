package org.livemig.monitor;

import java.util.Objects;
import java.util.concurrent.RejectedExecutionException;

import org.livemig.machine.Machine;
import org.livemig.machine.MachineListener;
import org.livemig.machine.RunState;

/**
 * Binds a QMP server to one {@link Machine}: its main loop and BQL run the ordinary commands
 * ({@link #host}), its run state answers the run-state commands ({@link #vm}).
 *
 * <pre>{@code
 * QmpServer server = QmpServer.builder(MachineMonitor.host(machine)).build();
 * RunStateCommands.register(server, MachineMonitor.vm(machine, name));
 * }</pre>
 */
public final class MachineMonitor {
    private MachineMonitor() {
    }

    /**
     * Ordinary commands run as bottom halves on the machine's {@code main} thread, BQL held. Once
     * the main loop has ended, scheduling is refused (the client gets an error reply rather than
     * no reply at all).
     */
    public static MonitorHost host(Machine machine) {
        Objects.requireNonNull(machine, "machine");
        return new MonitorHost() {
            @Override
            public void schedule(Runnable bh) {
                Thread main = machine.mainLoop().thread();
                if (main != null && !main.isAlive()) {
                    throw new RejectedExecutionException("the main loop of " + machine.name() + " has ended");
                }
                machine.mainLoop().schedule(bh);
            }

            @Override
            public boolean bqlHeldByCurrentThread() {
                return machine.bql().isHeldByCurrentThread();
            }
        };
    }

    /**
     * The machine's run state, stop/start and shutdown, for {@link RunStateCommands}.
     *
     * @param name what {@code query-name} reports ({@code -name}); null for none
     */
    public static VmControl vm(Machine machine, String name) {
        Objects.requireNonNull(machine, "machine");
        return new VmControl() {
            @Override
            public String name() {
                return name;
            }

            @Override
            public String runState() {
                return machine.runState().qemuName();
            }

            @Override
            public boolean isRunning() {
                return machine.runState().isRunning();
            }

            @Override
            public void vmStop() {
                machine.vmStop(RunState.PAUSED);
            }

            @Override
            public void vmStart() {
                machine.vmStart();
            }

            @Override
            public void requestShutdown() {
                machine.requestShutdown();
            }

            @Override
            public void addListener(Listener listener) {
                machine.addListener(new MachineListener() {
                    @Override
                    public void runStateChanged(RunState from, RunState to) {
                        listener.runStateChanged(from.qemuName(), from.isRunning(), to.qemuName(), to.isRunning());
                    }

                    @Override
                    public void shutdownRequested() {
                        listener.shutdownRequested();
                    }
                });
            }
        };
    }
}
