package org.livemig.bench;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/**
 * A machine process's JVM options have one source (run.jvmopts), and no launcher or child command
 * carries its own copy of them or of the page path's JIT settings (the process installs those).
 */
class RunOptionsTest {
    private static final Path ROOT = Path.of("").toAbsolutePath().getParent();

    @Test
    void childMachinesReadTheOptionsFile() {
        assertThat(ChildMachine.RUN_JAVA_OPTS).isEqualTo(
                "-XX:+UseSerialGC -Xms16m -Xmn8m -Djdk.nio.maxCachedBufferSize=262144 -XX:TrimNativeHeapInterval=5000"
                        + " -XX:+UseCountedLoopSafepoints -XX:LoopStripMiningIter=1000");
        assertThat(String.join(" ", ChildMachine.javaCommand(false))).contains(ChildMachine.RUN_JAVA_OPTS)
                .doesNotContain("CompileCommand");
    }

    @Test
    void bothLaunchersReadTheOptionsFileAndCopyNone() throws Exception {
        for (Path launcher : new Path[] {ROOT.resolve("livemig"), ROOT.resolve("livemig-dist/src/build/livemig")}) {
            String text = Files.readString(launcher);
            assertThat(text).as(launcher.toString()).contains("run.jvmopts").contains("MALLOC_ARENA_MAX:-2")
                    .doesNotContain("CompileCommand").doesNotContain("-Xmn").doesNotContain("TrimNativeHeapInterval")
                    .doesNotContain("maxCachedBufferSize").doesNotContain("LoopStripMiningIter");
        }
        assertThat(ROOT.resolve("livemig-core/src/main/resources/" + ChildMachine.RUN_OPTIONS_RESOURCE)).isRegularFile();
        assertThat(Files.readString(ROOT.resolve("livemig-dist/src/build/make-release.sh"))).contains("lib/run.jvmopts");
    }
}
