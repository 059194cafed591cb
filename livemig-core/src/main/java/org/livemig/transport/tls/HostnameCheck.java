package org.livemig.transport.tls;

import java.net.InetAddress;
import java.net.UnknownHostException;
import java.security.cert.CertificateParsingException;
import java.security.cert.X509Certificate;
import java.util.Collection;
import java.util.List;
import java.util.Locale;
import javax.naming.InvalidNameException;
import javax.naming.ldap.LdapName;
import javax.naming.ldap.Rdn;
import javax.security.auth.x500.X500Principal;

/**
 * Whether a server certificate is for a host, as GnuTLS's hostname check decides: an IP address
 * matches an iPAddress subject alternative name; a name matches a dNSName (a leading {@code *.}
 * covers one label), or the subject's common name when the certificate has no dNSName.
 */
final class HostnameCheck {
    private static final int SAN_DNS = 2;
    private static final int SAN_IP = 7;

    private HostnameCheck() {}

    static boolean matches(X509Certificate cert, String host) {
        String h = host.startsWith("[") && host.endsWith("]") ? host.substring(1, host.length() - 1) : host;
        Collection<List<?>> sans;
        try {
            sans = cert.getSubjectAlternativeNames();
        } catch (CertificateParsingException e) {
            return false;
        }
        if (isIpLiteral(h)) {
            InetAddress want = ip(h);
            if (sans != null && want != null) {
                for (List<?> san : sans) {
                    if ((Integer) san.get(0) == SAN_IP && want.equals(ip((String) san.get(1)))) {
                        return true;
                    }
                }
            }
            return false;
        }
        boolean anyDns = false;
        if (sans != null) {
            for (List<?> san : sans) {
                if ((Integer) san.get(0) == SAN_DNS) {
                    anyDns = true;
                    if (nameMatches((String) san.get(1), h)) {
                        return true;
                    }
                }
            }
        }
        if (!anyDns) {
            String cn = commonName(cert.getSubjectX500Principal());
            return cn != null && nameMatches(cn, h);
        }
        return false;
    }

    private static boolean nameMatches(String pattern, String host) {
        String p = pattern.toLowerCase(Locale.ROOT);
        String n = host.toLowerCase(Locale.ROOT);
        if (p.endsWith(".")) {
            p = p.substring(0, p.length() - 1);
        }
        if (n.endsWith(".")) {
            n = n.substring(0, n.length() - 1);
        }
        if (p.startsWith("*.")) {
            int dot = n.indexOf('.');
            return dot > 0 && n.substring(dot).equals(p.substring(1)) && p.indexOf('.', 2) > 0;
        }
        return p.equals(n);
    }

    static boolean isIpLiteral(String h) {
        return h.indexOf(':') >= 0 || (!h.isEmpty() && h.chars().allMatch(c -> c == '.' || (c >= '0' && c <= '9')));
    }

    private static InetAddress ip(String literal) {
        try {
            // a literal: no name lookup happens
            return isIpLiteral(literal) ? InetAddress.getByName(literal) : null;
        } catch (UnknownHostException e) {
            return null;
        }
    }

    static String commonName(X500Principal p) {
        try {
            List<Rdn> rdns = new LdapName(p.getName(X500Principal.RFC2253)).getRdns();
            for (int i = rdns.size() - 1; i >= 0; i--) {
                if (rdns.get(i).getType().equalsIgnoreCase("CN")) {
                    return String.valueOf(rdns.get(i).getValue());
                }
            }
        } catch (InvalidNameException e) {
            return null;
        }
        return null;
    }
}
