package org.livemig.analyze;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

import tools.jackson.databind.node.JsonNodeFactory;
import tools.jackson.databind.node.ObjectNode;

/** The Python-compatible JSON printer. (The page codecs it once shared a test with are in stream.) */
class PythonJsonTest {
    @Test
    void pythonJsonEscapesLikeJsonDumps() {
        ObjectNode o = JsonNodeFactory.instance.objectNode();
        o.put("a\u00e9\"\\", "x\n\u0001");
        o.putArray("empty");
        o.putObject("none");
        o.putArray("list").add(1).add(true).addNull();
        assertThat(PythonJson.write(o)).isEqualTo("""
                {
                    "a\\u00e9\\"\\\\": "x\\n\\u0001",
                    "empty": [],
                    "none": {},
                    "list": [
                        1,
                        true,
                        null
                    ]
                }""");
    }
}
