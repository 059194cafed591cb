package org.livemig.monitor;

import java.lang.System.Logger.Level;
import java.util.Map;
import org.livemig.trace.QmpCommandEvent;
import org.livemig.trace.Trace;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * QEMU's request handling for one QMP message, split in two: {@link #prepare} checks the
 * envelope, finds the command and validates the arguments (cheap, on qmp-io); {@link #execute}
 * runs the handler and builds the reply (on the main loop, or on qmp-io for out-of-band).
 *
 * <p>Stateless apart from the registry: the session's mode is passed in.
 */
final class QmpDispatch {
    static final String CAPABILITIES = "qmp_capabilities";
    static final String NEGOTIATION_DESC = "Expecting capabilities negotiation with 'qmp_capabilities'";

    private static final System.Logger LOG = System.getLogger(QmpDispatch.class.getName());

    /** The outcome of {@link #prepare}: an answer already, or a command to run. */
    sealed interface Prepared permits Reply, Call {
    }

    /** The request is answered without running a command (a protocol or argument error). */
    record Reply(ObjectNode response) implements Prepared {
    }

    /**
     * A command to run.
     *
     * @param negotiating the session was in capabilities negotiation mode when the request was read
     */
    record Call(QmpCommand command, ObjectNode args, JsonNode id, boolean oob, boolean negotiating, long preparedNanos)
            implements Prepared {
    }

    private final QmpCommandRegistry registry;
    private final MonitorHost host;

    QmpDispatch(QmpCommandRegistry registry, MonitorHost host) {
        this.registry = registry;
        this.host = host;
    }

    /**
     * Checks one request as QEMU's qmp_dispatch does, in its order: a JSON object; only
     * {@code execute}, {@code exec-oob} (when OOB is enabled), {@code arguments} and {@code id}
     * members; a known command (only {@code qmp_capabilities} before negotiation); OOB allowed;
     * arguments valid for the command.
     */
    Prepared prepare(JsonNode request, boolean commandMode, boolean allowOob) {
        boolean negotiating = !commandMode;
        if (!(request instanceof ObjectNode dict)) {
            return error(QmpErrorClass.GenericError, "QMP input must be a JSON object", null, negotiating);
        }
        JsonNode id = dict.get("id");
        String execKey = null;
        for (Map.Entry<String, JsonNode> e : QmpJson.qdictOrder(dict)) { // QEMU's order: decides which member is named
            String key = e.getKey();
            JsonNode value = e.getValue();
            if (key.equals("execute") || (key.equals("exec-oob") && allowOob)) {
                if (!value.isString()) {
                    return error(QmpErrorClass.GenericError,
                            "QMP input member '" + key + "' must be a string", id, negotiating);
                }
                if (execKey != null) {
                    return error(QmpErrorClass.GenericError,
                            "QMP input member '" + key + "' clashes with '" + execKey + "'", id, negotiating);
                }
                execKey = key;
            } else if (key.equals("arguments")) {
                if (!value.isObject()) {
                    return error(QmpErrorClass.GenericError,
                            "QMP input member 'arguments' must be an object", id, negotiating);
                }
            } else if (!key.equals("id")) {
                return error(QmpErrorClass.GenericError,
                        "QMP input member '" + key + "' is unexpected", id, negotiating);
            }
        }
        if (execKey == null) {
            return error(QmpErrorClass.GenericError, "QMP input lacks member 'execute'", id, negotiating);
        }
        String name = dict.get(execKey).stringValue();
        boolean oob = execKey.equals("exec-oob");
        QmpCommand command = negotiating
                ? (name.equals(CAPABILITIES) ? registry.lookup(CAPABILITIES) : null)
                : registry.lookup(name);
        if (command == null) {
            return error(QmpErrorClass.CommandNotFound, "The command " + name + " has not been found",
                    id, negotiating);
        }
        if (oob && !command.allowOob()) {
            return error(QmpErrorClass.GenericError, "The command " + name + " does not support OOB",
                    id, negotiating);
        }
        ObjectNode args = dict.get("arguments") instanceof ObjectNode a ? a : QmpJson.object();
        try {
            command.args().checkArguments(args);
        } catch (QmpError e) {
            return error(e.errorClass(), e.desc(), id, negotiating);
        }
        return new Call(command, args, id, oob, negotiating, System.nanoTime());
    }

    /**
     * Runs a prepared command and builds its reply. In-band: called on the main loop with the BQL
     * held. Out-of-band: called on qmp-io without it.
     */
    ObjectNode execute(Call call) {
        QmpCommand command = call.command();
        QmpCommandEvent trace = Trace.qmpBegin();
        long waited = call.oob() ? 0 : System.nanoTime() - call.preparedNanos();
        boolean failed = true;
        try {
            assert host.bqlHeldByCurrentThread() != call.oob()
                    : (call.oob() ? "out-of-band command " + command.name() + " run with the BQL held"
                                  : "in-band command " + command.name() + " run without the BQL");
            if (command.name().equals(CAPABILITIES) && !call.negotiating()) {
                throw new QmpError(QmpErrorClass.CommandNotFound,
                        "Capabilities negotiation is already complete, command ignored");
            }
            JsonNode ret = command.handler().handle(call.args());
            ObjectNode response = QmpJson.object();
            response.set("return", ret == null ? QmpJson.object() : ret);
            if (call.id() != null) {
                response.set("id", call.id());
            }
            failed = false;
            return response;
        } catch (QmpError e) {
            return error(e.errorClass(), e.desc(), call.id(), call.negotiating()).response();
        } catch (RuntimeException | AssertionError e) {
            LOG.log(Level.ERROR, "QMP command " + command.name() + " failed", e);
            return error(QmpErrorClass.GenericError, "Internal error in " + command.name() + ": " + e,
                    call.id(), call.negotiating()).response();
        } finally {
            Trace.end(trace, command.name(), call.oob(), waited, failed);
        }
    }

    /** An error reply; in negotiation mode CommandNotFound says what QEMU says there. */
    static Reply error(QmpErrorClass errorClass, String desc, JsonNode id, boolean negotiating) {
        String text = negotiating && errorClass == QmpErrorClass.CommandNotFound ? NEGOTIATION_DESC : desc;
        ObjectNode error = QmpJson.object();
        error.put("class", errorClass.name());
        error.put("desc", text);
        ObjectNode response = QmpJson.object();
        response.set("error", error);
        if (id != null) {
            response.set("id", id);
        }
        return new Reply(response);
    }
}
