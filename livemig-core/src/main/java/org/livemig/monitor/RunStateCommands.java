package org.livemig.monitor;

import java.util.List;
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

    private final QmpServer server;
    private final VmControl vm;
    /** Set by {@code quit}, whose SHUTDOWN event goes before its reply; no second one follows. */
    private final AtomicBoolean quitting = new AtomicBoolean();

    private RunStateCommands(QmpServer server, VmControl vm) {
        this.server = Objects.requireNonNull(server, "server");
        this.vm = Objects.requireNonNull(vm, "vm");
    }

    /** Registers the commands on {@code server} and subscribes to {@code vm} for the events. */
    public static void register(QmpServer server, VmControl vm) {
        RunStateCommands c = new RunStateCommands(server, vm);
        vm.addListener(c.events());
        for (QmpCommand cmd : List.of(c.queryStatus(), c.queryName(), c.stop(), c.cont(), c.quit())) {
            server.register(cmd);
        }
    }

    /** STOP and RESUME on run-state changes, SHUTDOWN when one is requested elsewhere. */
    private VmControl.Listener events() {
        return new VmControl.Listener() {
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
        };
    }

    /** {@code query-status}. */
    private QmpCommand queryStatus() {
        return QmpCommand.builder("query-status")
                .handler(args -> {
                    ObjectNode status = QmpJson.object(); // StatusInfo's member order
                    status.put("running", vm.isRunning());
                    status.put("singlestep", false);
                    status.put("status", vm.runState());
                    return status;
                })
                .build();
    }

    /** {@code query-name}. */
    private QmpCommand queryName() {
        return QmpCommand.builder("query-name")
                .handler(args -> {
                    ObjectNode info = QmpJson.object();
                    String name = vm.name();
                    if (name != null) {
                        info.put("name", name);
                    }
                    return info;
                })
                .build();
    }

    /** {@code stop}: QEMU stops only a running guest; "inmigrate" and the like stay as they are. */
    private QmpCommand stop() {
        return QmpCommand.builder("stop")
                .handler(args -> {
                    if (vm.isRunning()) {
                        vm.vmStop();
                    }
                    return null;
                })
                .build();
    }

    /** {@code cont}: resumes a stopped guest, with QEMU's refusals. */
    private QmpCommand cont() {
        return QmpCommand.builder("cont")
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
                .build();
    }

    /** {@code quit}: SHUTDOWN (reason host-qmp-quit) before the reply, as QEMU 7.2 sends it. */
    private QmpCommand quit() {
        return QmpCommand.builder("quit")
                .handler(args -> {
                    if (quitting.compareAndSet(false, true)) {
                        server.emitEvent(SHUTDOWN, shutdownData("host-qmp-quit"));
                    }
                    vm.requestShutdown();
                    return null;
                })
                .build();
    }

    private static ObjectNode shutdownData(String reason) {
        ObjectNode data = QmpJson.object();
        data.put("guest", false);
        data.put("reason", reason);
        return data;
    }
}
