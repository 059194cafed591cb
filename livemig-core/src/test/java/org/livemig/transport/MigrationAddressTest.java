package org.livemig.transport;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.MethodSource;

class MigrationAddressTest {

    static Stream<Arguments> good() {
        return Stream.of(
                Arguments.of("tcp:127.0.0.1:4444", new MigrationAddress.Tcp("127.0.0.1", 4444), "tcp:127.0.0.1:4444"),
                Arguments.of("tcp:localhost:0", new MigrationAddress.Tcp("localhost", 0), "tcp:localhost:0"),
                Arguments.of("tcp::4444", new MigrationAddress.Tcp("", 4444), "tcp::4444"),
                Arguments.of("tcp:[::1]:4444", new MigrationAddress.Tcp("::1", 4444), "tcp:[::1]:4444"),
                Arguments.of("tcp:[fe80::1%eth0]:65535", new MigrationAddress.Tcp("fe80::1%eth0", 65535),
                        "tcp:[fe80::1%eth0]:65535"),
                Arguments.of("tcp:my-host.example_1.org:00080", new MigrationAddress.Tcp("my-host.example_1.org", 80),
                        "tcp:my-host.example_1.org:80"),
                Arguments.of("unix:/tmp/mig.sock", new MigrationAddress.Unix(Path.of("/tmp/mig.sock")), "unix:/tmp/mig.sock"),
                Arguments.of("unix:rel/mig.sock", new MigrationAddress.Unix(Path.of("rel/mig.sock")), "unix:rel/mig.sock"),
                Arguments.of("file:/var/tmp/vm.mig", new MigrationAddress.File(Path.of("/var/tmp/vm.mig")), "file:/var/tmp/vm.mig"),
                Arguments.of("file:/tmp/a:b", new MigrationAddress.File(Path.of("/tmp/a:b")), "file:/tmp/a:b"),
                Arguments.of("file:/tmp/vm,offset=4096", new MigrationAddress.File(Path.of("/tmp/vm"), 4096), "file:/tmp/vm,offset=4096"),
                Arguments.of("file:/tmp/vm,offset=0x1000", new MigrationAddress.File(Path.of("/tmp/vm"), 4096), "file:/tmp/vm,offset=4096"),
                Arguments.of("file:/tmp/vm,offset=4k", new MigrationAddress.File(Path.of("/tmp/vm"), 4096), "file:/tmp/vm,offset=4096"),
                Arguments.of("file:/tmp/vm,offset=1.5M", new MigrationAddress.File(Path.of("/tmp/vm"), 3L << 19), "file:/tmp/vm,offset=1572864"),
                Arguments.of("exec:cat > /tmp/x", new MigrationAddress.Exec("cat > /tmp/x"), "exec:cat > /tmp/x"),
                Arguments.of("exec:gzip -c | ssh host 'cat > f:1'", new MigrationAddress.Exec("gzip -c | ssh host 'cat > f:1'"),
                        "exec:gzip -c | ssh host 'cat > f:1'"));
    }

    @ParameterizedTest
    @MethodSource("good")
    void parsesGoodUris(String uri, MigrationAddress expected, String canonical) {
        MigrationAddress a = MigrationAddress.parse(uri);
        assertThat(a).isEqualTo(expected);
        assertThat(a.uri()).isEqualTo(canonical);
        assertThat(MigrationAddress.parse(a.uri())).isEqualTo(a);
        assertThat(a.toString()).isEqualTo(canonical);
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', textBlock = """
            foo:bar           | unknown migration transport 'foo' in 'foo:bar' (expected tcp:, unix:, file:, exec:)
            TCP:h:1           | unknown migration transport 'TCP' in 'TCP:h:1'
            rdma:h:1          | migration transport 'rdma' in 'rdma:h:1' is not supported by livemig
            fd:3              | migration transport 'fd' in 'fd:3' is not supported
            localhost         | migration URI 'localhost' has no transport prefix (expected tcp:, unix:, file:, exec:)
            tcp:host          | missing port in 'tcp:host' (expected tcp:HOST:PORT)
            tcp:host:         | missing port in 'tcp:host:'
            tcp:host:65536    | bad port '65536' in 'tcp:host:65536' (expected 0-65535)
            tcp:host:-1       | bad port '-1' in 'tcp:host:-1'
            tcp:host:44a      | bad port '44a' in 'tcp:host:44a'
            tcp:host:123456   | bad port '123456'
            tcp:host: 80      | bad port ' 80'
            tcp:::1:4444      | IPv6 address in 'tcp:::1:4444' must be in brackets
            tcp:[::1:4444     | missing ']' after IPv6 address in 'tcp:[::1:4444'
            tcp:[::1]4444     | missing port in 'tcp:[::1]4444' (expected tcp:[IPV6]:PORT)
            tcp:[]:4444       | empty IPv6 address in 'tcp:[]:4444'
            tcp:host:4444,ipv4=on | tcp: options in 'tcp:host:4444,ipv4=on' are not supported
            tcp:ho/st:4444    | bad character '/' in host 'ho/st' of 'tcp:ho/st:4444'
            unix:             | empty path in 'unix:' (expected unix:PATH)
            file:             | empty path in 'file:' (expected file:PATH)
            file:/x,offset=0x20M | file URI has bad offset 0x20M: Invalid argument
            file:/x,offset=4k2 | file URI has bad offset 4k2: Invalid argument
            file:/x,offset=1.5 | file URI has bad offset 1.5: Invalid argument
            file:/x,offset=9E | file URI has bad offset 9E: Numerical result out of range
            file:/x,offset=   | file URI has bad offset : Invalid argument
            exec:             | empty command in 'exec:' (expected exec:COMMAND)
            exec:             | empty command
            """)
    void rejectsBadUrisClearly(String uri, String message) {
        assertThatThrownBy(() -> MigrationAddress.parse(uri))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining(message.strip());
    }

    @Test
    void rejectsBlankCommandNulAndEmpty() {
        assertThatThrownBy(() -> MigrationAddress.parse("exec:   "))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("empty command in 'exec:   '");
        assertThatThrownBy(() -> MigrationAddress.parse("file:/tmp/a\0b"))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("bad path in 'file:");
        assertThatThrownBy(() -> MigrationAddress.parse(""))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("empty migration URI");
        assertThatThrownBy(() -> MigrationAddress.parse(null))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("empty migration URI");
    }

    @Test
    void recordsCheckTheirComponents() {
        assertThatThrownBy(() -> new MigrationAddress.Tcp("h", 70000)).hasMessageContaining("bad port 70000");
        assertThatThrownBy(() -> new MigrationAddress.Tcp("a b", 1)).hasMessageContaining("bad character ' '");
        assertThatThrownBy(() -> new MigrationAddress.Exec(" ")).hasMessageContaining("empty command");
        assertThatThrownBy(() -> new MigrationAddress.Unix(Path.of(""))).hasMessageContaining("empty path");
        assertThat(new MigrationAddress.Tcp("::1", 1).hostPort()).isEqualTo("[::1]:1");
    }

    @Test
    void canonicalFormRoundTripsForRandomTcpAddresses() {
        long seed = 0x5EED_0001L;
        var rnd = new java.util.Random(seed);
        for (int i = 0; i < 500; i++) {
            String host = switch (rnd.nextInt(3)) {
                case 0 -> rnd.nextInt(256) + "." + rnd.nextInt(256) + "." + rnd.nextInt(256) + "." + rnd.nextInt(256);
                case 1 -> Integer.toHexString(rnd.nextInt(0x10000)) + "::" + Integer.toHexString(rnd.nextInt(0x10000));
                default -> "h" + rnd.nextInt(1000) + ".example";
            };
            var a = new MigrationAddress.Tcp(host, rnd.nextInt(65536));
            assertThat(MigrationAddress.parse(a.uri())).as("seed %d, %s", seed, a.uri()).isEqualTo(a);
        }
    }
}
