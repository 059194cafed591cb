package org.livemig.vmstate;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import org.livemig.stream.QemuStream;

/**
 * What one machine saves, in order (QEMU's savevm_state list). Section ids are assigned in
 * registration order starting at 0; devices are saved in that order too.
 *
 * <p>Thread-safe: registration happens while the machine is built, and migration threads read
 * snapshots of the list.
 */
public final class SaveStateRegistry {
    /** Pass as instance id to take the next free instance of that idstr (QEMU's VMSTATE_INSTANCE_ID_ANY). */
    public static final int INSTANCE_ID_ANY = -1;

    private final List<SaveStateEntry> entries = new ArrayList<>();

    /** Registers a device saved through its VMSD; binds the description to {@code obj}. */
    public synchronized <T> SaveStateEntry registerDevice(String idstr, int instanceId, VMStateDescription<T> vmsd,
            T obj) {
        Objects.requireNonNull(vmsd, "vmsd");
        Objects.requireNonNull(obj, "obj");
        vmsd.bind(obj);
        return add(idstr, instanceId, vmsd.versionId(), vmsd, obj, null);
    }

    /** Registers custom handlers (such as "ram") with the version they write. */
    public synchronized SaveStateEntry registerHandlers(String idstr, int instanceId, int versionId, SaveVmHandlers h) {
        Objects.requireNonNull(h, "handlers");
        return add(idstr, instanceId, versionId, null, h, h);
    }

    private SaveStateEntry add(String idstr, int instanceId, int versionId, VMStateDescription<?> vmsd, Object opaque,
            SaveVmHandlers h) {
        Objects.requireNonNull(idstr, "idstr");
        int len = idstr.getBytes(StandardCharsets.UTF_8).length;
        if (len == 0 || len > QemuStream.MAX_COUNTED_STRING) {
            throw new IllegalArgumentException("idstr must be 1..255 bytes: '" + idstr + "'");
        }
        if (instanceId == INSTANCE_ID_ANY) {
            instanceId = 0;
            for (SaveStateEntry e : entries) {
                if (e.idstr().equals(idstr)) {
                    instanceId = Math.max(instanceId, e.instanceId() + 1);
                }
            }
        } else if (instanceId < 0) {
            throw new IllegalArgumentException(idstr + ": negative instance id " + instanceId);
        } else if (findLocked(idstr, instanceId).isPresent()) {
            throw new IllegalArgumentException(idstr + " instance " + instanceId + " is already registered");
        }
        SaveStateEntry e = new SaveStateEntry(entries.size(), idstr, instanceId, versionId, vmsd, opaque, h);
        entries.add(e);
        return e;
    }

    /** A snapshot of the entries in registration (section id) order. */
    public synchronized List<SaveStateEntry> entries() {
        return List.copyOf(entries);
    }

    public synchronized Optional<SaveStateEntry> find(String idstr, int instanceId) {
        return findLocked(idstr, instanceId);
    }

    /** The entry with that section id. */
    public synchronized Optional<SaveStateEntry> bySectionId(int sectionId) {
        return sectionId >= 0 && sectionId < entries.size() ? Optional.of(entries.get(sectionId)) : Optional.empty();
    }

    private Optional<SaveStateEntry> findLocked(String idstr, int instanceId) {
        for (SaveStateEntry e : entries) {
            if (e.instanceId() == instanceId && e.idstr().equals(idstr)) {
                return Optional.of(e);
            }
        }
        return Optional.empty();
    }
}
