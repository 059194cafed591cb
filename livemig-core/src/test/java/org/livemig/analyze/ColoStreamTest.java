package org.livemig.analyze;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.livemig.stream.ColoMessage;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.RamPageRecord;
import org.livemig.stream.StreamFormatException;

/**
 * A real QEMU 7.2 COLO primary's stream (recorded through a TCP tee: the initial migration with
 * ENABLE_COLO, its vmdesc, then one whole checkpoint before QEMU 7.2's primary deadlocked): its
 * checkpoint is decoded message by message, RAM and device sections included, and written back
 * byte for byte.
 */
class ColoStreamTest {
    private static final String FIXTURE = "pc-32M-colo-checkpoint.mig";

    @Test
    void aQemuCheckpointIsDecodedMessageByMessage() throws Exception {
        byte[] stream = Fixtures.bytes(FIXTURE);
        List<String> messages = new java.util.ArrayList<>();
        StreamVisitor v = new StreamVisitor() {
            @Override
            public void coloMessage(ColoMessage m, long value, long offset) {
                messages.add(m.qemuName() + (value >= 0 ? "=" + value : "") + "@" + offset);
            }
        };
        try (Analysis a = Analyzer.analyze(Fixtures.channel(stream), Analyzer.Options.DEFAULT.withoutRam(), v)) {
            assertThat(a.commands()).extracting(StreamEvents.Command::name).contains("ENABLE_COLO");
            // Offsets read off the recording: the vmdesc trailer ends at 912966.
            assertThat(messages).containsExactly("checkpoint-request@912966", "vmstate-send@912970",
                    "vmstate-size=13437@1192072");
            List<Analysis.ColoCheckpoint> colo = a.colo();
            assertThat(colo).hasSize(1);
            Analysis.ColoCheckpoint c = colo.get(0);
            assertThat(c.complete()).isTrue();
            assertThat(c.deviceBytes()).isEqualTo(13437);
            assertThat(c.deviceSections()).isGreaterThan(20);
            assertThat(c.ramRecords().get(RamPageRecord.Kind.PAGE)).as("pages the guest dirtied").isPositive();
            assertThat(c.ramRecords().get(RamPageRecord.Kind.EOS)).isEqualTo(1);
            assertThat(a.stats().trailingBytes).isZero();
            assertThat(a.undecoded()).isEmpty();
            assertThat(a.coloJson().get("checkpoints").get(0).get("device bytes").asLong()).isEqualTo(13437);
        }
    }

    @Test
    void aColoStreamIsWrittenBackByteForByte() throws Exception {
        byte[] stream = Fixtures.bytes(FIXTURE);
        assertThat(RoundTripTest.rewriteRaw(stream)).isEqualTo(stream);
    }

    @Test
    void aCheckpointCutShortIsAnErrorNamingWhereAndAnUnknownMessageToo() throws Exception {
        byte[] stream = Fixtures.bytes(FIXTURE);
        byte[] cut = Arrays.copyOf(stream, 1_000_000);
        assertThatThrownBy(() -> Analyzer.analyze(Fixtures.channel(cut), Analyzer.Options.DEFAULT.withoutRam()).close())
                .isInstanceOf(StreamFormatException.class).hasMessageContaining("truncated");
        byte[] bad = stream.clone();
        bad[912969] = 9; // the checkpoint-request's id
        assertThatThrownBy(() -> Analyzer.analyze(Fixtures.channel(bad), Analyzer.Options.DEFAULT.withoutRam()).close())
                .isInstanceOf(StreamFormatException.class).hasMessageContaining("invalid COLO message 9")
                .hasMessageContaining("912966");
        byte[] reply = stream.clone();
        reply[912969] = 2; // checkpoint-reply comes from the secondary, never on this stream
        assertThatThrownBy(() -> Analyzer.analyze(Fixtures.channel(reply), Analyzer.Options.DEFAULT.withoutRam()).close())
                .hasMessageContaining("checkpoint-reply on the primary's stream");
    }

    @Test
    void theSecondarysRepliesAreColoMessages() throws Exception {
        MigrationFile rp = MigrationFile.ofBytes(Fixtures.bytes("pc-32M-colo-checkpoint.rp"));
        List<ColoMessage> got = new java.util.ArrayList<>();
        while (!rp.atEof()) {
            got.add(ColoMessage.read(rp));
        }
        assertThat(got).containsExactly(ColoMessage.CHECKPOINT_READY, ColoMessage.CHECKPOINT_REPLY,
                ColoMessage.VMSTATE_RECEIVED, ColoMessage.VMSTATE_LOADED);
    }
}
