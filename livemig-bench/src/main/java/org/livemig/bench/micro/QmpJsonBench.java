package org.livemig.bench.micro;

import java.util.concurrent.TimeUnit;
import org.livemig.monitor.QmpJson;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.ObjectMapper;

/**
 * QMP's JSON: livemig's parser (QEMU's grammar: single quotes, uint64, brace-counted framing)
 * and its writer (QEMU's member order), beside Jackson parsing and writing the same text.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
public class QmpJsonBench {
    static final String COMMAND = "{\"execute\": \"migrate-set-parameters\", \"arguments\": {\"max-bandwidth\": 134217728,"
            + " \"downtime-limit\": 300, \"multifd-channels\": 4, \"tls-creds\": \"tls0\", \"x-checkpoint-delay\": 20000}, \"id\": 17}";
    static final String REPLY = "{\"return\": {\"expected-downtime\": 300, \"status\": \"active\", \"setup-time\": 12,"
            + " \"total-time\": 5120, \"ram\": {\"total\": 4294967296, \"postcopy-requests\": 0, \"dirty-sync-count\": 3,"
            + " \"multifd-bytes\": 0, \"pages-per-second\": 81234, \"downtime-bytes\": 0, \"page-size\": 4096,"
            + " \"remaining\": 1073741824, \"postcopy-bytes\": 0, \"mbps\": 2661.2, \"transferred\": 3221225472,"
            + " \"dirty-sync-missed-zero-copy\": 0, \"precopy-bytes\": 3221225472, \"duplicate\": 12, \"dirty-pages-rate\": 20000,"
            + " \"skipped\": 0, \"normal-bytes\": 3221225472, \"normal\": 786432}}, \"id\": 18}";

    @Param({"command", "query-migrate-reply"})
    public String message;

    private static final ObjectMapper JACKSON = new ObjectMapper();
    private String text;
    private JsonNode tree;

    @Setup
    public void setup() {
        text = message.equals("command") ? COMMAND : REPLY;
        tree = QmpJson.parse(text);
    }

    @Benchmark
    public JsonNode parse() {
        return QmpJson.parse(text);
    }

    @Benchmark
    public String write() {
        return QmpJson.write(tree);
    }

    /** Jackson parsing the same text. */
    @Benchmark
    public JsonNode baseline() {
        return JACKSON.readTree(text);
    }

    /** Jackson writing the same tree. */
    @Benchmark
    public String baselineWrite() {
        return JACKSON.writeValueAsString(tree);
    }
}
