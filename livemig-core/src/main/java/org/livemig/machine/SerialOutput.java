package org.livemig.machine;

/**
 * Where the bytes a guest writes to its serial port go: the machine's one externally visible
 * output (a file, a terminal, or, on a COLO primary, the output comparison that holds them back
 * until the secondary has produced the same). Called on vCPU threads without the BQL, one byte at
 * a time in the order the guest wrote them (the serial device serialises its writers).
 */
@FunctionalInterface
public interface SerialOutput {
    /** Discards the output. */
    SerialOutput NONE = b -> { };

    void write(byte b);
}
