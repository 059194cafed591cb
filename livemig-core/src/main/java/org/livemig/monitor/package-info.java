/**
 * The QMP monitor: QEMU 7.2's machine protocol, spoken so that existing QMP clients work
 * unchanged — and checked byte for byte against a real QEMU 7.2 (replies, errors, events, member
 * order, CR LF line ends).
 *
 * <h2>Server</h2>
 * <pre>{@code
 * QmpServer server = QmpServer.builder(MachineMonitor.host(machine)).build();   // starts qmp-io
 * RunStateCommands.register(server, MachineMonitor.vm(machine, name));        // query-status, stop, cont, quit, ...
 * server.register(QmpCommand.builder("migrate-incoming")                       // any command, any time
 *         .arg("uri", QmpType.STR)
 *         .handler(args -> { ...; return null; })                              // null = {"return": {}}
 *         .build());
 * server.listen("unix:/run/livemig/qmp.sock");                                 // mode 0600; tcp:HOST:PORT too
 * server.emitEvent("MIGRATION", QmpJson.object().put("status", "setup"));       // any thread
 * server.close();
 * }</pre>
 * One thread, {@code qmp-io}, reads and parses every session and runs out-of-band commands ({@code exec-oob},
 * declared with {@link org.livemig.monitor.QmpCommand.Builder#allowOob()}) without the BQL; the main
 * loop writes the replies of the commands it ran, and events are written by the thread that emits
 * them (a plain session's output is guarded by its own lock; TLS sessions are written by qmp-io only);
 * ordinary commands run on the main loop with the BQL held, one at a time per session, through
 * {@link org.livemig.monitor.MonitorHost}. Handlers take the checked {@code arguments} as an
 * {@code ObjectNode} and return a {@code JsonNode} or throw {@link org.livemig.monitor.QmpError}.
 * Build result objects in the QAPI schema's member order; {@link org.livemig.monitor.QmpJson}
 * writes them in QEMU's.
 *
 * <h2>Client</h2>
 * {@link org.livemig.monitor.QmpClient}: connect, negotiate, execute (id-matched, bounded wait),
 * collect and wait for events; for livemig and QEMU alike. {@code livemig qmp} is built on it.
 *
 * <p>The monitor knows no machine or migration state of its own: whoever builds the server
 * registers the commands.
 */
package org.livemig.monitor;
