package org.livemig.monitor;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import org.junit.jupiter.api.RepeatedTest;
import org.junit.jupiter.api.RepetitionInfo;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import tools.jackson.databind.JsonNode;
import tools.jackson.databind.node.ArrayNode;
import tools.jackson.databind.node.ObjectNode;

/** The QMP input codec in memory: framing, QEMU's grammar and error texts, limits. */
class JsonStreamParserTest {

    /** Collects what the parser emits: values as QEMU-layout JSON, errors as "ERR desc". */
    private static final class Collector implements JsonStreamParser.Sink {
        final List<String> out = new ArrayList<>();

        @Override
        public void value(JsonNode value) {
            out.add(QmpJson.write(value));
        }

        @Override
        public void error(String desc) {
            out.add("ERR " + desc);
        }
    }

    private static List<String> parse(String input) {
        Collector c = new Collector();
        JsonStreamParser p = new JsonStreamParser(c);
        byte[] bytes = input.getBytes(StandardCharsets.UTF_8);
        p.feed(bytes, 0, bytes.length);
        return c.out;
    }

    @Test
    void messagesAreCutByBracesNotByLines() {
        assertThat(parse("{\"execute\":\"a\"}{\"execute\":\"b\"}\n"))
                .containsExactly("{\"execute\": \"a\"}", "{\"execute\": \"b\"}");
        assertThat(parse("{\"execute\":\n \"a\",\n \"id\": [1,\n2]}"))
                .containsExactly("{\"execute\": \"a\", \"id\": [1, 2]}");
    }

    @Test
    void bytesMayArriveOneAtATime() {
        Collector c = new Collector();
        JsonStreamParser p = new JsonStreamParser(c);
        byte[] bytes = "{\"execute\": \"query-status\", \"id\": 'x\\u00e9'}\n42\n".getBytes(StandardCharsets.UTF_8);
        for (byte b : bytes) {
            p.feed(ByteBuffer.wrap(new byte[] {b}));
        }
        assertThat(c.out).containsExactly("{\"execute\": \"query-status\", \"id\": \"x\\u00E9\"}", "42");
        assertThat(p.idle()).isTrue();
    }

    @Test
    void singleQuotesAndEscapesAsQemu() {
        assertThat(parse("{'a': 'it\\'s \"q\" \\/ \\b\\f\\n\\r\\t \\ud83d\\ude00'}"))
                .containsExactly("{\"a\": \"it's \\\"q\\\" / \\b\\f\\n\\r\\t \\uD83D\\uDE00\"}");
    }

    @Test
    void numbersKeepInt64Uint64AndDouble() {
        JsonNode arr = QmpJson.parse("[9223372036854775807, 18446744073709551615, -9223372036854775808, 1.5e3, 18446744073709551616]");
        assertThat(arr.get(0).longValue()).isEqualTo(Long.MAX_VALUE);
        assertThat(arr.get(1).bigIntegerValue()).isEqualTo(new BigInteger("18446744073709551615"));
        assertThat(arr.get(2).longValue()).isEqualTo(Long.MIN_VALUE);
        assertThat(arr.get(3).isIntegralNumber()).isFalse();
        assertThat(arr.get(3).doubleValue()).isEqualTo(1500.0);
        assertThat(arr.get(4).isIntegralNumber()).as("beyond uint64 becomes a double, as in QEMU").isFalse();
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', quoteCharacter = '`', value = {
        "{\"execute\": @}|ERR JSON parse error, stray '@'",
        "}|ERR JSON parse error, expecting value",
        "{\"a\": }|ERR JSON parse error, expecting value",
        "{1: 2}|ERR JSON parse error, key is not a string in object",
        "{\"a\" 2}|ERR JSON parse error, missing : in object pair",
        "{\"a\": 1 \"b\": 2}|ERR JSON parse error, expected separator in dict",
        "[1 2]|ERR JSON parse error, expected separator in list",
        "{\"a\": 1, \"a\": 2}|ERR JSON parse error, duplicate key",
        "{\"a\": nul}|ERR JSON parse error, invalid keyword 'nul'",
        "{\"a\": \"\\x\"}|ERR JSON parse error, invalid escape sequence in string",
        "{\"a\": \"\\ud800\"}|ERR JSON parse error, \\ud800 is not a valid Unicode character",
        "{\"a\": \"\\uzzzz\"}|ERR JSON parse error, \\uzzzz is not a valid Unicode character",
        "{\"a\": \"\\ufffe\"}|ERR JSON parse error, \\ufffe is not a valid Unicode character",
        "{\"a\": 01}|ERR JSON parse error, stray '01'",
        "{\"a\": -x}|ERR JSON parse error, stray '-x'",
    })
    void parseErrorsCarryQemuTexts(String input, String expected) {
        assertThat(parse(input + "\n")).first().isEqualTo(expected);
    }

    @Test
    void aRawControlCharacterInAStringIsAStrayToken() {
        assertThat(parse("{\"execute\": \"ab\u0001\"}\n").getFirst())
                .isEqualTo("ERR JSON parse error, stray '\"ab\u0001'");
    }

    @Test
    void invalidUtf8IsRefused() {
        Collector c = new Collector();
        JsonStreamParser p = new JsonStreamParser(c);
        byte[] overlong = {'"', (byte) 0xC1, (byte) 0x81, '"', '\n'};
        p.feed(overlong, 0, overlong.length);
        byte[] modifiedNul = {'"', (byte) 0xC0, (byte) 0x80, '"', '\n'};
        p.feed(modifiedNul, 0, modifiedNul.length);
        assertThat(c.out).containsExactly("ERR JSON parse error, invalid UTF-8 sequence in string", "\"\\u0000\"");
    }

    @Test
    void afterALexicalErrorInputIsSkippedToTheNextStructuralCharacterAsQemu() {
        // "@ junk" is skipped up to '}', which then stands alone: QEMU answers two errors.
        assertThat(parse("{\"a\": @ junk }\n{\"execute\": \"ok\"}\n")).containsExactly(
                "ERR JSON parse error, stray '@'",
                "ERR JSON parse error, expecting value",
                "{\"execute\": \"ok\"}");
    }

    @Test
    void anOversizedMessageIsRefusedAndTheLineSkipped() {
        Collector c = new Collector();
        JsonStreamParser p = new JsonStreamParser(c, 1024, 1000);
        StringBuilder huge = new StringBuilder("{\"execute\": \"");
        huge.append("x".repeat(1 << 20));
        byte[] chunk = huge.toString().getBytes(StandardCharsets.UTF_8);
        // 64 MiB in total, never more than the limit held.
        for (int i = 0; i < 64; i++) {
            p.feed(chunk, 0, chunk.length);
        }
        assertThat(c.out).containsExactly("ERR JSON token size limit exceeded");
        byte[] next = "\"}\n{\"execute\": \"query-status\"}\n".getBytes(StandardCharsets.UTF_8);
        p.feed(next, 0, next.length);
        assertThat(c.out).containsExactly("ERR JSON token size limit exceeded", "{\"execute\": \"query-status\"}");
    }

    @Test
    void nestingAndTokenCountAreBounded() {
        assertThat(parse("[".repeat(JsonStreamParser.MAX_NESTING + 5) + "\n"))
                .containsExactly("ERR JSON nesting depth limit exceeded");
        assertThat(parse("[".repeat(JsonStreamParser.MAX_NESTING) + "]".repeat(JsonStreamParser.MAX_NESTING) + "\n"))
                .hasSize(1).first().asString().startsWith("[[[[");
        Collector c = new Collector();
        JsonStreamParser p = new JsonStreamParser(c, 1 << 20, 100);
        byte[] many = ("[" + "1,".repeat(200) + "1]\n[2]\n").getBytes(StandardCharsets.UTF_8);
        p.feed(many, 0, many.length);
        assertThat(c.out).containsExactly("ERR JSON token count limit exceeded", "[2]");
    }

    @Test
    void parseHelperWantsExactlyOneValue() {
        assertThat(QmpJson.parse("{'a': [true, false, null]}").toString()).isEqualTo("{\"a\":[true,false,null]}");
        assertThatThrownBy(() -> QmpJson.parse("")).hasMessage("Expecting a JSON value");
        assertThatThrownBy(() -> QmpJson.parse("1 2")).hasMessage("Expecting at most one JSON value");
        assertThatThrownBy(() -> QmpJson.parse("tcp:127.0.0.1:4444")).hasMessageStartingWith("JSON parse error");
    }

    /** Members come out in QEMU's QDict order (bucket of the TDB hash), whatever the insertion order. */
    @Test
    void writerUsesQemuLayout() {
        ObjectNode o = QmpJson.object();
        o.putObject("return").put("status", "running").put("running", true);
        o.put("id", 7);
        o.put("s", "é\u0001\"\\");
        assertThat(QmpJson.write(o)).isEqualTo(
                "{\"s\": \"\\u00E9\\u0001\\\"\\\\\", \"return\": {\"status\": \"running\", \"running\": true}, \"id\": 7}");
    }

    /** Built in QAPI member order, written in QEMU's; a received QEMU line is shown back unchanged. */
    @Test
    void qemuOrderFromSchemaOrderAndReceivedOrderKept() {
        ObjectNode status = QmpJson.object(); // StatusInfo: running, singlestep, status
        status.put("running", true).put("singlestep", false).put("status", "running");
        String qemu = "{\"status\": \"running\", \"singlestep\": false, \"running\": true}"; // as QEMU 7.2 sends it
        assertThat(QmpJson.write(status)).isEqualTo(qemu);
        assertThat(QmpJson.writeAsReceived(QmpJson.parse(qemu))).isEqualTo(qemu);
        assertThat(QmpJson.writePretty(QmpJson.parse(qemu))).isEqualTo(
                "{\n    \"status\": \"running\",\n    \"singlestep\": false,\n    \"running\": true\n}");
        assertThat(QmpJson.writePretty(QmpJson.parse("{\"a\": [], \"b\": {}}"))).isEqualTo("{\n    \"a\": [],\n    \"b\": {}\n}");
    }

    /** Property: any value the writer produces parses back to the same tree, however it is split. */
    @RepeatedTest(50)
    void writtenValuesParseBackWhateverTheSplit(RepetitionInfo info) {
        long seed = 0x51A7E000L + info.getCurrentRepetition();
        Random rnd = new Random(seed);
        JsonNode value = randomValue(rnd, 0);
        byte[] wire = (QmpJson.write(value) + "\n").getBytes(StandardCharsets.US_ASCII);
        List<JsonNode> got = new ArrayList<>();
        JsonStreamParser p = new JsonStreamParser(new JsonStreamParser.Sink() {
            @Override
            public void value(JsonNode v) {
                got.add(v);
            }

            @Override
            public void error(String desc) {
                throw new AssertionError("seed " + seed + ": " + desc);
            }
        });
        int pos = 0;
        while (pos < wire.length) {
            int n = Math.min(wire.length - pos, 1 + rnd.nextInt(7));
            p.feed(wire, pos, n);
            pos += n;
        }
        assertThat(got).as("seed %d", seed).containsExactly(value);
        assertThat(p.idle()).as("seed %d", seed).isTrue();
    }

    private static JsonNode randomValue(Random rnd, int depth) {
        int kind = depth > 3 ? rnd.nextInt(5) : rnd.nextInt(7);
        return switch (kind) {
            case 0 -> QmpJson.NODES.numberNode(rnd.nextLong());
            case 1 -> QmpJson.NODES.booleanNode(rnd.nextBoolean());
            case 2 -> QmpJson.NODES.nullNode();
            case 3 -> QmpJson.NODES.stringNode(randomString(rnd));
            case 4 -> QmpJson.NODES.numberNode(rnd.nextInt(1000) / 8.0 + 0.5);
            case 5 -> {
                ArrayNode a = QmpJson.NODES.arrayNode();
                for (int i = rnd.nextInt(4); i > 0; i--) {
                    a.add(randomValue(rnd, depth + 1));
                }
                yield a;
            }
            default -> {
                ObjectNode o = QmpJson.object();
                for (int i = rnd.nextInt(4); i > 0; i--) {
                    o.set(randomString(rnd), randomValue(rnd, depth + 1));
                }
                yield o;
            }
        };
    }

    private static String randomString(Random rnd) {
        StringBuilder sb = new StringBuilder();
        for (int i = rnd.nextInt(8); i > 0; i--) {
            int cp;
            do {
                cp = switch (rnd.nextInt(4)) {
                    case 0 -> rnd.nextInt(0x20);
                    case 1 -> 0x20 + rnd.nextInt(0x5F);
                    case 2 -> 0x80 + rnd.nextInt(0xD800 - 0x80);
                    default -> 0x10000 + rnd.nextInt(0x10FFFF - 0x10000);
                };
            } while (!JsonStreamParser.validCodepoint(cp) || cp == 0);
            sb.appendCodePoint(cp);
        }
        return sb.toString();
    }
}
