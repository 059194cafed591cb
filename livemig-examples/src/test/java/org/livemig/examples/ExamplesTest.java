package org.livemig.examples;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The embedding examples run as an application would run them: in a JVM of their own, on the
 * module path, where only {@code org.livemig.api} is visible of livemig.
 */
class ExamplesTest {
    @TempDir
    Path dir;

    /** The examples' module, livemig-core's and the modules it requires, from this test's class path. */
    private static String modulePath() {
        List<String> path = new ArrayList<>();
        for (String e : System.getProperty("java.class.path").split(File.pathSeparator)) {
            String name = Path.of(e).getFileName().toString();
            boolean classes = e.endsWith(File.separator + "classes") || e.endsWith(File.separator + "classes" + File.separator);
            if (classes && !e.contains("test-classes")
                    || name.startsWith("livemig-core") || name.startsWith("jackson-") || name.startsWith("zstd-jni")
                    || name.startsWith("bcprov") || name.startsWith("bcutil") || name.startsWith("bcpkix") || name.startsWith("bctls")) {
                path.add(e);
            }
        }
        return String.join(File.pathSeparator, path);
    }

    private record Run(int status, String out) {}

    private Run run(String mainClass, String... args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-ea", "-Xmx256m", "--enable-native-access=org.livemig.core", "--module-path", modulePath(),
                "-m", "org.livemig.examples/" + mainClass));
        cmd.addAll(List.of(args));
        Path log = dir.resolve(mainClass + ".log");
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        if (!p.waitFor(3, TimeUnit.MINUTES)) {
            p.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            throw new AssertionError(mainClass + " did not end in 3 minutes: " + Files.readString(log));
        }
        return new Run(p.exitValue(), Files.readString(log, StandardCharsets.UTF_8));
    }

    @Test
    void twoMachinesMigrateOverASocketOnTheModulePath() throws Exception {
        Run r = run("org.livemig.examples.TwoMachines");
        assertThat(r.status()).as(r.out()).isZero();
        assertThat(r.out()).containsPattern("migrated \\d+ MiB in \\d+ ms, downtime \\d+ ms")
                .contains("same state on both sides: true", "guest's RAM pattern intact: true",
                        "destination: running, source: postmigrate");
    }

    @Test
    void aMachineSavedToAFileIsRestoredOnTheModulePath() throws Exception {
        Path file = dir.resolve("vm.mig");
        Run r = run("org.livemig.examples.SaveAndRestore", file.toString());
        assertThat(r.status()).as(r.out()).isZero();
        assertThat(r.out()).contains("saved to " + file, "restored the same state: true", "restored machine: running");
        assertThat(Files.size(file)).isPositive();
    }

    @Test
    void onlyTheApiIsVisibleOnTheModulePath() throws Exception {
        // An internal class cannot be reached by the application's module: the module exports only org.livemig.api.
        ModuleLayer.boot().findModule("org.livemig.core").ifPresent(m -> assertThat(m.getDescriptor().exports())
                .allMatch(e -> e.source().equals("org.livemig.api")));
        Path mp = Path.of(modulePath().split(File.pathSeparator)[0]);
        assertThat(mp.toString()).isNotEmpty();
        java.lang.module.ModuleFinder finder = java.lang.module.ModuleFinder.of(
                java.util.Arrays.stream(modulePath().split(File.pathSeparator)).map(Path::of).toArray(Path[]::new));
        var core = finder.find("org.livemig.core").orElseThrow().descriptor();
        assertThat(core.exports()).extracting(java.lang.module.ModuleDescriptor.Exports::source).containsExactly("org.livemig.api");
        assertThat(core.isAutomatic()).isFalse();
    }
}
