package org.livemig.monitor;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import org.livemig.security.ObjectException;
import org.livemig.security.ObjectRegistry;
import tools.jackson.databind.JsonNode;

/**
 * QEMU 7.2's {@code object-add} and {@code object-del} for the objects livemig has
 * ({@code tls-creds-x509}, {@code tls-creds-psk}, {@code authz-simple}, {@code authz-list}),
 * with QEMU's argument names and errors. Both run on the main loop; creating credentials reads
 * their files there, as QEMU does.
 */
public final class ObjectCommands {
    private ObjectCommands() {}

    /** Registers the commands on {@code server} for {@code objects}. */
    public static void register(QmpServer server, ObjectRegistry objects) {
        Objects.requireNonNull(objects, "objects");
        server.register(QmpCommand.builder("object-add")
                .arg("qom-type", QmpType.enumOf("ObjectType", ObjectRegistry.TYPES.toArray(String[]::new)))
                .arg("id", QmpType.STR)
                .optionalArg("endpoint", QmpType.enumOf("QCryptoTLSCredsEndpoint", "client", "server"))
                .optionalArg("dir", QmpType.STR)
                .optionalArg("verify-peer", QmpType.BOOL)
                .optionalArg("sanity-check", QmpType.BOOL)
                .optionalArg("loaded", QmpType.BOOL)
                .optionalArg("priority", QmpType.STR)
                .optionalArg("passwordid", QmpType.STR)
                .optionalArg("username", QmpType.STR)
                .optionalArg("identity", QmpType.STR)
                .optionalArg("policy", QmpType.enumOf("QAuthZListPolicy", "deny", "allow"))
                .optionalArg("rules", QmpType.arrayOf(QmpType.struct(
                        QmpType.member("match", QmpType.STR),
                        QmpType.member("policy", QmpType.enumOf("QAuthZListPolicy", "deny", "allow")),
                        QmpType.optional("format", QmpType.enumOf("QAuthZListFormat", "exact", "glob")))))
                .handler(args -> {
                    Map<String, Object> props = new LinkedHashMap<>();
                    for (var e : args.properties()) {
                        if (!e.getKey().equals("qom-type")) {
                            props.put(e.getKey(), value(e.getValue()));
                        }
                    }
                    try {
                        var created = objects.add(args.get("qom-type").asString(), props);
                        var creds = ObjectRegistry.credentialsOf(created);
                        if (creds != null) {
                            // in the background: the first TLS migration then runs compiled crypto
                            org.livemig.transport.tls.TlsWarmUp.startOnce(creds);
                        }
                    } catch (ObjectException e) {
                        throw QmpError.generic(e.getMessage());
                    }
                    return null;
                })
                .build());

        server.register(QmpCommand.builder("object-del")
                .arg("id", QmpType.STR)
                .handler(args -> {
                    try {
                        objects.del(args.get("id").asString());
                    } catch (ObjectException e) {
                        throw QmpError.generic(e.getMessage());
                    }
                    return null;
                })
                .build());
    }

    private static Object value(JsonNode v) {
        if (v.isBoolean()) {
            return v.booleanValue();
        }
        if (v.isArray()) {
            List<Object> list = new ArrayList<>();
            for (JsonNode e : v) {
                list.add(value(e));
            }
            return list;
        }
        if (v.isObject()) {
            Map<String, Object> m = new LinkedHashMap<>();
            for (var e : v.properties()) {
                m.put(e.getKey(), value(e.getValue()));
            }
            return m;
        }
        return v.asString();
    }
}
