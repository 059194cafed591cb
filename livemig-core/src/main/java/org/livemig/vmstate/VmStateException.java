package org.livemig.vmstate;

/**
 * A device refused its state (its post-load hook failed) or a staged value tree does not fit the
 * description it is applied with. The message names the VMSD path (e.g. {@code cpu/env.segs[2].base}).
 */
public class VmStateException extends Exception {
    public VmStateException(String message) {
        super(message);
    }

    public VmStateException(String message, Throwable cause) {
        super(message, cause);
    }
}
