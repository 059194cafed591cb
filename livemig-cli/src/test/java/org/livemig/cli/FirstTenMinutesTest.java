package org.livemig.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A new user's first ten minutes, on a fresh copy of this source tree (no build output) with an
 * older {@code java} first on PATH and no JAVA_HOME: the README's quick-start commands work as
 * written, quietly, and its two-machine session works when pasted.
 */
class FirstTenMinutesTest {
    private static final Path OLD_JAVA = Path.of("/usr/lib/jvm/java-17-openjdk-amd64");

    @TempDir
    Path tmp;

    private record Result(int status, String out, String err, long millis) {}

    /** Runs {@code command} in {@code cwd} with an environment as a new user's shell has it. */
    private static Result run(Path cwd, Map<String, String> env, long timeoutSeconds, String... command) throws Exception {
        ProcessBuilder pb = new ProcessBuilder(command).directory(cwd.toFile());
        pb.environment().clear();
        pb.environment().putAll(env);
        Path out = Files.createTempFile("first-out", ".txt");
        Path err = Files.createTempFile("first-err", ".txt");
        pb.redirectOutput(out.toFile()).redirectError(err.toFile()).redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")));
        long t0 = System.nanoTime();
        Process p = pb.start();
        if (!p.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
            p.descendants().forEach(ProcessHandle::destroyForcibly);
            p.destroyForcibly();
            throw new AssertionError(String.join(" ", command) + " did not end within " + timeoutSeconds + " s: "
                    + Files.readString(out) + Files.readString(err));
        }
        Result r = new Result(p.exitValue(), Files.readString(out), Files.readString(err), (System.nanoTime() - t0) / 1_000_000);
        Files.delete(out);
        Files.delete(err);
        return r;
    }

    /** A user's environment: the old Java first on PATH, no JAVA_HOME and none of livemig's or Maven's settings. */
    private static Map<String, String> userEnvironment() {
        Map<String, String> env = new java.util.HashMap<>(System.getenv());
        for (String k : List.of("JAVA_HOME", "MAVEN_OPTS", "LIVEMIG_AOT_CACHE", "LIVEMIG_JAVA_OPTS", "LIVEMIG_NO_AOT", "LIVEMIG_LOG_LEVEL",
                "JAVA_TOOL_OPTIONS", "MAVEN_ARGS")) {
            env.remove(k);
        }
        List<String> path = new ArrayList<>();
        if (Files.isDirectory(OLD_JAVA)) {
            path.add(OLD_JAVA.resolve("bin").toString());
        }
        for (String d : env.getOrDefault("PATH", "/usr/bin:/bin").split(":")) {
            if (!d.contains("temurin-25")) {
                path.add(d);
            }
        }
        env.put("PATH", String.join(":", path));
        return env;
    }

    /** This source tree as a fresh clone has it: no target directories, no build output. */
    private static Path freshCopy(Path into) throws IOException {
        Path root = Path.of("").toAbsolutePath().getParent();
        assertThat(root.resolve("livemig")).as("the source tree's root").isExecutable();
        Path copy = into.resolve("livemig");
        try (Stream<Path> files = Files.walk(root)) {
            for (Path f : (Iterable<Path>) files::iterator) {
                Path rel = root.relativize(f);
                String s = rel.toString();
                if (s.startsWith(".git") || s.contains("target") || s.startsWith(".idea") || s.endsWith(".log")) {
                    continue;
                }
                Path to = copy.resolve(rel);
                if (Files.isDirectory(f)) {
                    Files.createDirectories(to);
                } else {
                    Files.copy(f, to, StandardCopyOption.COPY_ATTRIBUTES);
                }
            }
        }
        return copy;
    }

    @Test
    void theReadmesCommandsWorkAsWrittenOnAFreshCopyWithAnOlderJavaFirst() throws Exception {
        Assumptions.assumeTrue(org.livemig.testing.HostTools.onPath("mvn") != null, "no Maven on PATH");
        Path clone = freshCopy(tmp);
        Map<String, String> env = userEnvironment();
        if (Files.isDirectory(OLD_JAVA)) {
            Result old = run(clone, env, 30, "bash", "-c", "java -version"); // the user's PATH finds it
            assertThat(old.err()).as("java 17 comes first on PATH").contains("\"17.");
        }

        // 1. ./livemig demo: builds quietly, says so in one line, migrates and verifies.
        Result demo = run(clone, env, 600, "./livemig", "demo");
        System.out.printf("first ./livemig demo: %d ms (build, AOT training, 1 GiB demo)%n", demo.millis());
        assertThat(demo.status()).as(demo.out() + demo.err()).isZero();
        assertThat(demo.out()).contains("verified: the destination holds the source's memory and device state");
        List<String> errLines = demo.err().lines().filter(l -> !l.isBlank()).toList();
        assertThat(errLines).as(demo.err()).hasSize(1);
        assertThat(errLines.getFirst()).startsWith("livemig: building livemig (first run, about 30 s");
        assertThat(demo.out() + demo.err()).doesNotContain("sun.misc.Unsafe").doesNotContain("WARNING").doesNotContain("\033[");
        Result again = run(clone, env, 300, "./livemig", "demo", "--ram", "64M");
        System.out.printf("second ./livemig demo --ram 64M: %d ms%n", again.millis());
        assertThat(again.status()).isZero();
        assertThat(again.err()).isEmpty();

        // LIVEMIG_JAVA_OPTS adds to the launcher's JVM options; naming a collector replaces the serial one.
        Map<String, String> flags = new java.util.HashMap<>(env);
        flags.put("LIVEMIG_JAVA_OPTS", "-XX:+PrintCommandLineFlags");
        Result added = run(clone, flags, 60, "./livemig", "--version");
        assertThat(added.status()).isZero();
        assertThat(added.out()).contains("-XX:MaxHeapSize=536870912").contains("-XX:+UseSerialGC").contains("livemig ");
        flags.put("LIVEMIG_JAVA_OPTS", "-XX:+UseParallelGC -Xmx300m -XX:+PrintCommandLineFlags");
        Result replaced = run(clone, flags, 60, "./livemig", "--version");
        assertThat(replaced.status()).as(replaced.err()).isZero();
        assertThat(replaced.out()).contains("-XX:+UseParallelGC").contains("-XX:MaxHeapSize=314572800").doesNotContain("UseSerialGC");

        // 2. The README's two-machine session, pasted (its /tmp paths and port made this test's own).
        String readme = Files.readString(clone.resolve("README.md"));
        int at = readme.indexOf("A session with two machines, by hand");
        int start = readme.indexOf("```sh\n", at) + "```sh\n".length();
        String session = readme.substring(start, readme.indexOf("```", start));
        Path t = Files.createDirectories(tmp.resolve("s"));
        int port;
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            port = s.getLocalPort();
        }
        String script = session.replace("/tmp/", t + "/").replace("4444", String.valueOf(port));
        Result pasted;
        try {
            pasted = run(clone, env, 300, "bash", "-e", "-c", script);
            if (pasted.status() == 0) {
                // quit answers before the process has gone, as QEMU's does; the pid files go with the processes
                org.awaitility.Awaitility.await().atMost(java.time.Duration.ofSeconds(60))
                        .until(() -> !Files.exists(t.resolve("src.pid")) && !Files.exists(t.resolve("dst.pid")));
            }
        } finally {
            for (String pidfile : List.of("src.pid", "dst.pid")) {
                Path p = t.resolve(pidfile);
                if (Files.exists(p)) {
                    ProcessHandle.of(Long.parseLong(Files.readString(p).strip())).ifPresent(ProcessHandle::destroyForcibly);
                }
            }
        }
        assertThat(pasted.status()).as(pasted.out() + pasted.err()).isZero();
        assertThat(pasted.out()).contains("migration completed").contains("\"status\": \"running\"");
        assertThat(pasted.err()).contains("livemig run: ready");
        assertThat(t.resolve("src.pid")).doesNotExist();
        assertThat(t.resolve("dst.pid")).doesNotExist();

        // 3. The test command runs Maven on Java 25; plain Maven on the old Java stops naming Java 25.
        Result mvnw = run(clone, env, 60, "./mvnw", "-v");
        assertThat(mvnw.out()).containsPattern("Java version: 2[5-9]");
        if (Files.isDirectory(OLD_JAVA)) {
            Map<String, String> old = new java.util.HashMap<>(env);
            old.put("JAVA_HOME", OLD_JAVA.toString());
            Result plain = run(clone, old, 120, "bash", "-c", "mvn -B -q validate");
            assertThat(plain.status()).isNotZero();
            assertThat(plain.out() + plain.err()).contains("livemig needs Java 25 to build, and this Maven runs on Java 17")
                    .doesNotContain("invalid flag").doesNotContain("class file version");
        }
        // And the launcher names Java 25 in one line when there is none at all (only the old one).
        if (Files.isDirectory(OLD_JAVA)) {
            Map<String, String> none = new java.util.HashMap<>(env);
            none.put("JAVA_HOME", OLD_JAVA.toString());
            none.put("PATH", OLD_JAVA.resolve("bin") + ":/bin");
            Path fakeJvm = Files.createDirectories(tmp.resolve("nojvm"));
            Result noJava = run(clone, none, 30, "/bin/bash", "-c", "sed -i 's#/usr/lib/jvm#" + fakeJvm + "#g; s#/opt/#" + fakeJvm
                    + "/#g' bin/java25.sh && ./livemig --version");
            assertThat(noJava.status()).isEqualTo(1);
            assertThat(noJava.err().strip()).startsWith("livemig: needs Java 25 or later, and found Java 17 at ").doesNotContain("\n");
        }
    }
}
