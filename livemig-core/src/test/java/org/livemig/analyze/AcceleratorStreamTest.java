package org.livemig.analyze;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.livemig.machine.Accelerator;
import org.livemig.machine.Machine;
import org.livemig.machine.RunState;
import org.livemig.migration.Migration;
import org.livemig.migration.MigrationStatus;
import org.livemig.migration.Outgoing;
import org.livemig.stream.AcceleratorState;
import org.livemig.stream.SectionHeader;

/**
 * A live migration of a machine with an accelerator, recorded to a file: the analyzer decodes its
 * accelerator sections record by record (every chunk of each pass, the register state) and
 * writes the stream back byte for byte.
 */
class AcceleratorStreamTest {
    @TempDir
    Path dir;

    @Test
    void anAcceleratorsSectionsAreDecodedAndWrittenBackByteForByte() throws Exception {
        Machine m = new Machine(Machine.Config.defaults().withName("src").withRam(8L << 20).withVcpus(1)
                .withWorkload("idle").withBlobSize(4096)
                .withAccelerators(List.of(Accelerator.Spec.parse("acc0,size=2M,dirty-rate=64"))));
        Path file = dir.resolve("acc.mig");
        try {
            m.mainLoop().runAndWait(() -> m.boot(RunState.RUNNING));
            Migration mig = new Migration(m);
            m.mainLoop().call(() -> {
                mig.setParameters(p -> p.maxBandwidth = 16L << 20); // several passes, chunks dirtied between them
                return null;
            }, 10_000);
            Outgoing o = m.mainLoop().call(() -> mig.migrate("file:" + file), 10_000);
            await().atMost(Duration.ofSeconds(60)).until(() -> o.status().isFinal());
            assertThat(o.status()).as(String.valueOf(o.error())).isEqualTo(MigrationStatus.COMPLETED);
        } finally {
            m.close();
        }
        byte[] stream = Files.readAllBytes(file);
        int[] sections = new int[1];
        long[] chunks = new long[1];
        boolean[] config = new boolean[1];
        StreamVisitor v = new StreamVisitor() {
            @Override
            public void deviceSection(SectionHeader h, StreamEvents.DeviceBody body) {
                if (!h.idstr().equals("acc0" + Accelerator.IDSTR_SUFFIX)) {
                    return;
                }
                sections[0]++;
                assertThat(body).isInstanceOf(StreamEvents.Decoded.class);
                for (StreamValue.Field f : ((StreamEvents.Decoded) body).value().fields()) {
                    if (f.name().equals("data")) {
                        chunks[0]++;
                        assertThat(((StreamValue.Leaf) f.value()).raw()).hasSize(Accelerator.CHUNK_SIZE);
                    }
                    config[0] |= f.name().equals("config");
                }
            }
        };
        try (Analysis a = Analyzer.analyze(Fixtures.channel(stream), Analyzer.Options.DEFAULT, v)) {
            assertThat(a.undecoded()).isEmpty();
        }
        assertThat(sections[0]).as("START, PARTs, END").isGreaterThanOrEqualTo(3);
        assertThat(chunks[0]).as("every chunk once at least").isGreaterThanOrEqualTo((2L << 20) / Accelerator.CHUNK_SIZE);
        assertThat(config[0]).isTrue();
        assertThat(RoundTripTest.rewriteRaw(stream)).isEqualTo(stream);
        assertThat(AcceleratorState.markerName(AcceleratorState.CONFIG)).isEqualTo("CONFIG");
    }
}
