package org.livemig.migration;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

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
}
