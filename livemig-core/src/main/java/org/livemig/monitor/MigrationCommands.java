package org.livemig.monitor;

import java.io.IOException;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import org.livemig.machine.Machine;
import org.livemig.migration.Capability;
import org.livemig.migration.Incoming;
import org.livemig.migration.Migration;
import org.livemig.migration.MigrationEvents;
import org.livemig.migration.MigrationException;
import org.livemig.migration.MigrationParameters;
import org.livemig.migration.MigrationStatus;
import org.livemig.migration.Outgoing;
import org.livemig.migration.StateDigest;
import tools.jackson.databind.JsonNode;
import tools.jackson.databind.node.ArrayNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * The migration commands of QEMU 7.2's qapi/migration.json (and yank), bound to one machine's
 * {@link Migration}, with QEMU's names, argument names, result shapes and events (MIGRATION,
 * MIGRATION_PASS when the {@code events} capability is on).
 *
 * <p>Every capability and parameter of QEMU 7.2 is accepted by name, so that clients get the
 * same argument checking as from QEMU; those livemig does not implement are refused with an
 * error naming them rather than silently accepted.
 */
public final class MigrationCommands {
    public static final String MIGRATION = "MIGRATION";
    public static final String MIGRATION_PASS = "MIGRATION_PASS";

    /** QEMU 7.2's MigrationCapability values, in its order. */
    public static final List<String> QEMU_CAPABILITIES = List.of("xbzrle", "rdma-pin-all", "auto-converge",
            "zero-blocks", "compress", "events", "postcopy-ram", "x-colo", "release-ram", "block", "return-path",
            "pause-before-switchover", "multifd", "dirty-bitmaps", "postcopy-blocktime", "late-block-activate",
            "x-ignore-shared", "validate-uuid", "background-snapshot", "zero-copy-send", "postcopy-preempt");

    private static final String[] STATUS_NAMES;

    static {
        MigrationStatus[] v = MigrationStatus.values();
        STATUS_NAMES = new String[v.length];
        for (int i = 0; i < v.length; i++) {
            STATUS_NAMES[i] = v[i].qemuName();
        }
    }

    private MigrationCommands() {}

    /** Registers the commands on {@code server} for {@code migration}'s machine. */
    public static void register(QmpServer server, Migration migration) {
        Objects.requireNonNull(server);
        Machine machine = migration.machine();
        migration.addListener(new MigrationEvents() {
            @Override
            public void statusChanged(MigrationStatus status) {
                if (migration.capabilities().contains(Capability.EVENTS)) {
                    ObjectNode d = QmpJson.object();
                    d.put("status", status.qemuName());
                    server.emitEvent(MIGRATION, d);
                }
            }

            @Override
            public void pass(long pass) {
                if (migration.capabilities().contains(Capability.EVENTS)) {
                    ObjectNode d = QmpJson.object();
                    d.put("pass", pass);
                    server.emitEvent(MIGRATION_PASS, d);
                }
            }
        });

        server.register(QmpCommand.builder("migrate")
                .arg("uri", QmpType.STR)
                .optionalArg("blk", QmpType.BOOL)
                .optionalArg("inc", QmpType.BOOL)
                .optionalArg("detach", QmpType.BOOL)
                .optionalArg("resume", QmpType.BOOL)
                .handler(args -> {
                    if (args.path("blk").asBoolean(false) || args.path("inc").asBoolean(false)) {
                        throw QmpError.generic("Block migration (blk/inc) is not supported by livemig");
                    }
                    if (args.path("resume").asBoolean(false)) {
                        call(() -> migration.resume(args.get("uri").asString()));
                        return null;
                    }
                    call(() -> migration.migrate(args.get("uri").asString()));
                    return null;
                })
                .build());

        server.register(QmpCommand.builder("migrate-incoming")
                .arg("uri", QmpType.STR)
                .optionalArg("exit-on-error", QmpType.BOOL)
                .handler(args -> {
                    if (machine.runState() != org.livemig.machine.RunState.INMIGRATE) {
                        throw QmpError.generic("'-incoming' was not specified on the command line");
                    }
                    call(() -> migration.migrateIncoming(args.get("uri").asString(),
                            args.path("exit-on-error").asBoolean(true)));
                    return null;
                })
                .build());

        server.register(QmpCommand.builder("query-migrate").handler(args -> migration.queryMigrate()).build());

        server.register(QmpCommand.builder("migrate_cancel").handler(args -> {
            migration.cancel();
            return null;
        }).build());

        server.register(QmpCommand.builder("migrate-continue")
                .arg("state", QmpType.enumOf("MigrationStatus", STATUS_NAMES))
                .handler(args -> {
                    Outgoing o = migration.outgoing();
                    String want = args.get("state").asString();
                    MigrationStatus cur = o == null ? MigrationStatus.NONE : o.status();
                    if (!cur.qemuName().equals(want) || o == null || !o.continueFromPreSwitchover()) {
                        throw QmpError.generic("Migration not in expected state: " + cur.qemuName());
                    }
                    return null;
                })
                .build());

        server.register(QmpCommand.builder("migrate-set-capabilities")
                .arg("capabilities", QmpType.arrayOf(QmpType.struct(
                        QmpType.member("capability", QmpType.enumOf("MigrationCapability",
                                QEMU_CAPABILITIES.toArray(String[]::new))),
                        QmpType.member("state", QmpType.BOOL))))
                .handler(args -> {
                    // Check every entry before changing anything.
                    for (JsonNode c : args.get("capabilities")) {
                        String name = c.get("capability").asString();
                        if (Capability.fromQemuName(name) == null && c.get("state").asBoolean()) {
                            throw QmpError.generic("Capability '" + name + "' is not supported by livemig yet");
                        }
                    }
                    call(() -> {
                        for (JsonNode c : args.get("capabilities")) {
                            Capability cap = Capability.fromQemuName(c.get("capability").asString());
                            if (cap != null) {
                                migration.setCapability(cap, c.get("state").asBoolean());
                            }
                        }
                        return null;
                    });
                    return null;
                })
                .build());

        server.register(QmpCommand.builder("query-migrate-capabilities").handler(args -> {
            ArrayNode list = QmpJson.NODES.arrayNode();
            var on = migration.capabilities();
            for (String name : QEMU_CAPABILITIES) {
                Capability c = Capability.fromQemuName(name);
                ObjectNode e = list.addObject();
                e.put("capability", name);
                e.put("state", c != null && on.contains(c));
            }
            return list;
        }).build());

        QmpCommand.Builder setParams = QmpCommand.builder("migrate-set-parameters");
        for (Map.Entry<String, QmpType> p : QEMU_PARAMETERS.entrySet()) {
            setParams.optionalArg(p.getKey(), p.getValue());
        }
        server.register(setParams.handler(args -> {
            for (Iterator<String> it = args.propertyNames().iterator(); it.hasNext(); ) {
                String name = it.next();
                if (!IMPLEMENTED_PARAMETERS.contains(name)) {
                    throw QmpError.generic("Parameter '" + name + "' is not supported by livemig yet");
                }
            }
            call(() -> {
                migration.setParameters(p -> {
                    for (Iterator<Map.Entry<String, JsonNode>> it = args.properties().iterator(); it.hasNext(); ) {
                        var e = it.next();
                        apply(p, e.getKey(), e.getValue());
                    }
                });
                return null;
            });
            return null;
        }).build());

        server.register(QmpCommand.builder("query-migrate-parameters").handler(args -> {
            MigrationParameters p = migration.parameters();
            ObjectNode r = QmpJson.object();
            r.put("throttle-trigger-threshold", p.throttleTriggerThreshold);
            r.put("cpu-throttle-initial", p.cpuThrottleInitial);
            r.put("cpu-throttle-increment", p.cpuThrottleIncrement);
            r.put("tls-creds", p.tlsCreds);
            r.put("tls-hostname", p.tlsHostname);
            r.put("tls-authz", p.tlsAuthz);
            r.put("max-bandwidth", p.maxBandwidth);
            r.put("downtime-limit", p.downtimeLimit);
            r.put("max-postcopy-bandwidth", p.maxPostcopyBandwidth);
            r.put("max-cpu-throttle", p.maxCpuThrottle);
            r.put("multifd-channels", p.multifdChannels);
            r.put("multifd-compression", p.multifdCompression);
            return r;
        }).build());

        server.register(QmpCommand.builder("query-yank").allowOob().handler(args -> {
            ArrayNode list = QmpJson.NODES.arrayNode();
            if (migration.isActive()) {
                list.addObject().put("type", "migration");
            }
            return list;
        }).build());

        server.register(QmpCommand.builder("yank")
                .arg("instances", QmpType.arrayOf(QmpType.struct(
                        QmpType.member("type", QmpType.enumOf("YankInstanceType", "block-node", "chardev", "migration")),
                        QmpType.optional("node-name", QmpType.STR),
                        QmpType.optional("id", QmpType.STR))))
                .allowOob()
                .handler(args -> {
                    for (JsonNode i : args.get("instances")) {
                        if (!i.get("type").asString().equals("migration") || !migration.isActive()) {
                            throw new QmpError(QmpErrorClass.DeviceNotFound, "Instance '"
                                    + instanceName(i) + "' not found");
                        }
                    }
                    Outgoing o = migration.outgoing();
                    if (o != null && o.status().isActive()) {
                        o.yank();
                    }
                    Incoming in = migration.incoming();
                    if (in != null) {
                        in.shutdown();
                    }
                    return null;
                })
                .build());

        server.register(QmpCommand.builder("migrate-start-postcopy").handler(args -> {
            call(() -> {
                migration.startPostcopy();
                return null;
            });
            return null;
        }).build());

        // Both are out-of-band in QEMU: they must work while the main loop is stuck on a dead network.
        server.register(QmpCommand.builder("migrate-pause").allowOob().handler(args -> {
            call(() -> {
                migration.pause();
                return null;
            });
            return null;
        }).build());

        server.register(QmpCommand.builder("migrate-recover").arg("uri", QmpType.STR).allowOob().handler(args -> {
            call(() -> {
                migration.recover(args.get("uri").asString());
                return null;
            });
            return null;
        }).build());

        // livemig's own: the fingerprint of the stopped machine, to verify what a migration moved.
        server.register(QmpCommand.builder("x-livemig-fingerprint").optionalArg("pages", QmpType.BOOL).handler(args -> {
            Incoming in = migration.incoming();
            if (in != null && in.status().isActive()) {
                // Reading guest RAM directly while pages may still be missing could block on a
                // userfaultfd page outside a safepoint; fingerprints wait for the load to end.
                throw QmpError.generic("x-livemig-fingerprint is not available while an incoming migration runs");
            }
            try {
                ObjectNode f = StateDigest.of(machine);
                if (args.path("pages").asBoolean(false)) {
                    f.setAll(StateDigest.pages(machine));
                }
                return f;
            } catch (IOException e) {
                throw QmpError.generic("fingerprint failed: " + e.getMessage());
            }
        }).build());
    }

    private static String instanceName(JsonNode i) {
        String type = i.get("type").asString();
        return switch (type) {
            case "block-node" -> "block-node:" + i.path("node-name").asString("");
            case "chardev" -> "chardev:" + i.path("id").asString("");
            default -> type;
        };
    }

    private interface MigrationCall {
        Object run() throws MigrationException;
    }

    private static void call(MigrationCall c) {
        try {
            c.run();
        } catch (MigrationException e) {
            throw QmpError.generic(e.getMessage());
        }
    }

    private static void apply(MigrationParameters p, String name, JsonNode value) {
        if (name.startsWith("tls-")) {
            // As QEMU: JSON null means "" (plain); "" for tls-creds turns TLS off.
            String text = value == null || value.isNull() ? "" : value.asString();
            switch (name) {
                case "tls-creds" -> p.tlsCreds = text;
                case "tls-hostname" -> p.tlsHostname = text;
                case "tls-authz" -> p.tlsAuthz = text;
                default -> throw new IllegalStateException(name);
            }
            return;
        }
        if (name.equals("multifd-compression")) {
            p.multifdCompression = value.asString();
            return;
        }
        long v = value.asLong();
        switch (name) {
            case "max-bandwidth" -> p.maxBandwidth = v;
            case "downtime-limit" -> p.downtimeLimit = v;
            case "max-postcopy-bandwidth" -> p.maxPostcopyBandwidth = v;
            case "cpu-throttle-initial" -> p.cpuThrottleInitial = (int) v;
            case "cpu-throttle-increment" -> p.cpuThrottleIncrement = (int) v;
            case "max-cpu-throttle" -> p.maxCpuThrottle = (int) v;
            case "throttle-trigger-threshold" -> p.throttleTriggerThreshold = (int) v;
            case "multifd-channels" -> p.multifdChannels = (int) Math.max(Integer.MIN_VALUE, Math.min(Integer.MAX_VALUE, v));
            default -> throw new IllegalStateException(name);
        }
    }

    private static final List<String> IMPLEMENTED_PARAMETERS = List.of("max-bandwidth", "downtime-limit", "max-postcopy-bandwidth",
            "cpu-throttle-initial", "cpu-throttle-increment", "max-cpu-throttle", "throttle-trigger-threshold",
            "multifd-channels", "multifd-compression", "tls-creds", "tls-hostname", "tls-authz");

    /** QEMU 7.2's migrate-set-parameters members and their types. */
    private static final Map<String, QmpType> QEMU_PARAMETERS;

    static {
        var m = new java.util.LinkedHashMap<String, QmpType>();
        for (String n : List.of("announce-initial", "announce-max", "announce-rounds", "announce-step",
                "compress-level", "compress-threads", "decompress-threads", "throttle-trigger-threshold",
                "cpu-throttle-initial", "cpu-throttle-increment", "max-bandwidth", "downtime-limit",
                "x-checkpoint-delay", "multifd-channels", "xbzrle-cache-size", "max-postcopy-bandwidth",
                "max-cpu-throttle", "multifd-zlib-level", "multifd-zstd-level")) {
            m.put(n, QmpType.INT);
        }
        for (String n : List.of("compress-wait-thread", "cpu-throttle-tailslow", "block-incremental")) {
            m.put(n, QmpType.BOOL);
        }
        for (String n : List.of("tls-creds", "tls-hostname", "tls-authz")) {
            m.put(n, QmpType.STR_OR_NULL);
        }
        m.put("multifd-compression", QmpType.enumOf("MultiFDCompression", "none", "zlib", "zstd"));
        m.put("block-bitmap-mapping", QmpType.arrayOf(QmpType.ANY));
        QEMU_PARAMETERS = java.util.Collections.unmodifiableMap(m);
    }
}
