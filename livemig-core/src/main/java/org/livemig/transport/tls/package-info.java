/**
 * TLS for migration connections and the monitor: {@link org.livemig.transport.tls.TlsChannelSecurity}
 * (the {@link org.livemig.transport.ChannelSecurity} a migration gets from its tls-creds,
 * tls-hostname and tls-authz) runs one handshake per connection and returns a
 * {@link org.livemig.transport.tls.TlsConnection}, still a pair of blocking byte channels;
 * {@link org.livemig.transport.tls.NonBlockingTlsChannel} is the same for an event loop (QMP).
 * X.509 runs on the JDK's {@code SSLEngine}, pre-shared keys on Bouncy Castle's TLS protocol
 * (the JDK has no PSK), both behind one package-private engine interface.
 *
 * <p>Threads: handshakes block the calling thread (a migration thread, an accept thread), bounded
 * by a timer on {@code tls-handshake-timer} that shuts the connection down; afterwards one reader
 * and one writer may use a connection at once and {@code shutdown()} may come from any thread.
 * Nothing here needs or may hold the BQL. {@code livemig-tls-warm-up} compiles the paths at start.
 */
package org.livemig.transport.tls;
