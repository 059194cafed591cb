package org.livemig.security;

/** One user-created object: its QOM type name and id. */
public sealed interface SecurityObject permits TlsCredsX509, TlsCredsPsk, Authorization {
    String id();

    /** QEMU's {@code qom-type}. */
    String type();
}
