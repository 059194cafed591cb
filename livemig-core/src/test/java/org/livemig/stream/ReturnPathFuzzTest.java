package org.livemig.stream;

import static org.assertj.core.api.Assertions.assertThat;

import com.code_intelligence.jazzer.junit.FuzzTest;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Jazzer fuzz target over the return-path messages as the source reads them
 * ({@link ReturnPathCodec#read}, on {@code mig/src/rp_thr}). Any input is a sequence of
 * messages, each written back byte for byte by {@link ReturnPathCodec#write}, until it ends or
 * is refused with a {@link StreamFormatException} whose offset lies inside the input; any other
 * throwable is a finding. Without {@code JAZZER_FUZZ=1} the seeds in
 * {@code ReturnPathFuzzTestInputs/fuzzReturnPath} (every message kind) run as a regression test.
 */
class ReturnPathFuzzTest {
    /** A small bitmap bound, so that the worst input stays cheap. */
    private static final long MAX_BITMAP_BYTES = 1 << 16;

    @FuzzTest(maxDuration = "2m")
    void fuzzReturnPath(byte[] data) throws IOException {
        read(data);
    }

    /** Reads every message of {@code data}; returns them. */
    static List<ReturnPathMessage> read(byte[] data) throws IOException {
        List<ReturnPathMessage> out = new ArrayList<>();
        MigrationFile f = MigrationFile.ofBytes(data);
        try {
            while (!f.atEof()) {
                long at = f.position();
                ReturnPathMessage m = ReturnPathCodec.read(f, MAX_BITMAP_BYTES);
                long end = f.position();
                MigrationFile w = MigrationFile.toMemory();
                ReturnPathCodec.write(w, m);
                byte[] again = w.toByteArray();
                byte[] original = java.util.Arrays.copyOfRange(data, (int) at, (int) end);
                if (!java.util.Arrays.equals(again, original)) {
                    throw new AssertionError("message at " + at + " (" + m + ") is written back differently");
                }
                out.add(m);
            }
        } catch (StreamFormatException e) {
            if (e.offset() < 0 || e.offset() > data.length || !e.getMessage().contains("at byte offset")) {
                throw new AssertionError("format error without a valid offset: " + e.getMessage(), e);
            }
        }
        return out;
    }

    @Test
    void seedsHoldEveryMessageKind() throws Exception {
        Path seed = Path.of("src/test/resources/org/livemig/stream/ReturnPathFuzzTestInputs/fuzzReturnPath/every-kind");
        List<ReturnPathMessage> m = read(Files.readAllBytes(seed));
        assertThat(m).extracting(x -> x.getClass().getSimpleName()).containsExactly("Pong", "ReqPagesId", "ReqPages",
                "RecvBitmap", "ResumeAck", "SwitchoverAck", "Shut");
    }
}
