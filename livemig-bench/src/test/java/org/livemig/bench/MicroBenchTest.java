package org.livemig.bench;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.Collection;
import org.junit.jupiter.api.Test;

class MicroBenchTest {
    /**
     * The forked JVMs get their own options, not the host's: a host started by the launcher runs
     * with a serial collector and an AOT cache, and a fork given both collectors does not start
     * ("Multiple garbage collectors selected").
     */
    @Test
    void forksRunWithTheirOwnOptionsNotTheHostJvms() {
        var o = MicroBench.jmhOptions(new MicroBench.Options(null, 1, true, false));
        assertThat(o.getJvmArgs().hasValue()).as("jvmArgs replaces the host's input arguments").isTrue();
        Collection<String> args = o.getJvmArgs().get();
        assertThat(args).contains("-XX:+UseParallelGC", "--enable-native-access=ALL-UNNAMED");
        assertThat(args.stream().filter(a -> a.startsWith("-XX:+Use") && a.endsWith("GC"))).hasSize(1);
        assertThat(o.getJvmArgsAppend().hasValue()).isFalse();
        assertThat(o.getJvmArgsPrepend().hasValue()).isFalse();
    }
}
