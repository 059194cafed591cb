package org.livemig.security;

/** An {@code authz-*} object: decides whether an identity (a client's distinguished name) may connect. */
public sealed interface Authorization extends SecurityObject permits AuthzSimple, AuthzList {
    boolean isAllowed(String identity);
}
