package org.livemig.transport.tls;

/** Which end of a TLS session credentials are for, with QEMU's names ({@code endpoint=client|server}). */
public enum TlsEndpoint {
    CLIENT("client"),
    SERVER("server");

    private final String qemuName;

    TlsEndpoint(String qemuName) {
        this.qemuName = qemuName;
    }

    public String qemuName() {
        return qemuName;
    }

    /** The endpoint named {@code name}, or null. */
    public static TlsEndpoint fromQemuName(String name) {
        for (TlsEndpoint e : values()) {
            if (e.qemuName.equals(name)) {
                return e;
            }
        }
        return null;
    }
}
