package org.livemig.migration;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.livemig.machine.Machine;
import org.livemig.machine.RunState;
import org.livemig.security.ObjectOptions;
import org.livemig.testing.TlsFixtures;
import org.livemig.transport.FaultSpec;

/**
 * QEMU's TLS migration tests (tests/qtest/migration, "tls"), case by case under QEMU's names, as
 * in-process livemig migrations with certificates and keys made at test time. Every success ends
 * with the A-B check and identical RAM and devices; every failure fails both sides with the cause
 * named and leaves the source running with its RAM untouched.
 */
class TlsMigrationTest {
    private static final Duration LONG = Duration.ofSeconds(60);
    private static final String OVERRIDE_HOST = "migration.livemig.test";
    private static TlsFixtures.Ca ca;
    private static TlsFixtures.Ca otherCa;

    @TempDir
    Path dir;

    @BeforeAll
    static void makeCas() throws Exception {
        ca = TlsFixtures.ca("livemig test CA");
        otherCa = TlsFixtures.ca("some other CA");
    }

    // ---------------------------------------------------------------- set-up helpers

    private static void object(Migration m, String spec) throws Exception {
        ObjectOptions o = ObjectOptions.parse(spec);
        m.objects().add(o.type(), o.props());
    }

    private static void srcParams(PrecopyTest.Pair p, java.util.function.Consumer<MigrationParameters> e) throws Exception {
        p.params(e);
    }

    private static void dstParams(PrecopyTest.Pair p, java.util.function.Consumer<MigrationParameters> e) throws Exception {
        p.dst().mainLoop().call(() -> {
            p.dstMig().setParameters(e);
            return null;
        }, 10_000);
    }

    /** Both sides with PSK; {@code mismatch} gives the destination a different key. */
    private void psk(PrecopyTest.Pair p, boolean mismatch) throws Exception {
        Path client = dir.resolve("psk-client");
        String key = TlsFixtures.pskDir(client, "qemu");
        Path server = dir.resolve("psk-server");
        if (mismatch) {
            TlsFixtures.pskDir(server, "qemu");
        } else {
            java.nio.file.Files.createDirectories(server);
            java.nio.file.Files.writeString(server.resolve("keys.psk"), "qemu:" + key + "\n");
        }
        object(p.srcMig(), "tls-creds-psk,id=tlscredspsk0,endpoint=client,dir=" + client + ",username=qemu");
        object(p.dstMig(), "tls-creds-psk,id=tlscredspsk0,endpoint=server,dir=" + server);
        srcParams(p, m -> m.tlsCreds = "tlscredspsk0");
        dstParams(p, m -> m.tlsCreds = "tlscredspsk0");
    }

    /** QEMU's TestMigrateTLSX509: what the server certificate names, and how the client is seen. */
    record X509(boolean verifyClient, String clientDn, String certIp, String certHost, boolean authz, String hostname,
                TlsFixtures.Ca clientTrusts) {
        static X509 defaultHost() {
            return new X509(true, TlsFixtures.FRIENDLY_CLIENT, "127.0.0.1", null, false, null, null);
        }
    }

    private void x509(PrecopyTest.Pair p, X509 a) throws Exception {
        Path server = TlsFixtures.serverDir(dir.resolve("x509-server"), ca, a.certIp(), a.certHost());
        Path client = TlsFixtures.clientDir(dir.resolve("x509-client"), a.clientTrusts() != null ? a.clientTrusts() : ca, ca,
                a.clientDn());
        object(p.srcMig(), "tls-creds-x509,id=tlscredsx509client0,endpoint=client,dir=" + client
                + ",sanity-check=on,verify-peer=on");
        object(p.dstMig(), "tls-creds-x509,id=tlscredsx509server0,endpoint=server,dir=" + server
                + ",sanity-check=on,verify-peer=" + (a.verifyClient() ? "on" : "off"));
        srcParams(p, m -> {
            m.tlsCreds = "tlscredsx509client0";
            m.tlsHostname = a.hostname() == null ? "" : a.hostname();
        });
        dstParams(p, m -> m.tlsCreds = "tlscredsx509server0");
        if (a.authz()) {
            // the identity as QEMU's test gives it: the friendly client's distinguished name
            object(p.dstMig(), "authz-simple,id=tlsauthz0,identity=" + TlsFixtures.FRIENDLY_CLIENT.replace(",", ",,"));
            dstParams(p, m -> m.tlsAuthz = "tlsauthz0");
        }
    }

    private static PrecopyTest.Pair livePair() {
        return PrecopyTest.Pair.of(TestMachines.small("ab:20000"));
    }

    private static PrecopyTest.Pair idlePair() {
        return PrecopyTest.Pair.of(TestMachines.small("idle").withFill(Machine.Fill.RANDOM));
    }

    private String uri(String transport) {
        return transport.equals("tcp") ? "tcp:127.0.0.1:0" : "unix:" + dir.resolve("migsocket");
    }

    private static void multifd(PrecopyTest.Pair p) throws Exception {
        p.cap(Capability.MULTIFD);
        p.dst().mainLoop().call(() -> {
            p.dstMig().setCapability(Capability.MULTIFD, true);
            return null;
        }, 10_000);
    }

    /** Migrates and checks the A-B property, RAM and devices on the destination. */
    private static Outgoing succeeds(PrecopyTest.Pair p, String listenUri) throws Exception {
        p.params(m -> m.maxBandwidth = 0);
        p.cap(Capability.RETURN_PATH);
        Outgoing o = p.migrate(p.listen(listenUri));
        await().atMost(LONG).until(() -> o.status().isFinal());
        assertThat(o.status()).as(String.valueOf(o.error())).isEqualTo(MigrationStatus.COMPLETED);
        PrecopyTest.assertVerified(p);
        return o;
    }

    /**
     * Migrates and expects failure on both sides: the source's error contains {@code srcCause}
     * and it runs on with its RAM as before; the destination's contains {@code dstCause} (null:
     * the destination fails, for whatever it saw).
     */
    private static void fails(PrecopyTest.Pair p, String listenUri, String srcCause, String dstCause) throws Exception {
        String before = StateDigest.ram(p.src().mainBlock());
        p.params(m -> m.maxBandwidth = 0);
        Outgoing o = p.migrate(p.listen(listenUri));
        await().atMost(LONG).until(() -> o.status().isFinal());
        assertThat(o.status()).isEqualTo(MigrationStatus.FAILED);
        assertThat(o.error()).contains(srcCause);
        assertThat(p.src().runState()).isEqualTo(RunState.RUNNING);
        assertThat(p.src().ram().dirtyLogging()).isFalse();
        assertThat(StateDigest.ram(p.src().mainBlock())).isEqualTo(before);
        await().atMost(LONG).until(() -> p.dstMig().incoming().status() == MigrationStatus.FAILED);
        if (dstCause != null) {
            assertThat(p.dstMig().incoming().error()).contains(dstCause);
        }
        assertThat(p.dst().runState()).isEqualTo(RunState.INMIGRATE);
    }

    // ---------------------------------------------------------------- precopy

    @Test
    @DisplayName("/migration/precopy/tcp/tls/psk/match")
    void precopyTcpTlsPskMatch() throws Exception {
        try (PrecopyTest.Pair p = livePair()) {
            psk(p, false);
            succeeds(p, "tcp:127.0.0.1:0");
        }
    }

    @Test
    @DisplayName("/migration/precopy/tcp/tls/psk/mismatch")
    void precopyTcpTlsPskMismatch() throws Exception {
        try (PrecopyTest.Pair p = idlePair()) {
            psk(p, true);
            fails(p, "tcp:127.0.0.1:0", "PSK mismatch", "PSK mismatch");
        }
    }

    @Test
    @DisplayName("/migration/precopy/tcp/no-tls")
    void precopyTcpNoTls() throws Exception {
        try (PrecopyTest.Pair p = livePair()) {
            srcParams(p, m -> m.tlsCreds = "");
            dstParams(p, m -> m.tlsCreds = "");
            succeeds(p, "tcp:127.0.0.1:0");
        }
    }

    @Test
    @DisplayName("/migration/precopy/tcp/tls/no-hostname")
    void precopyTcpTlsNoHostname() throws Exception {
        try (PrecopyTest.Pair p = idlePair()) {
            x509(p, new X509(true, TlsFixtures.FRIENDLY_CLIENT, null, null, true, null, null));
            fails(p, "tcp:127.0.0.1:0", "Certificate does not match the hostname 127.0.0.1", "rejected this server's certificate");
        }
    }

    @Test
    @DisplayName("/migration/precopy/unix/tls/psk")
    void precopyUnixTlsPsk() throws Exception {
        try (PrecopyTest.Pair p = livePair()) {
            psk(p, false);
            succeeds(p, uri("unix"));
        }
    }

    @Test
    @DisplayName("/migration/precopy/tcp/tls/x509/default-host")
    void precopyTcpTlsX509DefaultHost() throws Exception {
        try (PrecopyTest.Pair p = livePair()) {
            x509(p, X509.defaultHost());
            succeeds(p, "tcp:127.0.0.1:0");
        }
    }

    @Test
    @DisplayName("/migration/precopy/unix/tls/x509/default-host")
    void precopyUnixTlsX509DefaultHost() throws Exception {
        try (PrecopyTest.Pair p = idlePair()) {
            x509(p, X509.defaultHost());
            fails(p, uri("unix"), "No hostname for certificate validation", "rejected this server's certificate");
        }
    }

    @Test
    @DisplayName("/migration/precopy/tcp/tls/x509/override-host")
    void precopyTcpTlsX509OverrideHost() throws Exception {
        try (PrecopyTest.Pair p = livePair()) {
            x509(p, new X509(true, TlsFixtures.FRIENDLY_CLIENT, null, OVERRIDE_HOST, false, OVERRIDE_HOST, null));
            succeeds(p, "tcp:127.0.0.1:0");
        }
    }

    @Test
    @DisplayName("/migration/precopy/unix/tls/x509/override-host")
    void precopyUnixTlsX509OverrideHost() throws Exception {
        try (PrecopyTest.Pair p = livePair()) {
            x509(p, new X509(true, TlsFixtures.FRIENDLY_CLIENT, null, OVERRIDE_HOST, false, OVERRIDE_HOST, null));
            succeeds(p, uri("unix"));
        }
    }

    @Test
    @DisplayName("/migration/precopy/tcp/tls/x509/mismatch-host")
    void precopyTcpTlsX509MismatchHost() throws Exception {
        try (PrecopyTest.Pair p = idlePair()) {
            x509(p, new X509(true, TlsFixtures.FRIENDLY_CLIENT, "10.0.0.1", null, false, null, null));
            fails(p, "tcp:127.0.0.1:0", "Certificate does not match the hostname 127.0.0.1", "rejected this server's certificate");
        }
    }

    @Test
    @DisplayName("/migration/precopy/tcp/tls/x509/friendly-client")
    void precopyTcpTlsX509FriendlyClient() throws Exception {
        try (PrecopyTest.Pair p = livePair()) {
            x509(p, new X509(true, TlsFixtures.FRIENDLY_CLIENT, "127.0.0.1", null, true, null, null));
            succeeds(p, "tcp:127.0.0.1:0");
        }
    }

    @Test
    @DisplayName("/migration/precopy/tcp/tls/x509/hostile-client")
    void precopyTcpTlsX509HostileClient() throws Exception {
        try (PrecopyTest.Pair p = idlePair()) {
            x509(p, new X509(true, TlsFixtures.HOSTILE_CLIENT, "127.0.0.1", null, true, null, null));
            fails(p, "tcp:127.0.0.1:0", "rejected this client's certificate",
                    "TLS x509 authz check for " + TlsFixtures.HOSTILE_CLIENT + " is denied");
        }
    }

    @Test
    @DisplayName("/migration/precopy/tcp/tls/x509/allow-anon-client")
    void precopyTcpTlsX509AllowAnonClient() throws Exception {
        try (PrecopyTest.Pair p = livePair()) {
            x509(p, new X509(false, null, "127.0.0.1", null, false, null, null));
            succeeds(p, "tcp:127.0.0.1:0");
        }
    }

    @Test
    @DisplayName("/migration/precopy/tcp/tls/x509/reject-anon-client")
    void precopyTcpTlsX509RejectAnonClient() throws Exception {
        try (PrecopyTest.Pair p = idlePair()) {
            x509(p, new X509(true, null, "127.0.0.1", null, false, null, null));
            fails(p, "tcp:127.0.0.1:0", "requires a client certificate", "No certificate peers");
        }
    }

    @Test
    void untrustedServerCertificateIsNamedOnBothSides() throws Exception {
        try (PrecopyTest.Pair p = idlePair()) {
            x509(p, new X509(true, TlsFixtures.FRIENDLY_CLIENT, "127.0.0.1", null, false, null, otherCa));
            fails(p, "tcp:127.0.0.1:0", "The certificate hasn't got a known issuer", "rejected this server's certificate");
        }
    }

    @Test
    void missingCredentialsFailTheMigrationWithQemusErrorAndTlsRefusesFileAndExec() throws Exception {
        try (PrecopyTest.Pair p = idlePair()) {
            srcParams(p, m -> m.tlsCreds = "nonexist");
            assertThatThrownBy(() -> p.migrate("file:" + dir.resolve("f"))).hasMessageContaining("file:");
            assertThatThrownBy(() -> p.migrate("exec:cat")).hasMessageContaining("exec:");
            fails(p, "tcp:127.0.0.1:0", "No TLS credentials with id 'nonexist'", null);
        }
    }

    // ---------------------------------------------------------------- multifd

    private void multifdCase(boolean ok, ThrowingSetup tls, String srcCause, String dstCause) throws Exception {
        try (PrecopyTest.Pair p = ok ? livePair() : idlePair()) {
            multifd(p);
            tls.apply(p);
            if (ok) {
                Outgoing o = succeeds(p, "tcp:127.0.0.1:0");
                assertThat(o.ramStats().multifdBytes.get()).isPositive();
            } else {
                fails(p, "tcp:127.0.0.1:0", srcCause, dstCause);
            }
        }
    }

    private interface ThrowingSetup {
        void apply(PrecopyTest.Pair p) throws Exception;
    }

    @Test
    @DisplayName("/migration/multifd/tcp/tls/psk/match")
    void multifdTcpTlsPskMatch() throws Exception {
        multifdCase(true, p -> psk(p, false), null, null);
    }

    @Test
    @DisplayName("/migration/multifd/tcp/tls/psk/mismatch")
    void multifdTcpTlsPskMismatch() throws Exception {
        multifdCase(false, p -> psk(p, true), "PSK mismatch", "PSK mismatch");
    }

    @Test
    @DisplayName("/migration/multifd/tcp/tls/x509/default-host")
    void multifdTcpTlsX509DefaultHost() throws Exception {
        multifdCase(true, p -> x509(p, X509.defaultHost()), null, null);
    }

    @Test
    @DisplayName("/migration/multifd/tcp/tls/x509/override-host")
    void multifdTcpTlsX509OverrideHost() throws Exception {
        multifdCase(true, p -> x509(p, new X509(true, TlsFixtures.FRIENDLY_CLIENT, null, OVERRIDE_HOST, false, OVERRIDE_HOST, null)),
                null, null);
    }

    @Test
    @DisplayName("/migration/multifd/tcp/tls/x509/mismatch-host")
    void multifdTcpTlsX509MismatchHost() throws Exception {
        multifdCase(false, p -> x509(p, new X509(true, TlsFixtures.FRIENDLY_CLIENT, "10.0.0.1", null, false, null, null)),
                "Certificate does not match the hostname 127.0.0.1", "rejected this server's certificate");
    }

    @Test
    @DisplayName("multifd friendly-client (QEMU runs it for precopy only)")
    void multifdTcpTlsX509FriendlyClient() throws Exception {
        multifdCase(true, p -> x509(p, new X509(true, TlsFixtures.FRIENDLY_CLIENT, "127.0.0.1", null, true, null, null)),
                null, null);
    }

    @Test
    @DisplayName("multifd hostile-client (QEMU runs it for precopy only)")
    void multifdTcpTlsX509HostileClient() throws Exception {
        multifdCase(false, p -> x509(p, new X509(true, TlsFixtures.HOSTILE_CLIENT, "127.0.0.1", null, true, null, null)),
                "rejected this client's certificate", "is denied");
    }

    @Test
    @DisplayName("/migration/multifd/tcp/tls/x509/allow-anon-client")
    void multifdTcpTlsX509AllowAnonClient() throws Exception {
        multifdCase(true, p -> x509(p, new X509(false, null, "127.0.0.1", null, false, null, null)), null, null);
    }

    @Test
    @DisplayName("/migration/multifd/tcp/tls/x509/reject-anon-client")
    void multifdTcpTlsX509RejectAnonClient() throws Exception {
        multifdCase(false, p -> x509(p, new X509(true, null, "127.0.0.1", null, false, null, null)),
                "requires a client certificate", "No certificate peers");
    }

    @Test
    @DisplayName("/migration/multifd+postcopy/tcp/tls/psk/match: refused, as by QEMU 7.2")
    void multifdPostcopyTcpTlsPskMatchIsRefused() throws Exception {
        try (PrecopyTest.Pair p = idlePair()) {
            multifd(p);
            psk(p, false);
            p.cap(Capability.POSTCOPY_RAM);
            assertThatThrownBy(() -> p.migrate("tcp:127.0.0.1:1")).hasMessage("Postcopy is not yet compatible with multifd");
            assertThat(p.src().runState()).isEqualTo(RunState.RUNNING);
        }
    }

    // ---------------------------------------------------------------- postcopy, over PSK

    private PostcopyRecoveryTest.Run postcopy(boolean preempt, FaultSpec srcFaults) throws Exception {
        return PostcopyRecoveryTest.start("checked", preempt, srcFaults, FaultSpec.NONE, p -> psk(p, false));
    }

    @Test
    @DisplayName("/migration/postcopy/tls/psk")
    void postcopyTlsPsk() throws Exception {
        PostcopyRecoveryTest.Run r = postcopy(false, FaultSpec.NONE);
        try (PrecopyTest.Pair p = r.p()) {
            PostcopyRecoveryTest.awaitCompletedAndVerify(r);
            assertThat(p.srcMig().queryMigrate().get("ram").get("postcopy-bytes").asLong()).isPositive();
        }
    }

    @Test
    @DisplayName("/migration/postcopy/preempt/tls/psk")
    void postcopyPreemptTlsPsk() throws Exception {
        PostcopyRecoveryTest.Run r = postcopy(true, FaultSpec.NONE);
        try (PrecopyTest.Pair p = r.p()) {
            PostcopyRecoveryTest.awaitCompletedAndVerify(r);
            assertThat(p.dstMig().incoming().hasPreemptChannel()).isTrue();
        }
    }

    @Test
    @DisplayName("/migration/postcopy/recovery/tls/psk")
    void postcopyRecoveryTlsPsk() throws Exception {
        PostcopyRecoveryTest.Run r = postcopy(false, FaultSpec.builder().cut(FaultSpec.Direction.OUT, 3L << 20).build());
        try (PrecopyTest.Pair p = r.p()) {
            PostcopyRecoveryTest.awaitBothPaused(r, 1);
            p.srcMig().setFaultInjection(FaultSpec.NONE, FaultSpec.NONE);
            PostcopyRecoveryTest.recover(r);
            PostcopyRecoveryTest.awaitCompletedAndVerify(r);
            PostcopyRecoveryTest.assertWentThrough(r.src(), 1);
            PostcopyRecoveryTest.assertWentThrough(r.dst(), 1);
        }
    }

    @Test
    @DisplayName("/migration/postcopy/preempt/recovery/tls/psk")
    void postcopyPreemptRecoveryTlsPsk() throws Exception {
        PostcopyRecoveryTest.Run r = postcopy(true, FaultSpec.builder().cut(FaultSpec.Direction.OUT, 3L << 20).build());
        try (PrecopyTest.Pair p = r.p()) {
            PostcopyRecoveryTest.awaitBothPaused(r, 1);
            p.srcMig().setFaultInjection(FaultSpec.NONE, FaultSpec.NONE);
            PostcopyRecoveryTest.recover(r);
            PostcopyRecoveryTest.awaitCompletedAndVerify(r);
            PostcopyRecoveryTest.assertWentThrough(r.src(), 1);
            assertThat(p.dstMig().incoming().hasPreemptChannel()).isTrue();
        }
    }

    @Test
    void credentialsInUseCannotBeDeletedAndQemusObjectErrorsHold() throws Exception {
        try (PrecopyTest.Pair p = livePair()) {
            psk(p, false);
            p.listen("tcp:127.0.0.1:0");
            assertThatThrownBy(() -> p.dstMig().objects().del("tlscredspsk0"))
                    .hasMessage("object 'tlscredspsk0' is in use, can not be deleted");
            assertThatThrownBy(() -> p.dstMig().objects().del("nope")).hasMessage("object 'nope' not found");
            assertThatThrownBy(() -> object(p.dstMig(), "tls-creds-psk,id=tlscredspsk0,endpoint=server,dir=" + dir.resolve("psk-server")))
                    .hasMessage("attempt to add duplicate property 'tlscredspsk0' to object (type 'container')");
            assertThatThrownBy(() -> object(p.dstMig(), "tls-creds-x509,id=x,endpoint=server,dir=" + dir.resolve("empty")))
                    .hasMessage("Unable to access credentials " + dir.resolve("empty").resolve("ca-cert.pem") + ": No such file or directory");
            // not in use on the source until it migrates
            p.srcMig().objects().del("tlscredspsk0");
            assertThat(p.srcMig().objects().get("tlscredspsk0")).isNull();
            assertThat(Map.of()).isEmpty();
        }
    }
}
