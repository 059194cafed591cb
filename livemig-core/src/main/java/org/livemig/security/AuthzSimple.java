package org.livemig.security;

import java.util.Objects;

/** QEMU's {@code authz-simple}: allows exactly one identity. */
public record AuthzSimple(String id, String identity) implements Authorization {
    public static final String TYPE = "authz-simple";

    public AuthzSimple {
        Objects.requireNonNull(id, "id");
        Objects.requireNonNull(identity, "identity");
    }

    @Override
    public String type() {
        return TYPE;
    }

    @Override
    public boolean isAllowed(String who) {
        return identity.equals(who);
    }
}
