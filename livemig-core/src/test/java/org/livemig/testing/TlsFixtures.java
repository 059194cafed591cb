package org.livemig.testing;

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
import java.util.concurrent.atomic.AtomicLong;
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
import org.bouncycastle.operator.ContentSigner;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;

/**
 * Certificates and keys made at test time, laid out as QEMU's {@code tls-creds-x509} and
 * {@code tls-creds-psk} directories: a CA, server certificates for an IP address or a host
 * name, client certificates with a friendly or a hostile name, and keys.psk files.
 */
public final class TlsFixtures {
    public static final String FRIENDLY_CLIENT = "CN=livemig friendly client,O=livemig,C=GB";
    public static final String HOSTILE_CLIENT = "CN=livemig hostile client,O=evil,C=GB";
    private static final SecureRandom RANDOM = new SecureRandom();
    private static final AtomicLong SERIAL = new AtomicLong(System.currentTimeMillis());

    /** A CA: its key and self-signed certificate. */
    public record Ca(KeyPair keys, X509Certificate cert) {}

    private TlsFixtures() {}

    public static Ca ca(String name) throws Exception {
        KeyPair kp = rsaKeys();
        X500Name dn = name("CN=" + name + ",O=livemig tests");
        X509v3CertificateBuilder b = builder(dn, dn, kp);
        b.addExtension(Extension.basicConstraints, true, new BasicConstraints(true));
        b.addExtension(Extension.keyUsage, true, new KeyUsage(KeyUsage.keyCertSign | KeyUsage.cRLSign));
        return new Ca(kp, sign(b, kp));
    }

    /**
     * A QEMU x509 directory for a server: ca-cert.pem, server-cert.pem (for {@code ipAddress}
     * and/or {@code hostname}; either may be null) and server-key.pem.
     */
    public static Path serverDir(Path dir, Ca ca, String ipAddress, String hostname) throws Exception {
        Files.createDirectories(dir);
        KeyPair kp = rsaKeys();
        X509v3CertificateBuilder b = builder(X500Name.getInstance(ca.cert.getSubjectX500Principal().getEncoded()),
                name("CN=" + (hostname != null ? hostname : ipAddress != null ? ipAddress : "livemig server") + ",O=livemig"), kp);
        b.addExtension(Extension.basicConstraints, true, new BasicConstraints(false));
        b.addExtension(Extension.keyUsage, true, new KeyUsage(KeyUsage.digitalSignature | KeyUsage.keyEncipherment));
        b.addExtension(Extension.extendedKeyUsage, false, new ExtendedKeyUsage(KeyPurposeId.id_kp_serverAuth));
        GeneralName[] names;
        if (ipAddress != null && hostname != null) {
            names = new GeneralName[] {ip(ipAddress), new GeneralName(GeneralName.dNSName, hostname)};
        } else if (ipAddress != null) {
            names = new GeneralName[] {ip(ipAddress)};
        } else if (hostname != null) {
            names = new GeneralName[] {new GeneralName(GeneralName.dNSName, hostname)};
        } else {
            names = null;
        }
        if (names != null) {
            b.addExtension(Extension.subjectAlternativeName, false, new GeneralNames(names));
        }
        writePem(dir.resolve("ca-cert.pem"), ca.cert);
        writePem(dir.resolve("server-cert.pem"), sign(b, ca.keys));
        writeKey(dir.resolve("server-key.pem"), kp);
        return dir;
    }

    /** A QEMU x509 directory for a client: ca-cert.pem, and client-cert.pem/client-key.pem when {@code dn} is not null. */
    public static Path clientDir(Path dir, Ca trusted, Ca issuer, String dn) throws Exception {
        Files.createDirectories(dir);
        writePem(dir.resolve("ca-cert.pem"), trusted.cert);
        if (dn != null) {
            KeyPair kp = rsaKeys();
            X509v3CertificateBuilder b = builder(X500Name.getInstance(issuer.cert.getSubjectX500Principal().getEncoded()), name(dn), kp);
            b.addExtension(Extension.basicConstraints, true, new BasicConstraints(false));
            b.addExtension(Extension.keyUsage, true, new KeyUsage(KeyUsage.digitalSignature | KeyUsage.keyEncipherment));
            b.addExtension(Extension.extendedKeyUsage, false, new ExtendedKeyUsage(KeyPurposeId.id_kp_clientAuth));
            writePem(dir.resolve("client-cert.pem"), sign(b, issuer.keys));
            writeKey(dir.resolve("client-key.pem"), kp);
        }
        return dir;
    }

    /** A QEMU psk directory whose keys.psk holds {@code username}'s random key; returns the hex key. */
    public static String pskDir(Path dir, String username) throws IOException {
        byte[] key = new byte[32];
        RANDOM.nextBytes(key);
        String hex = HexFormat.of().formatHex(key);
        Files.createDirectories(dir);
        Files.writeString(dir.resolve("keys.psk"), username + ":" + hex + "\n");
        return hex;
    }

    private static GeneralName ip(String address) throws IOException {
        return new GeneralName(GeneralName.iPAddress, new org.bouncycastle.asn1.DEROctetString(
                InetAddress.getByName(address).getAddress()));
    }

    /** An RFC 2253 name (most specific first), encoded so that the JDK prints it back the same. */
    private static X500Name name(String rfc2253) {
        return X500Name.getInstance(new javax.security.auth.x500.X500Principal(rfc2253).getEncoded());
    }

    /** RSA 2048: what every TLS stack loads (GnuTLS 3.7 did not take BC's PKCS#8 EC keys). */
    private static KeyPair rsaKeys() throws Exception {
        KeyPairGenerator g = KeyPairGenerator.getInstance("RSA");
        g.initialize(2048);
        return g.generateKeyPair();
    }

    private static X509v3CertificateBuilder builder(X500Name issuer, X500Name subject, KeyPair kp) {
        Instant now = Instant.now();
        return new JcaX509v3CertificateBuilder(issuer, BigInteger.valueOf(SERIAL.incrementAndGet()),
                Date.from(now.minus(Duration.ofHours(1))), Date.from(now.plus(Duration.ofDays(2))), subject, kp.getPublic());
    }

    private static X509Certificate sign(X509v3CertificateBuilder b, KeyPair signer) throws Exception {
        ContentSigner s = new JcaContentSignerBuilder("SHA256withRSA").build(signer.getPrivate());
        return new JcaX509CertificateConverter().getCertificate(b.build(s));
    }

    /** PKCS#8 ("BEGIN PRIVATE KEY"), as certtool and openssl write keys today. */
    private static void writeKey(Path file, KeyPair kp) throws IOException {
        StringWriter w = new StringWriter();
        try (JcaPEMWriter pem = new JcaPEMWriter(w)) {
            pem.writeObject(new org.bouncycastle.openssl.jcajce.JcaPKCS8Generator(kp.getPrivate(), null));
        }
        Files.writeString(file, w.toString());
    }

    private static void writePem(Path file, Object o) throws IOException {
        StringWriter w = new StringWriter();
        try (JcaPEMWriter pem = new JcaPEMWriter(w)) {
            pem.writeObject(o);
        }
        Files.writeString(file, w.toString());
    }
}
