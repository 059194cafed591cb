package org.livemig.examples;

import java.time.Duration;
import org.livemig.api.Fingerprint;
import org.livemig.api.IncomingMigration;
import org.livemig.api.MachineSpec;
import org.livemig.api.MigrationInfo;
import org.livemig.api.MigrationOptions;
import org.livemig.api.VirtualMachine;

/**
 * Two machines in one JVM: a running guest migrated live over a TCP socket, then both machines'
 * state compared before the destination's guest runs on.
 */
public final class TwoMachines {
    private TwoMachines() {}

    public static void main(String[] args) throws Exception {
        long ram = 64L << 20;
        MachineSpec spec = MachineSpec.of("source", ram).withWorkload("ab:20000");
        try (VirtualMachine source = VirtualMachine.start(spec);
             VirtualMachine destination = VirtualMachine.startIncoming(spec.withName("destination"))) {
            IncomingMigration incoming = destination.listen("tcp:127.0.0.1:0", MigrationOptions.DEFAULTS);
            MigrationInfo done = source.migrate(incoming.uri(), MigrationOptions.DEFAULTS.withMaxBandwidth(0))
                    .awaitCompletion(Duration.ofMinutes(2));
            incoming.awaitCompletion(Duration.ofMinutes(2));
            Fingerprint before = source.fingerprint();
            Fingerprint after = destination.fingerprint();
            System.out.printf("migrated %d MiB in %d ms, downtime %d ms%n", done.transferredBytes() >> 20,
                    done.totalTimeMillis(), done.downtimeMillis());
            System.out.println("same state on both sides: " + after.sameStateAs(before));
            System.out.println("guest's RAM pattern intact: " + after.workloadCheck());
            destination.resume();
            System.out.println("destination: " + destination.runState() + ", source: " + source.runState());
            if (!after.sameStateAs(before) || !Boolean.TRUE.equals(after.workloadCheck())) {
                System.exit(1);
            }
        }
    }
}
