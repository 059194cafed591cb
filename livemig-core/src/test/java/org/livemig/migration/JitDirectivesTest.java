package org.livemig.migration;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The process installs the page path's compiler directive in its own JVM (HotSpot on Linux here). */
class JitDirectivesTest {
    @Test
    void installsTheDirectiveInThisJvmThroughItsAttachListener() throws Exception {
        assertThat(JitDirectives.install()).isEqualTo(JitDirectives.Outcome.ATTACH_LISTENER);
        // Once per process: a second call does not add a second directive.
        assertThat(JitDirectives.install()).isEqualTo(JitDirectives.Outcome.ATTACH_LISTENER);
        String printed = JitDirectives.print();
        assertThat(printed).contains("matching: org/livemig/*.*");
        for (String m : JitDirectives.DONT_INLINE) {
            assertThat(printed).contains("-" + m);
        }
        assertThat(printed.split("matching: org/livemig/\\*\\.\\*", -1)).hasSize(2);
    }

    @Test
    void theDirectiveNamesMethodsThatExist() throws Exception {
        // A renamed method would leave the directive matching nothing, silently.
        for (String m : JitDirectives.DONT_INLINE) {
            int dot = m.lastIndexOf('.');
            Class<?> c = Class.forName(m.substring(0, dot).replace('/', '.'));
            String name = m.substring(dot + 1);
            assertThat(java.util.Arrays.stream(c.getDeclaredMethods()).map(java.lang.reflect.Method::getName))
                    .as(m).contains(name);
        }
    }

    /** An embedder's choice of way, in a child JVM (the directive goes in once per process). */
    @ParameterizedTest
    @CsvSource({"mbean, MBEAN, true", "off, UNAVAILABLE, false", "auto, ATTACH_LISTENER, true"})
    void theSystemPropertyChoosesTheWayOrNone(String mode, String outcome, boolean installed) throws Exception {
        Process p = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-cp", System.getProperty("java.class.path"), "-Xshare:auto", "-XX:TieredStopAtLevel=1",
                "--enable-native-access=ALL-UNNAMED", "-D" + JitDirectives.MODE_PROPERTY + "=" + mode,
                JitDirectivesProbe.class.getName()).redirectErrorStream(true).start();
        assertThat(p.waitFor(60, TimeUnit.SECONDS)).as("child JVM ended").isTrue();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(p.exitValue()).as(out).isZero();
        assertThat(out).contains("outcome " + outcome);
        if (installed) {
            assertThat(out).contains("matching: org/livemig/*.*").contains("-" + JitDirectives.DONT_INLINE.getFirst());
        }
    }
}
