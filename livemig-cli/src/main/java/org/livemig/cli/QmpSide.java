package org.livemig.cli;

import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.livemig.monitor.QmpClient;
import org.livemig.monitor.QmpJson;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.node.ArrayNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * A demo side in its own JVM: a child {@code livemig run} process with a QMP socket, driven with
 * the same commands a user sends to QEMU.
 */
final class QmpSide implements DemoSide {
    private static final Duration START_TIMEOUT = Duration.ofSeconds(120);
    private final Process process;
    private final QmpClient qmp;
    private final Path log;

    private QmpSide(Process process, QmpClient qmp, Path log) {
        this.process = process;
        this.qmp = qmp;
        this.log = log;
    }

    /** Starts {@code livemig run} with the machine options; a destination waits with {@code --incoming defer -S}. */
    static QmpSide start(MachineOptions machine, boolean incoming, Path dir, String name) throws IOException, InterruptedException {
        return start(machine, incoming, dir, name, incoming ? List.of("-S") : List.of());
    }

    /** As above, with extra {@code livemig run} arguments. */
    static QmpSide start(MachineOptions machine, boolean incoming, Path dir, String name, List<String> extra)
            throws IOException, InterruptedException {
        Path sock = dir.resolve(name + ".qmp");
        Path log = dir.resolve(name + ".log");
        List<String> cmd = new ArrayList<>(javaCommand());
        cmd.add("run");
        cmd.addAll(machine.asArgs());
        cmd.addAll(List.of("--name", name, "--qmp", "unix:" + sock));
        if (incoming) {
            cmd.addAll(List.of("--incoming", "defer"));
        }
        cmd.addAll(extra);
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        long deadline = System.nanoTime() + START_TIMEOUT.toNanos();
        while (!Files.exists(sock)) {
            if (!p.isAlive()) {
                throw new IOException(name + " process exited with status " + p.exitValue() + ": " + tail(log));
            }
            if (System.nanoTime() > deadline) {
                p.destroyForcibly();
                throw new IOException(name + " process did not open its QMP socket within " + START_TIMEOUT.toSeconds() + " s");
            }
            Thread.sleep(20); // waiting for a child process to create its socket: there is no event to wait on
        }
        QmpClient c = QmpClient.connect("unix:" + sock);
        c.negotiate();
        return new QmpSide(p, c, log);
    }

    /** The java binary and jar of this process, with the same JVM flags as the launcher. */
    static List<String> javaCommand() {
        String java = ProcessHandle.current().info().command().orElse("java");
        String jar;
        try {
            jar = new File(QmpSide.class.getProtectionDomain().getCodeSource().getLocation().toURI()).getPath();
        } catch (Exception e) {
            throw new IllegalStateException("cannot find the livemig jar", e);
        }
        List<String> cmd = new ArrayList<>(List.of(java, "-ea", "--enable-native-access=ALL-UNNAMED"));
        String opts = System.getenv("LIVEMIG_CHILD_JAVA_OPTS");
        cmd.addAll(List.of((opts == null ? "-Xmx256m" : opts).split("\\s+")));
        if (jar.endsWith(".jar")) {
            cmd.addAll(List.of("-jar", jar));
        } else {
            cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), "org.livemig.cli.Main"));
        }
        return cmd;
    }

    private static String tail(Path log) {
        try {
            List<String> lines = Files.readAllLines(log);
            return String.join("\n", lines.subList(Math.max(0, lines.size() - 20), lines.size()));
        } catch (IOException e) {
            return "(no log)";
        }
    }

    long pid() {
        return process.pid();
    }

    Process process() {
        return process;
    }

    QmpClient qmp() {
        return qmp;
    }

    @Override
    public void setCapabilities(Map<String, Boolean> caps) throws IOException {
        ObjectNode a = QmpJson.object();
        ArrayNode list = a.putArray("capabilities");
        caps.forEach((k, v) -> list.addObject().put("capability", k).put("state", v));
        qmp.execute("migrate-set-capabilities", a);
    }

    @Override
    public void setParameters(ObjectNode params) throws IOException {
        qmp.execute("migrate-set-parameters", params);
    }

    @Override
    public String migrateIncoming(String uri) throws IOException {
        qmp.execute("migrate-incoming", QmpClient.args("uri", uri));
        if (uri.startsWith("tcp:") && uri.endsWith(":0")) {
            throw new IOException("a two-process demo needs a fixed tcp port");
        }
        return uri;
    }

    @Override
    public void migrate(String uri) throws IOException {
        qmp.execute("migrate", QmpClient.args("uri", uri));
    }

    @Override
    public ObjectNode queryMigrate() throws IOException {
        return (ObjectNode) qmp.execute("query-migrate");
    }

    @Override
    public String status() throws IOException {
        return qmp.execute("query-status").path("status").asString();
    }

    @Override
    public ObjectNode fingerprint(boolean pages) throws IOException {
        return (ObjectNode) qmp.timeout(Duration.ofMinutes(5)).execute("x-livemig-fingerprint",
                pages ? QmpClient.args("pages", true) : null);
    }

    @Override
    public void startPostcopy() throws IOException {
        qmp.execute("migrate-start-postcopy");
    }

    @Override
    public void stop() throws IOException {
        qmp.execute("stop");
    }

    @Override
    public void cont() throws IOException {
        qmp.execute("cont");
    }

    @Override
    public void cancel() throws IOException {
        qmp.execute("migrate_cancel");
    }

    @Override
    public void close() throws Exception {
        try {
            if (process.isAlive() && qmp.isConnected()) {
                JsonNode ignored = qmp.execute("quit");
            }
        } catch (IOException | RuntimeException e) {
            // the process may be gone already
        } finally {
            qmp.close();
            if (!process.waitFor(30, TimeUnit.SECONDS)) {
                process.destroyForcibly();
                process.waitFor(10, TimeUnit.SECONDS);
            }
        }
    }
}
