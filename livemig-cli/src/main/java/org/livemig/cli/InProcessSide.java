package org.livemig.cli;

import java.util.Iterator;
import java.util.Map;
import org.livemig.machine.Machine;
import org.livemig.machine.RunState;
import org.livemig.migration.Capability;
import org.livemig.migration.Incoming;
import org.livemig.migration.Migration;
import org.livemig.migration.StateDigest;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.node.ObjectNode;

/** A demo side living in this JVM: a {@link Machine} and its {@link Migration}, driven on its main loop. */
final class InProcessSide implements DemoSide {
    private static final long TIMEOUT = 60_000;
    final Machine machine;
    final Migration migration;

    /** Counted down at the end of the first precopy pass of an outgoing migration. */
    private final java.util.concurrent.CountDownLatch firstPass = new java.util.concurrent.CountDownLatch(1);

    InProcessSide(Machine.Config cfg, boolean incoming, boolean autostart, String postcopyBackend) {
        this.machine = new Machine(cfg);
        this.migration = new Migration(machine);
        migration.addListener(new org.livemig.migration.MigrationEvents() {
            @Override
            public void pass(long pass) {
                if (pass >= 2) { // pass 1 is the sync at setup, as in QEMU
                    firstPass.countDown();
                }
            }
        });
        migration.setAutostart(autostart);
        migration.setPostcopyBackend(postcopyBackend);
        machine.setExitHandler(status -> {
            throw new IllegalStateException("in-process destination asked to exit with status " + status);
        });
        machine.mainLoop().runAndWait(() -> machine.boot(incoming ? RunState.INMIGRATE : RunState.RUNNING));
    }

    @Override
    public void setCapabilities(Map<String, Boolean> caps) throws Exception {
        machine.mainLoop().call(() -> {
            for (var e : caps.entrySet()) {
                Capability c = Capability.fromQemuName(e.getKey());
                if (c == null) {
                    throw new IllegalArgumentException("unknown capability " + e.getKey());
                }
                migration.setCapability(c, e.getValue());
            }
            return null;
        }, TIMEOUT);
    }

    @Override
    public void setParameters(ObjectNode params) throws Exception {
        machine.mainLoop().call(() -> {
            migration.setParameters(p -> {
                for (Iterator<Map.Entry<String, JsonNode>> it = params.properties().iterator(); it.hasNext(); ) {
                    var e = it.next();
                    long v = e.getValue().asLong();
                    switch (e.getKey()) {
                        case "max-bandwidth" -> p.maxBandwidth = v;
                        case "downtime-limit" -> p.downtimeLimit = v;
                        case "cpu-throttle-initial" -> p.cpuThrottleInitial = (int) v;
                        case "cpu-throttle-increment" -> p.cpuThrottleIncrement = (int) v;
                        case "multifd-channels" -> p.multifdChannels = (int) v;
                        default -> throw new IllegalArgumentException("unknown parameter " + e.getKey());
                    }
                }
            });
            return null;
        }, TIMEOUT);
    }

    @Override
    public String migrateIncoming(String uri) throws Exception {
        Incoming in = machine.mainLoop().call(() -> migration.migrateIncoming(uri, false), TIMEOUT);
        return in.boundAddress().uri();
    }

    @Override
    public void migrate(String uri) throws Exception {
        machine.mainLoop().call(() -> migration.migrate(uri), TIMEOUT);
    }

    @Override
    public ObjectNode queryMigrate() {
        return migration.queryMigrate();
    }

    @Override
    public String status() {
        return machine.runState().qemuName();
    }

    @Override
    public ObjectNode fingerprint(boolean pages) throws Exception {
        return machine.mainLoop().call(() -> {
            ObjectNode f = StateDigest.of(machine);
            if (pages) {
                f.setAll(StateDigest.pages(machine));
            }
            return f;
        }, 600_000);
    }

    @Override
    public boolean awaitFirstPass(java.time.Duration timeout) throws InterruptedException {
        return firstPass.await(timeout.toNanos(), java.util.concurrent.TimeUnit.NANOSECONDS);
    }

    @Override
    public void startPostcopy() throws Exception {
        machine.mainLoop().call(() -> {
            migration.startPostcopy();
            return null;
        }, TIMEOUT);
    }

    @Override
    public void stop() throws Exception {
        machine.mainLoop().call(() -> {
            machine.vmStop(RunState.PAUSED);
            return null;
        }, TIMEOUT);
    }

    @Override
    public void cont() throws Exception {
        machine.mainLoop().call(() -> {
            machine.vmStart();
            return null;
        }, TIMEOUT);
    }

    @Override
    public void cancel() {
        migration.cancel();
    }

    @Override
    public void pausePostcopy() throws Exception {
        migration.pause();
    }

    @Override
    public String recover(String uri) throws Exception {
        migration.recover(uri);
        return migration.incoming().boundAddress().uri();
    }

    @Override
    public void resume(String uri) throws Exception {
        machine.mainLoop().call(() -> migration.resume(uri), TIMEOUT);
    }

    @Override
    public void close() throws Exception {
        machine.close(); // ends the migration first (Migration registers for it)
    }
}
