/**
 * Credential and authorization objects with QEMU's types, properties and errors, created by
 * {@code object-add} (or {@code --object}) and looked up by id: {@code tls-creds-x509},
 * {@code tls-creds-psk}, {@code authz-simple}, {@code authz-list}. An {@link
 * org.livemig.security.ObjectRegistry} holds one process's objects; a migration or a TLS
 * monitor acquires the ones it uses ({@link org.livemig.security.ObjectRegistry#tls}), and an
 * object in use cannot be deleted.
 *
 * <p>Objects are immutable once created (their files are read at creation, as QEMU does); the
 * registry is thread-safe. Nothing here blocks on the network or needs the BQL; creating an
 * object reads files.
 */
package org.livemig.security;
