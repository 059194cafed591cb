package org.livemig.monitor;

import java.io.IOException;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicInteger;
import org.livemig.machine.Machine;
import org.livemig.machine.RunState;
import org.livemig.migration.Migration;
import org.livemig.migration.StateDigest;
import tools.jackson.databind.node.ObjectNode;

/**
 * A livemig machine in this JVM behind its own QMP server on a Unix socket, with the commands a
 * {@code livemig run} process registers: the in-process twin of a machine process, cheap enough
 * to start one per case. An exit asked for (exit-on-error) is recorded, not performed.
 */
final class LivemigVm extends QmpVm {
    final Machine machine;
    final Migration migration;
    final QmpServer server;
    private final AtomicInteger exitStatus;

    private LivemigVm(String name, Machine machine, Migration migration, QmpServer server, QmpClient qmp,
                      AtomicInteger exitStatus) throws IOException {
        super(name, qmp);
        this.machine = machine;
        this.migration = migration;
        this.server = server;
        this.exitStatus = exitStatus;
    }

    /** A small machine for migration cases: 2 vCPUs, the given RAM and workload, a 4 KiB blob device. */
    static Machine.Config config(String name, long ram, String workload) {
        return Machine.Config.defaults().withName(name).withRam(ram).withVcpus(2).withWorkload(workload).withBlobSize(4096);
    }

    /** Boots {@code cfg} in {@code state} (INMIGRATE for a destination) and serves QMP on DIR/NAME.qmp. */
    static LivemigVm start(Path dir, Machine.Config cfg, RunState state) throws IOException {
        return start(dir, cfg, state, 0);
    }

    /** As above, its monitor paced to {@code pace} in-band commands a second while it migrates out, as {@code livemig run}'s. */
    static LivemigVm start(Path dir, Machine.Config cfg, RunState state, int pace) throws IOException {
        Machine m = new Machine(cfg);
        AtomicInteger exit = new AtomicInteger(-1);
        m.setExitHandler(exit::set);
        m.mainLoop().runAndWait(() -> m.boot(state));
        Migration mig = new Migration(m);
        QmpServer server = QmpServer.builder(MachineMonitor.host(m)).pacing(() -> {
            var o = mig.outgoing();
            return o != null && o.status().isActive();
        }, pace).build();
        RunStateCommands.register(server, MachineMonitor.vm(m, cfg.name()));
        MigrationCommands.register(server, mig);
        String sock = "unix:" + dir.resolve(cfg.name() + ".qmp");
        server.listen(sock);
        return new LivemigVm(cfg.name(), m, mig, server, QmpClient.connect(sock), exit);
    }

    @Override
    boolean isQemu() {
        return false;
    }

    @Override
    boolean alive() {
        return exitStatus.get() < 0;
    }

    @Override
    int exitStatus() {
        return exitStatus.get();
    }

    /** The machine's fingerprint (RAM hashes, device digests, the A-B check) over QMP; the guest must be stopped. */
    ObjectNode fingerprint() throws IOException {
        return (ObjectNode) qmp.timeout(LONG).execute("x-livemig-fingerprint");
    }

    /** A hash of the main RAM block, read directly (any run state; for "unchanged" checks of a stopped or idle guest). */
    String ramHash() {
        return StateDigest.ram(machine.mainBlock());
    }

    @Override
    public void close() {
        qmp.close();
        server.close();
        machine.close();
    }
}
