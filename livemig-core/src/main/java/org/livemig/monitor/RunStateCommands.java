package org.livemig.monitor;

import java.util.Objects;
import java.util.concurrent.atomic.AtomicBoolean;

import tools.jackson.databind.node.ObjectNode;

/**
 * The general machine commands of QEMU 7.2's qapi/run-state.json and qapi/misc.json —
 * {@code query-status}, {@code query-name}, {@code stop}, {@code cont}, {@code quit} — and the
 * events STOP, RESUME and SHUTDOWN, bound to one machine.
 *
 * <p>STOP and RESUME follow run-state changes, whoever caused them (a migration's switchover
 * stops the source and resumes the destination); a change into "shutdown" sends no STOP, as
 * QEMU's exit path does not. SHUTDOWN carries {@code {"guest": false, "reason": "host-qmp-quit"}}
 * for {@code quit}, which sends it before its own reply as QEMU 7.2 does; a shutdown requested
 * elsewhere reports reason "host-signal".
 */
public final class RunStateCommands {
    /** The event names this class emits (public API, pinned by a test). */
    public static final String STOP = "STOP";
    public static final String RESUME = "RESUME";
    public static final String SHUTDOWN = "SHUTDOWN";

    private RunStateCommands() {
    }

    /** Registers the commands on {@code server} and subscribes to {@code vm} for the events. */
    public static void register(QmpServer server, VmControl vm) {
        Objects.requireNonNull(server, "server");
        Objects.requireNonNull(vm, "vm");
        AtomicBoolean quitting = new AtomicBoolean();

        vm.addListener(new VmControl.Listener() {
            @Override
            public void runStateChanged(String from, boolean wasRunning, String to, boolean isRunning) {
                if (wasRunning && !isRunning && !to.equals("shutdown")) {
                    server.emitEvent(STOP, null);
                } else if (!wasRunning && isRunning) {
                    server.emitEvent(RESUME, null);
                }
            }

            @Override
            public void shutdownRequested() {
                if (!quitting.get()) {
                    server.emitEvent(SHUTDOWN, shutdownData("host-signal"));
                }
            }
        });

        server.register(QmpCommand.builder("query-status")
                .handler(args -> {
                    ObjectNode status = QmpJson.object(); // StatusInfo's member order
                    status.put("running", vm.isRunning());
                    status.put("singlestep", false);
                    status.put("status", vm.runState());
                    return status;
                })
                .build());

        server.register(QmpCommand.builder("query-name")
                .handler(args -> {
                    ObjectNode info = QmpJson.object();
                    String name = vm.name();
                    if (name != null) {
                        info.put("name", name);
                    }
                    return info;
                })
                .build());

        server.register(QmpCommand.builder("stop")
                .handler(args -> {
                    // QEMU stops only a running guest; "inmigrate" and the like stay as they are.
                    if (vm.isRunning()) {
                        vm.vmStop();
                    }
                    return null;
                })
                .build());

        server.register(QmpCommand.builder("cont")
                .handler(args -> {
                    String state = vm.runState();
                    switch (state) {
                        case "internal-error", "shutdown" ->
                                throw QmpError.generic("Resetting the Virtual Machine is required");
                        case "finish-migrate" -> throw QmpError.generic("Migration is not finalized yet");
                        case "suspended", "inmigrate" -> {
                            return null;
                        }
                        default -> {
                            if (!vm.isRunning()) {
                                vm.vmStart();
                            }
                            return null;
                        }
                    }
                })
                .build());

        server.register(QmpCommand.builder("quit")
                .handler(args -> {
                    if (quitting.compareAndSet(false, true)) {
                        server.emitEvent(SHUTDOWN, shutdownData("host-qmp-quit"));
                    }
                    vm.requestShutdown();
                    return null;
                })
                .build());
    }

    private static ObjectNode shutdownData(String reason) {
        ObjectNode data = QmpJson.object();
        data.put("guest", false);
        data.put("reason", reason);
        return data;
    }
}
