package org.livemig.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code livemig bench soak} for a handful of cycles: one of each kind (precopy, multifd,
 * postcopy, postcopy with pause and recovery, a cancel) and a few more, every one verified,
 * each process's threads, files, RSS and heap recorded per cycle, and the growth table printed.
 */
class SoakBenchTest {
    @TempDir
    Path dir;

    @Test
    void aShortSoakVerifiesEveryCycleAndRecordsEachProcess() throws Exception {
        Path csv = dir.resolve("soak.csv");
        Cli.Run r = Cli.run("bench", "soak", "--count", "7", "--ram", "32M", "--seed", "3", "--csv", csv.toString());
        assertThat(r.status()).as(r.all()).isZero();
        assertThat(r.out()).contains("soak passed: 7 cycles verified");
        for (String kind : List.of("precopy", "multifd", "postcopy", "recovery", "cancel")) {
            assertThat(r.out()).as(kind).containsPattern("cycle +\\d+ " + kind + " ");
        }
        assertThat(r.out()).containsPattern("soak-a +threads").containsPattern("soak-b +heap");
        List<String> rows = Files.readAllLines(csv);
        assertThat(rows.getFirst()).isEqualTo("cycle,process,threads,fds,rss_bytes,heap_after_gc_bytes");
        assertThat(rows).hasSize(1 + 2 * 7);
        for (String row : rows.subList(1, rows.size())) {
            String[] c = row.split(",");
            assertThat(Long.parseLong(c[2])).as("threads").isPositive();
            assertThat(Long.parseLong(c[3])).as("fds").isPositive();
            assertThat(Long.parseLong(c[4])).as("rss").isGreaterThan(32L << 20);
            assertThat(Long.parseLong(c[5])).as("heap").isPositive();
        }
    }
}
