package org.livemig.monitor;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.Arrays;

import org.junit.jupiter.api.Test;

/**
 * Pins what clients and the rest of livemig depend on: command names, event names, error
 * classes, the queue bound. A failure here means a public API change; change it deliberately.
 */
class QmpPublicApiTest extends QmpServerFixture {

    @Test
    void errorClassesAreQemus() {
        assertThat(Arrays.stream(QmpErrorClass.values()).map(Enum::name))
                .containsExactly("GenericError", "CommandNotFound", "DeviceNotActive", "DeviceNotFound", "KVMMissingCap");
    }

    @Test
    void commandNamesOfTheGeneralCommands() {
        assertThat(server.commands().names()).containsExactly(
                "qmp_capabilities", "query-version", "query-commands", "query-qmp-schema",
                "query-status", "query-name", "stop", "cont", "quit",
                "x-echo", "x-oob-echo");
        assertThat(server.commands().names().stream().filter(n -> !n.startsWith("x-"))
                .filter(n -> server.commands().lookup(n).allowOob())).isEmpty();
    }

    @Test
    void eventNamesAndLimits() {
        assertThat(RunStateCommands.STOP).isEqualTo("STOP");
        assertThat(RunStateCommands.RESUME).isEqualTo("RESUME");
        assertThat(RunStateCommands.SHUTDOWN).isEqualTo("SHUTDOWN");
        assertThat(QmpServer.MAX_PENDING_REQUESTS).isEqualTo(8);
        assertThat(JsonStreamParser.MAX_NESTING).isEqualTo(1024);
    }

    @Test
    void addressSpellings() {
        assertThat(QmpAddress.parse("unix:/run/x.sock")).isEqualTo(new QmpAddress.Unix(java.nio.file.Path.of("/run/x.sock")));
        assertThat(QmpAddress.parse("/run/x.sock")).isEqualTo(new QmpAddress.Unix(java.nio.file.Path.of("/run/x.sock")));
        assertThat(QmpAddress.parse("unix:/run/x.sock,server=on,wait=off"))
                .isEqualTo(new QmpAddress.Unix(java.nio.file.Path.of("/run/x.sock")));
        assertThat(QmpAddress.parse("tcp:127.0.0.1:4444")).isEqualTo(new QmpAddress.Tcp("127.0.0.1", 4444));
        assertThat(QmpAddress.parse("tcp::4444")).isEqualTo(new QmpAddress.Tcp("", 4444));
        assertThat(QmpAddress.parse("tcp:[::1]:4444,server")).isEqualTo(new QmpAddress.Tcp("::1", 4444));
        assertThat(QmpAddress.parse("tcp:[::1]:4444").toString()).isEqualTo("tcp:[::1]:4444");
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> QmpAddress.parse("tcp:host"))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("tcp:HOST:PORT");
        org.assertj.core.api.Assertions.assertThatThrownBy(() -> QmpAddress.parse("tcp:host:http"))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("'http'");
    }
}
