package org.livemig.cli;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.livemig.bench.ChildMachine;
import org.livemig.monitor.QmpClient;
import org.livemig.monitor.QmpJson;
import tools.jackson.databind.node.ArrayNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * A demo side in its own JVM: a child {@code livemig run} process with a QMP socket, driven with
 * the same commands a user sends to QEMU.
 */
final class QmpSide implements DemoSide {
    private final ChildMachine child;
    private final QmpClient qmp;

    private QmpSide(ChildMachine child) {
        this.child = child;
        this.qmp = child.qmp();
    }

    /** Starts {@code livemig run} with the machine options; a destination waits with {@code --incoming defer -S}. */
    static QmpSide start(MachineOptions machine, boolean incoming, Path dir, String name) throws IOException, InterruptedException {
        return start(machine, incoming, dir, name, incoming ? List.of("-S") : List.of());
    }

    /** As above, with extra {@code livemig run} arguments. */
    static QmpSide start(MachineOptions machine, boolean incoming, Path dir, String name, List<String> extra)
            throws IOException, InterruptedException {
        List<String> args = new ArrayList<>(machine.asArgs());
        if (incoming) {
            args.addAll(List.of("--incoming", "defer"));
        }
        args.addAll(extra);
        return new QmpSide(ChildMachine.start(ChildMachine.javaCommand(true), args, dir, name));
    }

    /** A QMP command; when the connection failed because the child died, the exception says how it died. */
    private tools.jackson.databind.JsonNode exec(String command) throws IOException {
        return exec(command, null);
    }

    private tools.jackson.databind.JsonNode exec(String command, ObjectNode args) throws IOException {
        try {
            return qmp.execute(command, args);
        } catch (IOException e) {
            throw explain(e);
        }
    }

    /** The child's death, if that is why {@code e} happened; else {@code e}. */
    private IOException explain(IOException e) {
        try {
            if (child.process().waitFor(1, java.util.concurrent.TimeUnit.SECONDS)) {
                return new IOException("the " + child.name() + " process " + ChildMachine.describeExit(child.process().exitValue())
                        + " (" + e.getMessage() + ")", e);
            }
        } catch (InterruptedException ie) {
            Thread.currentThread().interrupt();
        }
        return e;
    }

    long pid() {
        return child.pid();
    }

    /** The child's log (its stdout and stderr). */
    java.nio.file.Path log() {
        return child.log();
    }

    Process process() {
        return child.process();
    }

    QmpClient qmp() {
        return qmp;
    }

    @Override
    public void setCapabilities(Map<String, Boolean> caps) throws IOException {
        ObjectNode a = QmpJson.object();
        ArrayNode list = a.putArray("capabilities");
        caps.forEach((k, v) -> list.addObject().put("capability", k).put("state", v));
        exec("migrate-set-capabilities", a);
    }

    @Override
    public void setParameters(ObjectNode params) throws IOException {
        exec("migrate-set-parameters", params);
    }

    @Override
    public String migrateIncoming(String uri) throws IOException {
        exec("migrate-incoming", QmpClient.args("uri", uri));
        if (uri.startsWith("tcp:") && uri.endsWith(":0")) {
            throw new IOException("a two-process demo needs a fixed tcp port");
        }
        return uri;
    }

    @Override
    public void migrate(String uri) throws IOException {
        exec("migrate", QmpClient.args("uri", uri));
    }

    @Override
    public ObjectNode queryMigrate() throws IOException {
        return (ObjectNode) exec("query-migrate");
    }

    @Override
    public String status() throws IOException {
        return exec("query-status").path("status").asString();
    }

    @Override
    public ObjectNode fingerprint(boolean pages) throws IOException {
        return (ObjectNode) qmp.timeout(Duration.ofMinutes(5)).execute("x-livemig-fingerprint",
                pages ? QmpClient.args("pages", true) : null);
    }

    @Override
    public boolean awaitFirstPass(Duration timeout) throws IOException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (System.nanoTime() < deadline) {
            try {
                // pass 1 is the sync at setup (as QEMU's); pass 2 ends the first pass over RAM
                qmp.waitForEvent(org.livemig.monitor.MigrationCommands.MIGRATION_PASS,
                        e -> e.path("data").path("pass").asLong() >= 2, Duration.ofMillis(250));
                return true;
            } catch (java.util.concurrent.TimeoutException notYet) {
                String s = queryMigrate().path("status").asString();
                if (s.equals("completed") || s.equals("failed") || s.equals("cancelled")) {
                    return false;
                }
            }
        }
        return false;
    }

    @Override
    public void startPostcopy() throws IOException {
        exec("migrate-start-postcopy");
    }

    @Override
    public void stop() throws IOException {
        exec("stop");
    }

    @Override
    public void cont() throws IOException {
        exec("cont");
    }

    @Override
    public void cancel() throws IOException {
        exec("migrate_cancel");
    }

    @Override
    public void pausePostcopy() throws IOException {
        try (QmpClient oob = child.connectOob()) {
            oob.executeOob("migrate-pause", null);
        }
    }

    @Override
    public String recover(String uri) throws IOException {
        if (uri.startsWith("tcp:") && uri.endsWith(":0")) {
            throw new IOException("a two-process demo needs a fixed tcp port");
        }
        try (QmpClient oob = child.connectOob()) {
            oob.executeOob("migrate-recover", QmpClient.args("uri", uri));
        }
        return uri;
    }

    @Override
    public void resume(String uri) throws IOException {
        ObjectNode a = QmpClient.args("uri", uri);
        a.put("resume", true);
        exec("migrate", a);
    }

    /** Runs {@code command} out of band on a connection of its own (yank, migrate-pause, ...). */
    tools.jackson.databind.JsonNode executeOob(String command, ObjectNode arguments) throws IOException {
        try (QmpClient oob = child.connectOob()) {
            return oob.executeOob(command, arguments);
        }
    }

    @Override
    public void close() throws Exception {
        child.close();
    }
}
