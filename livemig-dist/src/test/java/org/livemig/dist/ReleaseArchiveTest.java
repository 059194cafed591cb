package org.livemig.dist;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The release archive unpacked into an empty directory runs with nothing of the build around it:
 * its own runtime (no JAVA_HOME, no JDK on PATH), its own jar and AOT cache.
 */
class ReleaseArchiveTest {
    @TempDir
    static Path dir;

    private static Path home;

    @BeforeAll
    static void unpack() throws Exception {
        Path archive = Path.of(System.getProperty("livemig.release"));
        assertThat(archive).exists();
        Path empty = Files.createDirectories(dir.resolve("empty"));
        Process tar = new ProcessBuilder("tar", "-xzf", archive.toString(), "-C", empty.toString()).inheritIO().start();
        assertThat(tar.waitFor(2, TimeUnit.MINUTES)).isTrue();
        assertThat(tar.exitValue()).isZero();
        try (var s = Files.list(empty)) {
            home = s.findFirst().orElseThrow();
        }
    }

    private record Run(int status, String out) {}

    /** {@code bin/livemig ARGS} with a PATH of the base system only and no JAVA_HOME. */
    private static Run livemig(String... args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of(home.resolve("bin/livemig").toString()));
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true);
        Map<String, String> env = pb.environment();
        env.remove("JAVA_HOME");
        env.remove("LIVEMIG_JAVA_OPTS");
        env.remove("LIVEMIG_AOT_CACHE");
        env.put("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        Path log = Files.createTempFile(dir, "run", ".log");
        Process p = pb.redirectOutput(log.toFile()).start();
        if (!p.waitFor(4, TimeUnit.MINUTES)) {
            p.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            throw new AssertionError("livemig " + String.join(" ", args) + " did not end: " + Files.readString(log));
        }
        return new Run(p.exitValue(), Files.readString(log, StandardCharsets.UTF_8));
    }

    @Test
    void itHoldsItsOwnRuntimeJarCacheLauncherCompletionAndManPages() throws Exception {
        assertThat(home.getFileName().toString()).matches("livemig-\\d+\\.\\d+\\.\\d+(-SNAPSHOT)?");
        for (String f : List.of("bin/livemig", "lib/livemig.jar", "lib/livemig.aot", "lib/run.jvmopts", "runtime/bin/java",
                "share/completion/livemig.bash", "share/man/man1/livemig-run.1", "LICENSE", "README.md")) {
            assertThat(home.resolve(f)).as(f).exists();
        }
        assertThat(Files.isExecutable(home.resolve("bin/livemig"))).isTrue();
        // A runtime made for livemig, not a JDK: no compiler in it.
        assertThat(home.resolve("runtime/bin/javac")).doesNotExist();
        Process p = new ProcessBuilder(home.resolve("runtime/bin/java").toString(), "--list-modules").start();
        String modules = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(p.waitFor()).isZero();
        assertThat(modules).contains("java.base@25", "jdk.jfr@").doesNotContain("jdk.compiler");
    }

    @Test
    void checkRunsFromTheUnpackedDirectoryWithItsAotCache() throws Exception {
        Run r = livemig("check");
        assertThat(r.out()).containsPattern("(?m)^\\s*ok\\s+java\\b.*25").containsPattern("(?m)^\\s*ok\\s+aot-cache\\b");
        assertThat(r.status()).as(r.out()).isIn(0, 1); // 1 only when an optional item is missing here
        assertThat(livemig("--version").out()).contains("livemig");
    }

    @Test
    void aSmallDemoMigratesAndVerifiesFromTheUnpackedDirectory() throws Exception {
        Run r = livemig("demo", "--ram", "32M", "--run-before-ms", "200", "--json");
        assertThat(r.status()).as(r.out()).isZero();
        assertThat(r.out()).contains("\"verified\":true");
    }
}
