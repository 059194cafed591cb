package org.livemig.security;

import java.io.IOException;
import java.io.InputStream;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.security.PrivateKey;
import java.security.cert.CertificateException;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.bouncycastle.asn1.pkcs.PrivateKeyInfo;
import org.bouncycastle.openssl.PEMKeyPair;
import org.bouncycastle.openssl.PEMParser;
import org.bouncycastle.openssl.jcajce.JcaPEMKeyConverter;

/** Reads QEMU's credential files: PEM certificates and keys, and {@code keys.psk}. */
final class CredentialFiles {
    private CredentialFiles() {}

    /** QEMU's error for a file it cannot open: "Unable to access credentials PATH: REASON". */
    static ObjectException unableToAccess(Path p, IOException e) {
        String why = e instanceof NoSuchFileException ? "No such file or directory"
                : e instanceof AccessDeniedException ? "Permission denied" : e.getMessage();
        return new ObjectException("Unable to access credentials " + p + ": " + why, e);
    }

    static byte[] read(Path p) throws ObjectException {
        try {
            return Files.readAllBytes(p);
        } catch (IOException e) {
            throw unableToAccess(p, e);
        }
    }

    static List<X509Certificate> certificates(Path p) throws ObjectException {
        byte[] bytes = read(p);
        try (InputStream in = new java.io.ByteArrayInputStream(bytes)) {
            List<X509Certificate> out = new ArrayList<>();
            for (var c : CertificateFactory.getInstance("X.509").generateCertificates(in)) {
                out.add((X509Certificate) c);
            }
            if (out.isEmpty()) {
                throw new ObjectException("Unable to import certificate " + p + ": no certificate in it");
            }
            return out;
        } catch (CertificateException | IOException e) {
            throw new ObjectException("Unable to import certificate " + p + ": " + e.getMessage(), e);
        }
    }

    /** A private key in PEM: PKCS#8, PKCS#1 (RSA) or SEC1 (EC); not encrypted. */
    static PrivateKey privateKey(Path p) throws ObjectException {
        byte[] bytes = read(p);
        try (Reader r = new java.io.StringReader(new String(bytes, StandardCharsets.US_ASCII));
             PEMParser parser = new PEMParser(r)) {
            JcaPEMKeyConverter conv = new JcaPEMKeyConverter();
            for (Object o = parser.readObject(); o != null; o = parser.readObject()) {
                if (o instanceof PEMKeyPair kp) {
                    // SEC1 EC keys name their curve with the public part
                    return kp.getPublicKeyInfo() != null ? conv.getKeyPair(kp).getPrivate() : conv.getPrivateKey(kp.getPrivateKeyInfo());
                }
                if (o instanceof PrivateKeyInfo info) {
                    return conv.getPrivateKey(info);
                }
            }
            throw new ObjectException("Unable to import private key " + p + ": no unencrypted private key in it");
        } catch (IOException e) {
            throw new ObjectException("Unable to import private key " + p + ": " + e.getMessage(), e);
        }
    }

    /** {@code keys.psk}: one {@code username:hexkey} per line, as GnuTLS's psktool writes it. */
    static Map<String, byte[]> pskKeys(Path p) throws ObjectException {
        String text = new String(read(p), StandardCharsets.UTF_8);
        Map<String, byte[]> keys = new LinkedHashMap<>();
        int lineNo = 0;
        for (String line : text.split("\n", -1)) {
            lineNo++;
            String l = line.strip();
            if (l.isEmpty()) {
                continue;
            }
            int colon = l.indexOf(':');
            if (colon <= 0) {
                throw new ObjectException("Cannot parse " + p + " line " + lineNo + ": expected username:hexkey");
            }
            try {
                byte[] key = HexFormat.of().parseHex(l.substring(colon + 1));
                if (key.length == 0) {
                    throw new IllegalArgumentException("empty key");
                }
                keys.putIfAbsent(l.substring(0, colon), key);
            } catch (IllegalArgumentException e) {
                throw new ObjectException("Cannot parse " + p + " line " + lineNo + ": the key is not hexadecimal ("
                        + e.getMessage() + ")");
            }
        }
        return keys;
    }
}
