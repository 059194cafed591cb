package org.livemig.cli;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.ObjectMapper;

/**
 * A livemig migration written through {@code exec:cat > FILE} (QEMU's way of saving a migration
 * to a file) by a {@code livemig run} process, driven over QMP, is read by {@code livemig analyze}
 * and, where it is installed, by QEMU's own {@code scripts/analyze-migration.py}, which prints the
 * same JSON for it. QEMU's script is looked for in {@code LIVEMIG_ANALYZE_MIGRATION_PY}, then where
 * distributions put QEMU's data; without it (Debian's QEMU packages do not ship it) that half is
 * skipped.
 */
class ExecMigrationAnalyzeTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    private static MachineOptions machine() {
        MachineOptions m = new MachineOptions();
        m.ram = "16M";
        m.vcpus = 2;
        m.workload = "ab:2000";
        m.fill = "random";
        m.blobSize = "64K";
        m.seed = 7;
        return m;
    }

    /** QEMU's analyze-migration.py, or null. */
    static Path analyzeMigrationPy() {
        String env = System.getenv("LIVEMIG_ANALYZE_MIGRATION_PY");
        List<String> places = env != null && !env.isBlank() ? List.of(env) : List.of(
                "/usr/share/qemu/analyze-migration.py", "/usr/share/qemu/scripts/analyze-migration.py",
                "/usr/lib/qemu/analyze-migration.py", "/usr/libexec/qemu/analyze-migration.py",
                "/usr/local/share/qemu/analyze-migration.py", "/usr/local/share/qemu/scripts/analyze-migration.py");
        for (String p : places) {
            if (Files.isRegularFile(Path.of(p))) {
                return Path.of(p);
            }
        }
        return null;
    }

    @Test
    void execCatToAFileIsReadByLivemigAnalyzeAndByQemusScript() throws Exception {
        Path file = dir.resolve("saved.mig");
        try (QmpSide src = QmpSide.start(machine(), false, dir, "src", List.of("--no-warm-up"))) {
            src.migrate("exec:cat > " + file);
            await().atMost(Duration.ofSeconds(120)).until(() -> {
                String s = src.queryMigrate().path("status").asString();
                assertThat(s).isNotIn("failed", "cancelled");
                return s.equals("completed");
            });
            assertThat(src.status()).isEqualTo("postmigrate");
        }
        Cli.Run state = Cli.run("analyze", file.toString(), "--dump", "state");
        assertThat(state.status()).as(state.err()).isZero();
        JsonNode s = JSON.readTree(state.out());
        // Every section: RAM with its blocks, each device livemig registers.
        assertThat(s.propertyNames()).anyMatch(k -> k.startsWith("ram ("))
                .anyMatch(k -> k.startsWith("timer (")).anyMatch(k -> k.startsWith("cpu ("))
                .anyMatch(k -> k.startsWith("serial (")).anyMatch(k -> k.startsWith("blob ("))
                .anyMatch(k -> k.startsWith("globalstate ("));
        JsonNode global = s.properties().stream().filter(e -> e.getKey().startsWith("globalstate (")).findFirst()
                .orElseThrow().getValue();
        assertThat(global.get("size").asString()).isEqualTo("0x00000008"); // "running" and its NUL
        Cli.Run desc = Cli.run("analyze", file.toString(), "--dump", "desc");
        assertThat(desc.status()).as(desc.err()).isZero();
        assertThat(JSON.readTree(desc.out()).get("devices").size()).isGreaterThanOrEqualTo(5);

        Path script = analyzeMigrationPy();
        Assumptions.assumeTrue(script != null, "QEMU's analyze-migration.py is not installed");
        for (String what : List.of("state", "desc")) {
            Process p = new ProcessBuilder("python3", script.toString(), "-f", file.toString(), "-d", what)
                    .redirectError(dir.resolve("py-" + what + ".err").toFile()).start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertThat(p.waitFor(60, TimeUnit.SECONDS)).isTrue();
            assertThat(p.exitValue()).as(Files.readString(dir.resolve("py-" + what + ".err"))).isZero();
            assertThat(Cli.run("analyze", file.toString(), "--dump", what).out()).as(what).isEqualTo(out);
        }
    }
}
