package org.livemig.monitor;

import tools.jackson.databind.JsonNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * The body of a QMP command. Ordinary commands are called on the main loop with the BQL held;
 * out-of-band commands on {@code qmp-io} without it (they must not block).
 */
@FunctionalInterface
public interface QmpHandler {
    /**
     * Runs the command with arguments already checked against its declared {@link QmpType.Struct}.
     *
     * @param args the {@code arguments} object (empty when the client sent none); the handler
     *             may keep it
     * @return the {@code return} value; null means {@code {}}, as QEMU answers commands without
     *         a result
     * @throws QmpError to answer an error
     */
    JsonNode handle(ObjectNode args);
}
