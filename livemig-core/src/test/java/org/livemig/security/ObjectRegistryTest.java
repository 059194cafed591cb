package org.livemig.security;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.livemig.testing.TlsFixtures;
import org.livemig.transport.ChannelSecurity;
import org.livemig.transport.tls.TlsEndpoint;

/**
 * The objects' properties, defaults and errors as a real QEMU 7.2 gives them (checked against
 * {@code qemu-system-x86_64 -M none -qmp stdio}: object-add and object-del), the -object syntax,
 * authz-list matching, and objects in use.
 */
class ObjectRegistryTest {
    @TempDir
    Path dir;

    private static SecurityObject add(ObjectRegistry r, String spec) throws ObjectException {
        ObjectOptions o = ObjectOptions.parse(spec);
        return r.add(o.type(), o.props());
    }

    @Test
    void qemusErrorsForBadObjects() throws Exception {
        ObjectRegistry r = new ObjectRegistry();
        Files.createDirectories(dir.resolve("empty"));
        TlsFixtures.pskDir(dir.resolve("psk"), "qemu");
        assertThatThrownBy(() -> r.add("tls-creds-x509", Map.of("id", "x0", "endpoint", "server", "dir", dir.resolve("empty").toString())))
                .hasMessage("Unable to access credentials " + dir.resolve("empty/ca-cert.pem") + ": No such file or directory");
        assertThatThrownBy(() -> r.add("tls-creds-psk", Map.of("id", "p1", "endpoint", "server", "dir", dir.resolve("empty").toString())))
                .hasMessage("Unable to access credentials " + dir.resolve("empty/keys.psk") + ": No such file or directory");
        r.add("tls-creds-psk", Map.of("id", "p0", "endpoint", "server", "dir", dir.resolve("psk").toString()));
        assertThatThrownBy(() -> r.add("tls-creds-psk", Map.of("id", "p0", "endpoint", "server", "dir", dir.resolve("psk").toString())))
                .hasMessage("attempt to add duplicate property 'p0' to object (type 'container')");
        assertThatThrownBy(() -> r.add("tls-creds-psk", Map.of("id", "p2", "endpoint", "bogus", "dir", dir.resolve("psk").toString())))
                .hasMessage("Parameter 'endpoint' does not accept value 'bogus'");
        assertThatThrownBy(() -> r.add("tls-creds-psk", Map.of("id", "p3", "endpoint", "server", "dir", "x", "foo", "1")))
                .hasMessage("Parameter 'foo' is unexpected");
        assertThatThrownBy(() -> r.add("tls-creds-psk", Map.of("id", "p4", "endpoint", "server", "dir", "x", "verify-peer", "yes")))
                .hasMessage("Invalid parameter type for 'verify-peer', expected: boolean");
        assertThatThrownBy(() -> r.add("bogus", Map.of("id", "b"))).hasMessage("Parameter 'qom-type' does not accept value 'bogus'");
        assertThatThrownBy(() -> r.add("authz-simple", Map.of("id", "a1"))).hasMessage("Parameter 'identity' is missing");
        assertThatThrownBy(() -> r.add("authz-list", Map.of("id", "l2", "rules", List.of(Map.of("match", "x", "policy", "maybe")))))
                .hasMessage("Parameter 'policy' does not accept value 'maybe'");
        assertThatThrownBy(() -> r.add("authz-simple", Map.of("id", "bad id!", "identity", "x"))).hasMessage("Parameter 'id' expects an identifier");
        assertThatThrownBy(() -> r.add("authz-simple", Map.of("identity", "x"))).hasMessage("Parameter 'id' is missing");
        assertThatThrownBy(() -> r.del("nope")).hasMessage("object 'nope' not found");
        r.del("p0");
        assertThatThrownBy(() -> r.del("p0")).hasMessage("object 'p0' not found");
    }

    @Test
    void migrationParametersNameMissingOrWrongObjectsAsQemu() throws Exception {
        ObjectRegistry r = new ObjectRegistry();
        TlsFixtures.pskDir(dir.resolve("psk"), "qemu");
        add(r, "tls-creds-psk,id=ps,endpoint=server,dir=" + dir.resolve("psk"));
        add(r, "authz-simple,id=a,identity=CN=x");
        assertThat(r.tls("", null, null, TlsEndpoint.CLIENT, Duration.ofSeconds(1), () -> true)).isSameAs(ChannelSecurity.PLAIN);
        assertThat(r.tls(null, null, null, TlsEndpoint.CLIENT, Duration.ofSeconds(1), () -> true)).isSameAs(ChannelSecurity.PLAIN);
        assertThatThrownBy(() -> r.tls("nonexist", null, null, TlsEndpoint.CLIENT, Duration.ofSeconds(1), () -> true))
                .hasMessage("No TLS credentials with id 'nonexist'");
        assertThatThrownBy(() -> r.tls("ps", null, null, TlsEndpoint.CLIENT, Duration.ofSeconds(1), () -> true))
                .hasMessage("Expected TLS credentials for a client endpoint");
        assertThatThrownBy(() -> r.tls("a", null, null, TlsEndpoint.SERVER, Duration.ofSeconds(1), () -> true))
                .hasMessage("Object with id 'a' is not TLS credentials");
        assertThatThrownBy(() -> r.tls("ps", null, "zz", TlsEndpoint.SERVER, Duration.ofSeconds(1), () -> true))
                .hasMessage("Cannot find QAuthZ object ID zz");
        AtomicBoolean migrating = new AtomicBoolean(true);
        r.tls("ps", null, "a", TlsEndpoint.SERVER, Duration.ofSeconds(1), migrating::get);
        assertThatThrownBy(() -> r.del("a")).hasMessage("object 'a' is in use, can not be deleted");
        assertThatThrownBy(() -> r.del("ps")).hasMessage("object 'ps' is in use, can not be deleted");
        migrating.set(false);
        r.del("a");
        r.del("ps");
        assertThat(r.list()).isEmpty();
    }

    @Test
    void objectSyntaxAsQemusCommandLine() throws Exception {
        ObjectOptions o = ObjectOptions.parse("tls-creds-x509,id=tls0,endpoint=server,dir=/a,,b,verify-peer=off");
        assertThat(o.type()).isEqualTo("tls-creds-x509");
        assertThat(o.props()).containsEntry("id", "tls0").containsEntry("dir", "/a,b")
                .containsEntry("verify-peer", new ObjectOptions.Text("off"));
        ObjectRegistry r = new ObjectRegistry();
        AuthzList l = (AuthzList) add(r, "authz-list,id=l,policy=deny,rules.0.match=CN=*,,O=friends,rules.0.policy=allow,"
                + "rules.0.format=glob,rules.1.match=CN=bob,,O=friends,rules.1.policy=deny");
        assertThat(l.rules()).hasSize(2);
        assertThat(l.isAllowed("CN=alice,O=friends")).isTrue();
        assertThat(l.isAllowed("CN=alice,O=foes")).isFalse();
        assertThatThrownBy(() -> add(r, "authz-simple,id=x,identity=a,verify-peer=maybe"))
                .hasMessage("Parameter 'verify-peer' is unexpected");
        assertThatThrownBy(() -> ObjectOptions.parse("id=x")).hasMessageContaining("expected TYPE,id=ID");
    }

    @Test
    void authzListRulesInOrderThenTheDefault() {
        AuthzList allowByDefault = new AuthzList("l", AuthzList.Policy.ALLOW, List.of(
                new AuthzList.Rule("CN=eve", AuthzList.Policy.DENY, AuthzList.Format.EXACT),
                new AuthzList.Rule("CN=e*", AuthzList.Policy.ALLOW, AuthzList.Format.GLOB)));
        assertThat(allowByDefault.isAllowed("CN=eve")).isFalse();
        assertThat(allowByDefault.isAllowed("CN=ed")).isTrue();
        assertThat(allowByDefault.isAllowed("CN=zed")).isTrue();
        assertThat(AuthzList.glob("CN=?d,O=[a-c]x", "CN=ed,O=bx")).isTrue();
        assertThat(AuthzList.glob("CN=?d,O=[!a-c]x", "CN=ed,O=bx")).isFalse();
        assertThat(AuthzList.glob("*", "a/b,c")).isTrue();
        assertThat(new AuthzSimple("s", "CN=a").isAllowed("CN=a")).isTrue();
        assertThat(new AuthzSimple("s", "CN=a").isAllowed("CN=a,O=x")).isFalse();
    }

    @Test
    void pskFileErrorsNameTheLineAndAClientNeedsItsUsername() throws Exception {
        Files.createDirectories(dir.resolve("p"));
        Files.writeString(dir.resolve("p/keys.psk"), "qemu:00ff\nbroken\n");
        ObjectRegistry r = new ObjectRegistry();
        assertThatThrownBy(() -> add(r, "tls-creds-psk,id=p,endpoint=server,dir=" + dir.resolve("p")))
                .hasMessageContaining("line 2");
        Files.writeString(dir.resolve("p/keys.psk"), "qemu:00zz\n");
        assertThatThrownBy(() -> add(r, "tls-creds-psk,id=p,endpoint=server,dir=" + dir.resolve("p")))
                .hasMessageContaining("not hexadecimal");
        Files.writeString(dir.resolve("p/keys.psk"), "alice:00ff\n");
        assertThatThrownBy(() -> add(r, "tls-creds-psk,id=p,endpoint=client,dir=" + dir.resolve("p")))
                .hasMessageContaining("Username 'qemu' not found");
        TlsCredsPsk ok = (TlsCredsPsk) add(r, "tls-creds-psk,id=p,endpoint=client,username=alice,dir=" + dir.resolve("p"));
        assertThat(ok.username()).isEqualTo("alice");
    }
}
