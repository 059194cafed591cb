package org.livemig.migration;

import org.livemig.machine.Machine;
import org.livemig.machine.RunState;

/** Small machines for tests. */
final class TestMachines {
    private TestMachines() {}

    static Machine.Config small(String workload) {
        return Machine.Config.defaults().withRam(16L << 20).withVcpus(2).withWorkload(workload).withBlobSize(8192);
    }

    static Machine booted(Machine.Config cfg, RunState state) {
        Machine m = new Machine(cfg);
        m.setExitHandler(status -> {
            throw new IllegalStateException("exit(" + status + ") requested");
        });
        m.mainLoop().runAndWait(() -> m.boot(state));
        return m;
    }

    /** The machine's fingerprint, taken on its main loop. */
    static tools.jackson.databind.node.ObjectNode fingerprint(Machine m) throws Exception {
        return m.mainLoop().call(() -> StateDigest.of(m), 60_000);
    }
}
