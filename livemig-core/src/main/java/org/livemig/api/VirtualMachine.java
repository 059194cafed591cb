package org.livemig.api;

import java.io.IOException;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;
import org.livemig.machine.Machine;
import org.livemig.machine.RunState;
import org.livemig.migration.Incoming;
import org.livemig.migration.Migration;
import org.livemig.migration.Outgoing;
import org.livemig.monitor.MachineMonitor;
import org.livemig.monitor.MigrationCommands;
import org.livemig.monitor.ObjectCommands;
import org.livemig.monitor.QmpError;
import org.livemig.monitor.QmpJson;
import org.livemig.monitor.QmpServer;
import org.livemig.monitor.RunStateCommands;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * A machine to migrate, running in this process: guest RAM (allocated and pre-faulted when it is
 * built), devices, vCPU threads running its workload, a main loop and the big lock.
 *
 * <p>Everything it does goes through the same commands as its QMP monitor, run in-process: a
 * call here means exactly what the QMP command of the same name means, with QEMU's errors.
 * {@link #serveQmp} opens that monitor on a socket too, for QMP clients and tools.
 *
 * <pre>{@code
 * try (VirtualMachine src = VirtualMachine.start(MachineSpec.of("src", 256 << 20));
 *      VirtualMachine dst = VirtualMachine.startIncoming(MachineSpec.of("dst", 256 << 20))) {
 *     IncomingMigration in = dst.listen("tcp:127.0.0.1:0", MigrationOptions.DEFAULTS);
 *     src.migrate(in.uri(), MigrationOptions.DEFAULTS).awaitCompletion(Duration.ofMinutes(1));
 *     in.awaitCompletion(Duration.ofMinutes(1));
 *     assert src.fingerprint().sameStateAs(dst.fingerprint());
 * }
 * }</pre>
 */
public final class VirtualMachine implements AutoCloseable {
    /** How long a command may wait for the main loop. */
    private static final Duration CALL_TIMEOUT = Duration.ofMinutes(2);

    private final MachineSpec spec;
    private final Machine machine;
    private final Migration migration;
    private final QmpServer monitor;

    private VirtualMachine(MachineSpec spec, RunState initial) throws IOException {
        this.spec = spec;
        this.machine = new Machine(new Machine.Config(spec.name(), spec.ramBytes(), spec.vcpus(), spec.workload(),
                Machine.Fill.valueOf(spec.fill().name()), 64 * 1024, spec.seed(), true));
        try {
            // An embedding application is never exited by a machine (a failed incoming migration
            // with exit-on-error would): it is told through the migration's state instead.
            machine.setExitHandler(status -> {
                throw new IllegalStateException("machine " + spec.name() + " asked to exit with status " + status);
            });
            this.migration = new Migration(machine);
            this.monitor = QmpServer.builder(MachineMonitor.host(machine)).build();
            RunStateCommands.register(monitor, MachineMonitor.vm(machine, spec.name()));
            MigrationCommands.register(monitor, migration);
            ObjectCommands.register(monitor, migration.objects());
            machine.mainLoop().runAndWait(() -> machine.boot(initial));
        } catch (IOException | RuntimeException e) {
            machine.close();
            throw e;
        }
    }

    /** Builds a machine and starts its guest. */
    public static VirtualMachine start(MachineSpec spec) throws IOException {
        return new VirtualMachine(spec, RunState.RUNNING);
    }

    /** Builds a machine whose guest waits paused (QEMU's {@code -S}) until {@link #resume}. */
    public static VirtualMachine startPaused(MachineSpec spec) throws IOException {
        return new VirtualMachine(spec, RunState.PRELAUNCH);
    }

    /** Builds a machine that waits for an incoming migration ({@link #listen}), as QEMU's {@code -incoming defer}. */
    public static VirtualMachine startIncoming(MachineSpec spec) throws IOException {
        return new VirtualMachine(spec, RunState.INMIGRATE);
    }

    public MachineSpec spec() {
        return spec;
    }

    /** The run state with QEMU's name: {@code running}, {@code paused}, {@code inmigrate}, {@code postmigrate}, ... */
    public String runState() {
        return execute("query-status", null).path("status").asString();
    }

    /** QMP's {@code stop}: the vCPUs stop (the guest's RAM and devices stay as they are). */
    public void pause() {
        execute("stop", null);
    }

    /** QMP's {@code cont}. */
    public void resume() {
        execute("cont", null);
    }

    /**
     * Sends this machine to {@code uri} ({@code tcp:HOST:PORT}, {@code unix:PATH},
     * {@code file:PATH}, {@code exec:COMMAND}) while its guest runs.
     *
     * @throws MigrationFailedException options refused, or a migration is already running (QEMU's words)
     */
    public OutgoingMigration migrate(String uri, MigrationOptions options) throws MigrationFailedException {
        try {
            apply(options);
            ObjectNode args = QmpJson.object();
            args.put("uri", uri);
            qmp("migrate", args);
        } catch (QmpError e) {
            throw new MigrationFailedException(e.desc(), null);
        }
        Outgoing o = migration.outgoing();
        return new OutgoingMigration(this, new SideWatch(o.statusMachine(), o::error, () -> o.ramStats().transferred.get()));
    }

    /**
     * Waits for a migration on {@code uri} ({@code tcp:HOST:0} picks a port: see
     * {@link IncomingMigration#uri()}); {@code file:PATH} reads a saved machine back.
     *
     * @throws MigrationFailedException options refused, or the address cannot be listened on
     */
    public IncomingMigration listen(String uri, MigrationOptions options) throws MigrationFailedException {
        try {
            apply(options);
            machine.mainLoop().call(() -> {
                migration.setAutostart(options.startGuestOnArrival());
                return null;
            }, CALL_TIMEOUT.toMillis());
            ObjectNode args = QmpJson.object();
            args.put("uri", uri);
            args.put("exit-on-error", false);
            qmp("migrate-incoming", args);
        } catch (QmpError e) {
            throw new MigrationFailedException(e.desc(), null);
        } catch (Exception e) {
            throw new MigrationFailedException(String.valueOf(e.getMessage()), null);
        }
        Incoming in = migration.incoming();
        String bound = in.boundAddress() != null ? in.boundAddress().uri() : uri;
        return new IncomingMigration(this, new SideWatch(in.statusMachine(), in::error, () -> in.ramStats().transferred.get()),
                bound);
    }

    /**
     * A fingerprint of what the machine holds: RAM and device state. Take it with the guest
     * stopped (a source after completion, a destination before it resumes): a running guest
     * changes RAM under it.
     */
    public Fingerprint fingerprint() {
        JsonNode f = execute("x-livemig-fingerprint", null);
        Map<String, String> ram = new LinkedHashMap<>();
        f.path("ram").properties().forEach(e -> ram.put(e.getKey(), e.getValue().asString()));
        Map<String, String> devices = new LinkedHashMap<>();
        f.path("devices").properties().forEach(e -> devices.put(e.getKey(), e.getValue().asString()));
        JsonNode ab = f.get("ab-check");
        return new Fingerprint(ram, devices, ab == null ? null : ab.path("ok").asBoolean(),
                ab == null ? null : ab.path("detail").asString());
    }

    /**
     * Opens this machine's QMP monitor on {@code unix:PATH} or {@code tcp:HOST:PORT} (more than
     * one may be open); closed with the machine.
     *
     * @return the address bound
     */
    public String serveQmp(String address) throws IOException {
        return monitor.listen(address).toString();
    }

    /** What query-migrate says of the last migration, either side. */
    MigrationInfo queryMigrate() {
        JsonNode q = execute("query-migrate", null);
        JsonNode ram = q.path("ram");
        return new MigrationInfo(MigrationState.ofQemuName(q.path("status").asString("none")), q.path("total-time").asLong(-1),
                q.path("downtime").asLong(-1), ram.path("transferred").asLong(0), ram.path("remaining").asLong(0),
                ram.path("dirty-sync-count").asLong(0), q.has("error-desc") ? q.get("error-desc").asString() : null);
    }

    private void apply(MigrationOptions options) {
        tools.jackson.databind.node.ArrayNode caps = QmpJson.NODES.arrayNode();
        for (MigrationCapability c : MigrationCapability.values()) {
            ObjectNode e = caps.addObject();
            e.put("capability", c.qemuName());
            e.put("state", options.capabilities().contains(c));
        }
        ObjectNode capArgs = QmpJson.object();
        capArgs.set("capabilities", caps);
        qmp("migrate-set-capabilities", capArgs);
        if (!options.parameters().isEmpty()) {
            ObjectNode p = QmpJson.object();
            options.parameters().forEach((k, v) -> {
                switch (v) {
                    case Long l -> p.put(k, l);
                    case Integer i -> p.put(k, i);
                    case Boolean b -> p.put(k, b);
                    default -> p.put(k, (String) v);
                }
            });
            qmp("migrate-set-parameters", p);
        }
    }

    /** One QMP command, in-process; its error thrown as a {@link QmpError}. */
    private JsonNode qmp(String command, ObjectNode args) {
        return monitor.executeInProcess(command, args, CALL_TIMEOUT);
    }

    /** One QMP command for a public method: its error (QEMU's words) as an IllegalStateException. */
    JsonNode execute(String command, ObjectNode args) {
        try {
            return qmp(command, args);
        } catch (QmpError e) {
            throw new IllegalStateException(e.desc(), e);
        }
    }

    /** Stops the guest and any migration, closes the monitor and frees guest RAM. */
    @Override
    public void close() {
        try {
            monitor.close();
        } finally {
            machine.close();
        }
    }
}
