package org.livemig.analyze;

import static org.assertj.core.api.Assertions.assertThat;

import com.code_intelligence.jazzer.junit.FuzzTest;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.livemig.stream.StreamFormatException;
import tools.jackson.databind.JsonNode;

/**
 * Jazzer fuzz target over the vmdesc JSON trailer as the analyzer takes it from a stream: the
 * input is a JSON text and, after its first NUL byte, a device section body. The JSON is parsed
 * ({@link VmDescription#parse}), every device's layout built, and the body decoded with each. Any
 * input must be taken or refused with a {@link StreamFormatException} with an offset; any other
 * throwable (an endless loop, an OutOfMemoryError) is a finding. Without {@code JAZZER_FUZZ=1}
 * the seeds in {@code VmDescFuzzTestInputs/fuzzVmDesc} (livemig's own vmdesc, and QEMU's cut to
 * a few devices) run as a regression test.
 */
class VmDescFuzzTest {
    @FuzzTest(maxDuration = "2m")
    void fuzzVmDesc(byte[] data) throws IOException {
        decode(data);
    }

    /** How many devices decoded their body whole (for the seed checks). */
    static int decode(byte[] data) throws IOException {
        int nul = -1;
        for (int i = 0; i < data.length; i++) {
            if (data[i] == 0) {
                nul = i;
                break;
            }
        }
        byte[] json = nul < 0 ? data : java.util.Arrays.copyOf(data, nul);
        byte[] body = nul < 0 ? new byte[0] : java.util.Arrays.copyOfRange(data, nul + 1, data.length);
        int decoded = 0;
        try {
            VmDescription d = VmDescription.parse(json, 0, StreamReaderFuzzTest.LIMITS);
            d.pageSize();
            JsonNode devs = d.tree().get("devices");
            if (devs == null || !devs.isArray()) {
                return 0;
            }
            for (JsonNode dev : devs) {
                String name = dev.path("name").asString("");
                int instance = dev.path("instance_id").asInt(0);
                VmsdLayout layout;
                try {
                    layout = d.layout(name, instance);
                } catch (StreamFormatException e) {
                    check(e, data.length);
                    continue;
                }
                if (layout == null) {
                    continue;
                }
                try {
                    new DeviceDecoder(StreamReaderFuzzTest.LIMITS).decode(layout, Src.of(body, 0, name),
                            dev.path("version").asInt(1));
                    decoded++;
                } catch (StreamFormatException e) {
                    check(e, data.length);
                }
            }
        } catch (StreamFormatException e) {
            check(e, data.length);
        }
        return decoded;
    }

    private static void check(StreamFormatException e, int length) {
        if (e.offset() < 0 || e.offset() > length || !e.getMessage().contains("at byte offset")) {
            throw new AssertionError("format error without a valid offset: " + e.getMessage(), e);
        }
    }

    @Test
    void seedsDecode() throws Exception {
        Path dir = Path.of("src/test/resources/org/livemig/analyze/VmDescFuzzTestInputs/fuzzVmDesc");
        assertThat(decode(Files.readAllBytes(dir.resolve("livemig-blob")))).as("the blob device").isEqualTo(1);
        assertThat(decode(Files.readAllBytes(dir.resolve("qemu-pc-few-devices")))).isPositive();
    }
}
