package org.livemig.security;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.BooleanSupplier;
import java.util.function.Predicate;
import org.livemig.transport.ChannelSecurity;
import org.livemig.transport.tls.TlsChannelSecurity;
import org.livemig.transport.tls.TlsEndpoint;

/**
 * The user-created objects of one process (QEMU's {@code /objects} container): created by
 * {@code object-add} or {@code --object}, deleted by {@code object-del} unless in use.
 *
 * <p>Properties come as a map of name to value: from QMP typed ({@code Boolean},
 * {@code String}, {@code List<Map>} for authz-list rules), from the command line as strings
 * ({@link ObjectOptions}). Errors are QEMU 7.2's.
 *
 * <p>Thread-safe: every method holds the registry's lock (creation reads files under it).
 */
public final class ObjectRegistry {
    public static final List<String> TYPES = List.of(TlsCredsX509.TYPE, TlsCredsPsk.TYPE, AuthzSimple.TYPE, AuthzList.TYPE);

    private final Map<String, SecurityObject> objects = new LinkedHashMap<>();
    /** Users of objects: each says, when asked, whether it still uses them. */
    private final List<Use> uses = new ArrayList<>();

    private record Use(Set<String> ids, BooleanSupplier active) {}

    /** Creates and adds an object (QMP object-add). */
    public synchronized SecurityObject add(String type, Map<String, Object> props) throws ObjectException {
        Props p = new Props(props);
        String id = p.string("id", null);
        if (id == null) {
            throw new ObjectException("Parameter 'id' is missing");
        }
        if (!isIdentifier(id)) {
            throw new ObjectException("Parameter 'id' expects an identifier");
        }
        SecurityObject o = switch (type) {
            case TlsCredsX509.TYPE -> {
                p.allow("id", "endpoint", "dir", "verify-peer", "sanity-check", "priority", "loaded", "passwordid");
                if (p.string("passwordid", null) != null) {
                    throw new ObjectException("Encrypted private keys (passwordid) are not supported by livemig");
                }
                yield TlsCredsX509.load(id, p.endpoint(), p.dir(), p.bool("verify-peer", true));
            }
            case TlsCredsPsk.TYPE -> {
                p.allow("id", "endpoint", "dir", "verify-peer", "priority", "loaded", "username");
                p.bool("verify-peer", true);
                yield TlsCredsPsk.load(id, p.endpoint(), p.dir(), p.string("username", null));
            }
            case AuthzSimple.TYPE -> {
                p.allow("id", "identity");
                String identity = p.string("identity", null);
                if (identity == null) {
                    throw new ObjectException("Parameter 'identity' is missing");
                }
                yield new AuthzSimple(id, identity);
            }
            case AuthzList.TYPE -> {
                p.allow("id", "policy", "rules");
                yield new AuthzList(id, p.policy("policy", AuthzList.Policy.DENY), p.rules());
            }
            default -> throw new ObjectException("Parameter 'qom-type' does not accept value '" + type + "'");
        };
        if (objects.containsKey(id)) {
            throw new ObjectException("attempt to add duplicate property '" + id + "' to object (type 'container')");
        }
        objects.put(id, o);
        return o;
    }

    /** The TLS material of a credentials object, or null for another kind of object. */
    public static org.livemig.transport.tls.TlsCredentials credentialsOf(SecurityObject o) {
        return switch (o) {
            case TlsCredsX509 x -> x.credentials();
            case TlsCredsPsk k -> k.credentials();
            default -> null;
        };
    }

    /** Adds an object made elsewhere (tests). */
    public synchronized void add(SecurityObject o) throws ObjectException {
        if (objects.containsKey(o.id())) {
            throw new ObjectException("attempt to add duplicate property '" + o.id() + "' to object (type 'container')");
        }
        objects.put(o.id(), o);
    }

    /** Deletes an object (QMP object-del); refused while a migration or monitor uses it. */
    public synchronized void del(String id) throws ObjectException {
        if (!objects.containsKey(id)) {
            throw new ObjectException("object '" + id + "' not found");
        }
        uses.removeIf(u -> !u.active().getAsBoolean());
        for (Use u : uses) {
            if (u.ids().contains(id)) {
                throw new ObjectException("object '" + id + "' is in use, can not be deleted");
            }
        }
        objects.remove(id);
    }

    public synchronized SecurityObject get(String id) {
        return objects.get(id);
    }

    public synchronized List<SecurityObject> list() {
        return List.copyOf(objects.values());
    }

    /**
     * The TLS for a migration or a monitor from the ids of its credentials and authorization
     * (QEMU's tls-creds, tls-hostname, tls-authz): {@link ChannelSecurity#PLAIN} when
     * {@code credsId} is null or empty. The objects count as in use while {@code inUse} says so.
     *
     * @param endpoint what the credentials must be for
     */
    public synchronized ChannelSecurity tls(String credsId, String hostname, String authzId, TlsEndpoint endpoint,
            Duration handshakeTimeout, BooleanSupplier inUse) throws ObjectException {
        if (credsId == null || credsId.isEmpty()) {
            return ChannelSecurity.PLAIN;
        }
        SecurityObject o = objects.get(credsId);
        if (o == null) {
            throw new ObjectException("No TLS credentials with id '" + credsId + "'");
        }
        var creds = switch (o) {
            case TlsCredsX509 x -> x.credentials();
            case TlsCredsPsk p -> p.credentials();
            default -> throw new ObjectException("Object with id '" + credsId + "' is not TLS credentials");
        };
        if (creds.endpoint() != endpoint) {
            throw new ObjectException("Expected TLS credentials for a " + endpoint.qemuName() + " endpoint");
        }
        Predicate<String> authz = null;
        Set<String> ids = Set.of(credsId);
        if (authzId != null && !authzId.isEmpty() && endpoint == TlsEndpoint.SERVER) {
            SecurityObject a = objects.get(authzId);
            if (a == null) {
                throw new ObjectException("Cannot find QAuthZ object ID " + authzId);
            }
            if (!(a instanceof Authorization az)) {
                throw new ObjectException("Object '" + authzId + "' is not a QAuthZ subclass");
            }
            authz = az::isAllowed;
            ids = Set.of(credsId, authzId);
        }
        ChannelSecurity security;
        try {
            security = TlsChannelSecurity.of(creds, hostname, authz, handshakeTimeout);
        } catch (IOException e) {
            throw new ObjectException(e.getMessage(), e);
        }
        uses.removeIf(u -> !u.active().getAsBoolean());
        uses.add(new Use(ids, inUse));
        return security;
    }

    static boolean isIdentifier(String id) {
        if (id.isEmpty() || !Character.isLetter(id.charAt(0))) {
            return false;
        }
        for (int i = 1; i < id.length(); i++) {
            char c = id.charAt(i);
            if (!Character.isLetterOrDigit(c) && c != '-' && c != '.' && c != '_') {
                return false;
            }
        }
        return true;
    }

    /** Typed access to the properties, with QEMU's errors. */
    private static final class Props {
        private final Map<String, Object> map;

        Props(Map<String, Object> map) {
            this.map = map;
        }

        void allow(String... names) throws ObjectException {
            Set<String> ok = Set.of(names);
            for (String k : map.keySet()) {
                if (!ok.contains(k)) {
                    throw new ObjectException("Parameter '" + k + "' is unexpected");
                }
            }
        }

        String string(String name, String dflt) throws ObjectException {
            Object v = map.get(name);
            if (v == null) {
                return dflt;
            }
            if (!(v instanceof String s)) {
                throw new ObjectException("Invalid parameter type for '" + name + "', expected: string");
            }
            return s;
        }

        boolean bool(String name, boolean dflt) throws ObjectException {
            Object v = map.get(name);
            if (v == null) {
                return dflt;
            }
            if (v instanceof Boolean b) {
                return b;
            }
            if (v instanceof ObjectOptions.Text t) {
                switch (t.value()) {
                    case "on", "yes", "true", "y" -> {
                        return true;
                    }
                    case "off", "no", "false", "n" -> {
                        return false;
                    }
                    default -> throw new ObjectException("Parameter '" + name + "' expects 'on' or 'off'");
                }
            }
            throw new ObjectException("Invalid parameter type for '" + name + "', expected: boolean");
        }

        TlsEndpoint endpoint() throws ObjectException {
            String e = string("endpoint", "client");
            TlsEndpoint ep = TlsEndpoint.fromQemuName(e);
            if (ep == null) {
                throw new ObjectException("Parameter 'endpoint' does not accept value '" + e + "'");
            }
            return ep;
        }

        Path dir() throws ObjectException {
            String d = string("dir", null);
            if (d == null) {
                throw new ObjectException("Unable to access credentials: no 'dir' given");
            }
            return Path.of(d);
        }

        AuthzList.Policy policy(String name, AuthzList.Policy dflt) throws ObjectException {
            String v = string(name, null);
            return v == null ? dflt : policyOf(name, v);
        }

        static AuthzList.Policy policyOf(String name, String v) throws ObjectException {
            return switch (v) {
                case "allow" -> AuthzList.Policy.ALLOW;
                case "deny" -> AuthzList.Policy.DENY;
                default -> throw new ObjectException("Parameter '" + name + "' does not accept value '" + v + "'");
            };
        }

        List<AuthzList.Rule> rules() throws ObjectException {
            Object v = map.get("rules");
            if (v == null) {
                return List.of();
            }
            if (!(v instanceof List<?> list)) {
                throw new ObjectException("Invalid parameter type for 'rules', expected: array");
            }
            List<AuthzList.Rule> out = new ArrayList<>();
            for (Object o : list) {
                if (!(o instanceof Map<?, ?> m)) {
                    throw new ObjectException("Invalid parameter type for 'rules[" + out.size() + "]', expected: object");
                }
                @SuppressWarnings("unchecked")
                Props r = new Props((Map<String, Object>) m);
                r.allow("match", "policy", "format");
                String match = r.string("match", null);
                if (match == null) {
                    throw new ObjectException("Parameter 'rules[" + out.size() + "].match' is missing");
                }
                String pol = r.string("policy", null);
                if (pol == null) {
                    throw new ObjectException("Parameter 'rules[" + out.size() + "].policy' is missing");
                }
                String fmt = r.string("format", "exact");
                AuthzList.Format format = switch (fmt) {
                    case "exact" -> AuthzList.Format.EXACT;
                    case "glob" -> AuthzList.Format.GLOB;
                    default -> throw new ObjectException("Parameter 'format' does not accept value '" + fmt + "'");
                };
                out.add(new AuthzList.Rule(match, policyOf("policy", pol), format));
            }
            return out;
        }
    }
}
