package org.livemig.vmstate;

import java.io.IOException;
import java.util.Objects;
import org.livemig.stream.MigrationFile;

/**
 * One thing a machine saves (QEMU's SaveStateEntry): a device with its VMSD and object, or a set
 * of {@link SaveVmHandlers}. Immutable; made by {@link SaveStateRegistry}, which ties the VMSD's
 * type to the object's, so {@link #saveState}, {@link #applyState} and {@link #captureState} are safe.
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

    /**
     * Called with the BQL held: {@link VmStateCodec#save} of this device entry, without the
     * caller casting the description and object to a common type.
     */
    @SuppressWarnings({"unchecked", "rawtypes"})
    public void saveState(MigrationFile f, VmDesc.Device desc) throws IOException {
        VmStateCodec.save(f, (VMStateDescription) deviceVmsd(), opaque, desc);
    }

    /** Called with the BQL held: {@link VmStateCodec#apply} of a staged tree to this device entry. */
    public void applyState(VmValue.Struct staged) throws VmStateException {
        applyState(staged, HookLock.HELD);
    }

    /**
     * {@link VmStateCodec#apply(VMStateDescription, Object, VmValue.Struct, HookLock)} of a staged
     * tree to this device entry, called with or without the BQL as {@code lock} says.
     */
    @SuppressWarnings({"unchecked", "rawtypes"})
    public void applyState(VmValue.Struct staged, HookLock lock) throws VmStateException {
        VmStateCodec.apply((VMStateDescription) deviceVmsd(), opaque, staged, lock);
    }

    /** Called with the BQL held: {@link VmStateCodec#capture} of this device entry. */
    @SuppressWarnings({"unchecked", "rawtypes"})
    public VmValue.Struct captureState() {
        return VmStateCodec.capture((VMStateDescription) deviceVmsd(), opaque);
    }

    private VMStateDescription<?> deviceVmsd() {
        if (vmsd == null) {
            throw new IllegalStateException(sectionName() + " is saved by handlers, not by a VMSD");
        }
        return vmsd;
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
