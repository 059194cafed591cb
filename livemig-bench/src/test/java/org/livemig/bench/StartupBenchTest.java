package org.livemig.bench;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class StartupBenchTest {
    /** The head of a JDK 25 {@code jcmd PID VM.native_memory summary}. */
    private static final String NMT = """
            12743:

            Native Memory Tracking:

            (Omitting categories weighting less than 1KB)

            Total: reserved=1694326KB, committed=68812KB
                   malloc: 20451KB #41234, peak=39012KB #52000
                   mmap:   reserved=1673875KB, committed=48361KB

            -                 Java Heap (reserved=262144KB, committed=16384KB)
                                        (mmap: reserved=262144KB, committed=16384KB, at peak)

            -                     Class (reserved=1048861KB, committed=2333KB)
                                        (classes #2807)

            -                    Thread (reserved=25702KB, committed=1530KB)
                                        (threads #25)
            """;

    @Test
    void parsesTheCommittedBytesOfEachNativeMemoryCategoryTotalFirst() {
        Map<String, Long> m = StartupBench.parseNativeMemory(NMT);

        assertThat(m).containsExactly(Map.entry("Total", 68812L << 10), Map.entry("Java Heap", 16384L << 10),
                Map.entry("Class", 2333L << 10), Map.entry("Thread", 1530L << 10));
        assertThat(StartupBench.parseNativeMemory("12743:\nNative memory tracking is not enabled\n")).isEmpty();
    }

    @Test
    void addsAJvmOptionBeforeTheClassPath() {
        List<String> cmd = List.of("java", "-Xmx256m", "-cp", "a.jar", "Main");

        assertThat(StartupBench.withJvmOption(cmd, "-XX:NativeMemoryTracking=summary"))
                .containsExactly("java", "-Xmx256m", "-XX:NativeMemoryTracking=summary", "-cp", "a.jar", "Main");
    }

    @Test
    void refusesAnUnknownCaseAndAZeroRepeat() {
        List<String> java = List.of("java");
        assertThatThrownBy(() -> new StartupBench.Options(64L << 20, 1, List.of("precopy", "colo"), Duration.ZERO,
                Duration.ofSeconds(1), Path.of("/tmp"), java, null))
                .hasMessage("--cases takes precopy, multifd, postcopy, not 'colo'");
        assertThatThrownBy(() -> new StartupBench.Options(64L << 20, 0, List.of(), Duration.ZERO,
                Duration.ofSeconds(1), Path.of("/tmp"), java, null))
                .hasMessage("--repeat must be at least 1, not 0");
    }

    @Test
    void qemuCommandPreallocatesRamAndWaitsForAnIncomingMigrationWhenAsked() {
        List<String> dst = QemuMachine.command("qemu", 1L << 30, null, true, Path.of("/tmp/q.sock"));
        List<String> src = QemuMachine.command("qemu", 1L << 30, Path.of("/tmp/ram"), false, Path.of("/tmp/q.sock"));

        assertThat(dst).contains("memory-backend-ram,id=mem0,size=1073741824,prealloc=on", "-S", "-m", "1024M")
                .containsSequence("-incoming", "defer").containsSequence("-qmp", "unix:/tmp/q.sock,server=on,wait=off");
        assertThat(src).contains("memory-backend-file,id=mem0,size=1073741824,mem-path=/tmp/ram,share=off,prealloc=on")
                .doesNotContain("-incoming");
    }
}
