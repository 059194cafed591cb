package org.livemig.api;

import java.util.Map;

/**
 * What a machine holds, in a form two machines can compare: a hash of every RAM block and a
 * SHA-256 of every device's state. A migrated destination's fingerprint, taken before its guest
 * runs, equals the source's taken after the switchover.
 *
 * @param ram            RAM block name to a 64-bit content hash (hex)
 * @param devices        device ("idstr/instance") to the SHA-256 of its encoded state (hex)
 * @param workloadCheck  for the {@code ab} workload, whether RAM is a consistent state of it
 *                       (null for other workloads)
 * @param workloadDetail what the check saw (the first page that breaks the pattern when it fails)
 */
public record Fingerprint(Map<String, String> ram, Map<String, String> devices, Boolean workloadCheck,
                          String workloadDetail) {
    public Fingerprint {
        ram = Map.copyOf(ram);
        devices = Map.copyOf(devices);
    }

    /** Same RAM and same device state (the workload check aside). */
    public boolean sameStateAs(Fingerprint other) {
        return ram.equals(other.ram) && devices.equals(other.devices);
    }
}
