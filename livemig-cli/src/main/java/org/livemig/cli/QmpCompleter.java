package org.livemig.cli;

import java.io.IOException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.jline.reader.Candidate;
import org.jline.reader.Completer;
import org.jline.reader.LineReader;
import org.jline.reader.ParsedLine;
import org.livemig.monitor.QmpClient;
import org.livemig.monitor.QmpError;
import tools.jackson.databind.JsonNode;

/**
 * Tab completion for the qmp shell: the first word from the monitor's {@code query-commands},
 * later words as {@code name=} from the command's argument members in {@code query-qmp-schema},
 * and after {@code name=} an enum's values or true/false. A monitor without the schema (or
 * refusing it) still completes command names.
 *
 * <p>Immutable after {@link #load}; JLine calls it on the shell's thread.
 */
final class QmpCompleter implements Completer {
    /** Arguments per command: name to the values they take ({@code List.of()} when free). */
    private final Map<String, Map<String, List<String>>> commands;

    QmpCompleter(Map<String, Map<String, List<String>>> commands) {
        this.commands = commands;
    }

    /** Asks {@code qmp} (negotiated) for its commands and schema. */
    static QmpCompleter load(QmpClient qmp) throws IOException {
        Map<String, Map<String, List<String>>> commands = new TreeMap<>();
        for (JsonNode c : qmp.execute("query-commands")) {
            commands.put(c.path("name").asString(), Map.of());
        }
        JsonNode schema;
        try {
            schema = qmp.execute("query-qmp-schema");
        } catch (QmpError e) {
            return new QmpCompleter(commands);
        }
        Map<String, JsonNode> types = new HashMap<>();
        for (JsonNode e : schema) {
            if (!e.path("meta-type").asString().equals("command")) {
                types.put(e.path("name").asString(), e);
            }
        }
        for (JsonNode e : schema) {
            String name = e.path("name").asString();
            if (!e.path("meta-type").asString().equals("command") || !commands.containsKey(name)) {
                continue;
            }
            Map<String, List<String>> args = new TreeMap<>();
            for (JsonNode m : types.getOrDefault(e.path("arg-type").asString(), e).path("members")) {
                args.put(m.path("name").asString(), values(types.get(m.path("type").asString())));
            }
            commands.put(name, args);
        }
        return new QmpCompleter(commands);
    }

    /** An enum's values (QEMU 7.2 lists them as "values", later ones as "members"), true/false for a bool. */
    private static List<String> values(JsonNode type) {
        List<String> out = new ArrayList<>();
        if (type == null) {
            return out;
        }
        if (type.path("json-type").asString().equals("boolean")) {
            return List.of("true", "false");
        }
        type.path("values").forEach(v -> out.add(v.asString()));
        if (out.isEmpty()) {
            type.path("members").forEach(v -> out.add(v.path("name").asString()));
        }
        return out;
    }

    /** The command names known. */
    java.util.Set<String> commandNames() {
        return commands.keySet();
    }

    @Override
    public void complete(LineReader reader, ParsedLine line, List<Candidate> candidates) {
        List<String> words = line.words();
        int index = line.wordIndex();
        int first = !words.isEmpty() && words.getFirst().equals("oob") ? 1 : 0;
        if (index == first) {
            commands.keySet().forEach(c -> candidates.add(new Candidate(c)));
            return;
        }
        if (index < first || words.size() <= first) {
            return;
        }
        Map<String, List<String>> args = commands.get(words.get(first));
        if (args == null) {
            return;
        }
        String word = line.word();
        int eq = word.indexOf('=');
        if (eq < 0) {
            // "name=" without a space after it, so the value follows at once
            args.keySet().forEach(a -> candidates.add(new Candidate(a + "=", a + "=", null, null, null, null, false)));
        } else {
            String arg = word.substring(0, eq);
            for (String v : args.getOrDefault(arg, List.of())) {
                candidates.add(new Candidate(arg + "=" + v, v, null, null, null, null, true));
            }
        }
    }
}
