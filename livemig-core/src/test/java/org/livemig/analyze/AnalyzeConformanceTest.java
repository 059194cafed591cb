package org.livemig.analyze;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.FieldSource;

import tools.jackson.databind.JsonNode;

/**
 * {@code --dump state} and {@code --dump desc} against what QEMU's analyze-migration.py printed
 * for each fixture. Trees are compared with Jackson's {@link JsonNode#equals} (object member order
 * is not significant, array order is). No normalisation is needed: numbers in the desc are
 * integers on both sides and every state value is a string, a boolean or a container. The text
 * is also compared byte for byte, as Python's json.dumps(indent=4) plus print's newline.
 */
class AnalyzeConformanceTest {

    @ParameterizedTest
    @FieldSource("org.livemig.analyze.Fixtures#WITH_STATE")
    void stateEqualsRecordedTree(String fixture) throws Exception {
        JsonNode expected = Json.MAPPER.readTree(Fixtures.bytes(fixture + ".state.json"));
        try (Analysis a = Analyzer.analyzeFile(Fixtures.path(fixture), Analyzer.Options.DEFAULT)) {
            assertThat(a.undecoded()).isEmpty();
            assertThat(a.state()).isEqualTo(expected);
            assertThat(PythonJson.write(a.state()) + "\n")
                    .isEqualTo(new String(Fixtures.bytes(fixture + ".state.json"), StandardCharsets.UTF_8));
        }
    }

    @ParameterizedTest
    @FieldSource("org.livemig.analyze.Fixtures#ALL")
    void descEqualsRecordedTree(String fixture) throws Exception {
        JsonNode expected = Json.MAPPER.readTree(Fixtures.bytes(fixture + ".desc.json"));
        try (Analysis a = Analyzer.analyzeFile(Fixtures.path(fixture), Analyzer.Options.DEFAULT)) {
            assertThat(a.desc()).isEqualTo(expected);
            assertThat(PythonJson.write(a.desc()) + "\n")
                    .isEqualTo(new String(Fixtures.bytes(fixture + ".desc.json"), StandardCharsets.UTF_8));
        }
    }

    @ParameterizedTest
    @FieldSource("org.livemig.analyze.Fixtures#ALL")
    void streamingOverAChannelGivesTheSameState(String fixture) throws Exception {
        try (Analysis file = Analyzer.analyzeFile(Fixtures.path(fixture), Analyzer.Options.DEFAULT);
             Analysis chan = Analyzer.analyze(java.nio.channels.Channels.newChannel(
                     new java.io.ByteArrayInputStream(Fixtures.bytes(fixture))), Analyzer.Options.DEFAULT)) {
            assertThat(chan.undecoded()).isEmpty();
            assertThat(chan.state()).isEqualTo(file.state());
            assertThat(PythonJson.write(chan.state())).isEqualTo(PythonJson.write(file.state()));
        }
    }
}
