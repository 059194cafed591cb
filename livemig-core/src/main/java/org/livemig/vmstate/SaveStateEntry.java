package org.livemig.vmstate;

import java.util.Objects;

/**
 * One thing a machine saves (QEMU's SaveStateEntry): a device with its VMSD and object, or a set
 * of {@link SaveVmHandlers}. Immutable; made by {@link SaveStateRegistry}.
 */
public final class SaveStateEntry {
    private final int sectionId;
    private final String idstr;
    private final int instanceId;
    private final int versionId;
    private final VMStateDescription<?> vmsd;
    private final Object opaque;
    private final SaveVmHandlers handlers;

    SaveStateEntry(int sectionId, String idstr, int instanceId, int versionId, VMStateDescription<?> vmsd,
            Object opaque, SaveVmHandlers handlers) {
        this.sectionId = sectionId;
        this.idstr = Objects.requireNonNull(idstr);
        this.instanceId = instanceId;
        this.versionId = versionId;
        this.vmsd = vmsd;
        this.opaque = opaque;
        this.handlers = handlers;
    }

    /** Section id written in START/FULL headers and footers. */
    public int sectionId() {
        return sectionId;
    }

    public String idstr() {
        return idstr;
    }

    public int instanceId() {
        return instanceId;
    }

    /** Version written in the section header: the VMSD's version, or the handlers'. */
    public int versionId() {
        return versionId;
    }

    /** The description, or null for handlers. */
    public VMStateDescription<?> vmsd() {
        return vmsd;
    }

    /** The device object (for a VMSD entry) or the handlers (for a handler entry). */
    public Object opaque() {
        return opaque;
    }

    /** The handlers, or null for a VMSD entry. */
    public SaveVmHandlers handlers() {
        return handlers;
    }

    /** True for handler entries: they are saved in START/PART/END sections, not as one FULL section. */
    public boolean isIterative() {
        return handlers != null;
    }

    /** "idstr instance N", as section names appear in errors. */
    public String sectionName() {
        return idstr + " instance " + instanceId;
    }

    @Override
    public String toString() {
        return "SaveStateEntry[" + sectionId + ": " + sectionName() + " v" + versionId
                + (isIterative() ? " (handlers)" : " (" + vmsd.name() + ")") + "]";
    }
}
