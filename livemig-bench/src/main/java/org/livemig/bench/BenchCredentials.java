package org.livemig.bench;

import java.io.IOException;
import java.io.StringWriter;
import java.math.BigInteger;
import java.net.InetAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.SecureRandom;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.time.Instant;
import java.util.Date;
import java.util.HexFormat;
import javax.security.auth.x500.X500Principal;
import org.bouncycastle.asn1.DEROctetString;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.BasicConstraints;
import org.bouncycastle.asn1.x509.ExtendedKeyUsage;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.GeneralNames;
import org.bouncycastle.asn1.x509.KeyPurposeId;
import org.bouncycastle.asn1.x509.KeyUsage;
import org.bouncycastle.cert.X509v3CertificateBuilder;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.openssl.jcajce.JcaPEMWriter;
import org.bouncycastle.openssl.jcajce.JcaPKCS8Generator;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;

/**
 * Credentials made for one TLS benchmark run, in QEMU's directory layouts, and the
 * {@code --object} options that load them: a CA, a server certificate for 127.0.0.1 and a client
 * certificate (verify-peer on), or a random pre-shared key.
 */
final class BenchCredentials {
    private static final SecureRandom RANDOM = new SecureRandom();

    /** The {@code --object} option for each side; both objects have id {@code tls0}. */
    record Objects(String server, String client) {}

    private BenchCredentials() {}

    static Objects make(String kind, Path dir) throws Exception {
        Path s = Files.createDirectories(dir.resolve("server"));
        Path c = Files.createDirectories(dir.resolve("client"));
        if (kind.equals("psk")) {
            byte[] key = new byte[32];
            RANDOM.nextBytes(key);
            String line = "qemu:" + HexFormat.of().formatHex(key) + "\n";
            Files.writeString(s.resolve("keys.psk"), line);
            Files.writeString(c.resolve("keys.psk"), line);
            return new Objects("tls-creds-psk,id=tls0,endpoint=server,dir=" + s,
                    "tls-creds-psk,id=tls0,endpoint=client,username=qemu,dir=" + c);
        }
        KeyPair caKeys = keys();
        X500Name caName = name("CN=livemig bench CA");
        X509v3CertificateBuilder ca = builder(caName, caName, caKeys);
        ca.addExtension(Extension.basicConstraints, true, new BasicConstraints(true));
        ca.addExtension(Extension.keyUsage, true, new KeyUsage(KeyUsage.keyCertSign));
        X509Certificate caCert = sign(ca, caKeys);
        KeyPair serverKeys = keys();
        X509v3CertificateBuilder server = builder(caName, name("CN=127.0.0.1"), serverKeys);
        server.addExtension(Extension.keyUsage, true, new KeyUsage(KeyUsage.digitalSignature | KeyUsage.keyEncipherment));
        server.addExtension(Extension.extendedKeyUsage, false, new ExtendedKeyUsage(KeyPurposeId.id_kp_serverAuth));
        server.addExtension(Extension.subjectAlternativeName, false, new GeneralNames(new GeneralName(GeneralName.iPAddress,
                new DEROctetString(InetAddress.getByName("127.0.0.1").getAddress()))));
        KeyPair clientKeys = keys();
        X509v3CertificateBuilder client = builder(caName, name("CN=livemig bench client"), clientKeys);
        client.addExtension(Extension.keyUsage, true, new KeyUsage(KeyUsage.digitalSignature | KeyUsage.keyEncipherment));
        client.addExtension(Extension.extendedKeyUsage, false, new ExtendedKeyUsage(KeyPurposeId.id_kp_clientAuth));
        pem(s.resolve("ca-cert.pem"), caCert);
        pem(c.resolve("ca-cert.pem"), caCert);
        pem(s.resolve("server-cert.pem"), sign(server, caKeys));
        pem(s.resolve("server-key.pem"), new JcaPKCS8Generator(serverKeys.getPrivate(), null));
        pem(c.resolve("client-cert.pem"), sign(client, caKeys));
        pem(c.resolve("client-key.pem"), new JcaPKCS8Generator(clientKeys.getPrivate(), null));
        return new Objects("tls-creds-x509,id=tls0,endpoint=server,verify-peer=on,dir=" + s,
                "tls-creds-x509,id=tls0,endpoint=client,dir=" + c);
    }

    private static X500Name name(String rfc2253) {
        return X500Name.getInstance(new X500Principal(rfc2253).getEncoded());
    }

    private static KeyPair keys() throws Exception {
        KeyPairGenerator g = KeyPairGenerator.getInstance("RSA");
        g.initialize(2048);
        return g.generateKeyPair();
    }

    private static X509v3CertificateBuilder builder(X500Name issuer, X500Name subject, KeyPair kp) {
        Instant now = Instant.now();
        return new JcaX509v3CertificateBuilder(issuer, BigInteger.valueOf(RANDOM.nextLong() & Long.MAX_VALUE),
                Date.from(now.minus(Duration.ofHours(1))), Date.from(now.plus(Duration.ofDays(1))), subject, kp.getPublic());
    }

    private static X509Certificate sign(X509v3CertificateBuilder b, KeyPair signer) throws Exception {
        return new JcaX509CertificateConverter().getCertificate(
                b.build(new JcaContentSignerBuilder("SHA256withRSA").build(signer.getPrivate())));
    }

    private static void pem(Path file, Object o) throws IOException {
        StringWriter w = new StringWriter();
        try (JcaPEMWriter p = new JcaPEMWriter(w)) {
            p.writeObject(o);
        }
        Files.writeString(file, w.toString());
    }
}
