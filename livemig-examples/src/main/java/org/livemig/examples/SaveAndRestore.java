package org.livemig.examples;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.livemig.api.Fingerprint;
import org.livemig.api.MachineSpec;
import org.livemig.api.MigrationOptions;
import org.livemig.api.VirtualMachine;

/**
 * A machine migrated to a file (QEMU's stream format, readable by {@code livemig analyze} and
 * QEMU's analyze-migration.py) and back into a new machine.
 */
public final class SaveAndRestore {
    private SaveAndRestore() {}

    public static void main(String[] args) throws Exception {
        Path file = args.length > 0 ? Path.of(args[0]) : Files.createTempFile("livemig-example", ".mig");
        MachineSpec spec = MachineSpec.of("saved", 64L << 20).withWorkload("ab:20000").withFill(MachineSpec.Fill.MIXED);
        Fingerprint saved;
        try (VirtualMachine vm = VirtualMachine.start(spec)) {
            vm.pause(); // a snapshot of a stopped guest, as QEMU's savevm
            vm.migrate("file:" + file, MigrationOptions.DEFAULTS).awaitCompletion(Duration.ofMinutes(2));
            saved = vm.fingerprint();
        }
        System.out.printf("saved to %s (%d MiB)%n", file, Files.size(file) >> 20);
        try (VirtualMachine vm = VirtualMachine.startIncoming(spec.withName("restored").withFill(MachineSpec.Fill.ZERO))) {
            vm.listen("file:" + file, MigrationOptions.DEFAULTS).awaitCompletion(Duration.ofMinutes(2));
            boolean same = vm.fingerprint().sameStateAs(saved);
            System.out.println("restored the same state: " + same);
            vm.resume();
            System.out.println("restored machine: " + vm.runState());
            if (!same) {
                System.exit(1);
            }
        }
    }
}
