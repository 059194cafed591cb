package org.livemig.monitor;

import java.io.IOException;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import org.livemig.machine.Machine;
import org.livemig.machine.RunState;
import org.livemig.migration.Capability;
import org.livemig.migration.Incoming;
import org.livemig.migration.Migration;
import org.livemig.migration.MigrationEvents;
import org.livemig.migration.MigrationException;
import org.livemig.migration.MigrationParameters;
import org.livemig.migration.MigrationStatus;
import org.livemig.migration.Outgoing;
import org.livemig.migration.StateDigest;
import org.livemig.migration.colo.ColoState;
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
    public static final String COLO_EXIT = "COLO_EXIT";

    /** QEMU 7.2's MigrationCapability values, in its order. */
    public static final List<String> QEMU_7_2_CAPABILITIES = List.of("xbzrle", "rdma-pin-all", "auto-converge",
            "zero-blocks", "compress", "events", "postcopy-ram", "x-colo", "release-ram", "block", "return-path",
            "pause-before-switchover", "multifd", "dirty-bitmaps", "postcopy-blocktime", "late-block-activate",
            "x-ignore-shared", "validate-uuid", "background-snapshot", "zero-copy-send", "postcopy-preempt");

    /**
     * The MigrationCapability values livemig answers with: QEMU 7.2's, then QEMU 8.1's
     * {@code switchover-ack} where QEMU 8.1 puts it (right after postcopy-preempt).
     */
    public static final List<String> QEMU_CAPABILITIES;

    static {
        List<String> caps = new java.util.ArrayList<>(QEMU_7_2_CAPABILITIES);
        caps.add("switchover-ack");
        QEMU_CAPABILITIES = List.copyOf(caps);
    }

    private static final String[] STATUS_NAMES;

    static {
        MigrationStatus[] v = MigrationStatus.values();
        STATUS_NAMES = new String[v.length];
        for (int i = 0; i < v.length; i++) {
            STATUS_NAMES[i] = v[i].qemuName();
        }
    }

    private final QmpServer server;
    private final Migration migration;
    private final Machine machine;

    private MigrationCommands(QmpServer server, Migration migration) {
        this.server = Objects.requireNonNull(server);
        this.migration = migration;
        this.machine = migration.machine();
    }

    /** Registers the commands on {@code server} for {@code migration}'s machine, and its events. */
    public static void register(QmpServer server, Migration migration) {
        MigrationCommands c = new MigrationCommands(server, migration);
        migration.addListener(c.events());
        migration.coloState().addListener(c::coloExit);
        for (QmpCommand cmd : List.of(c.migrate(), c.migrateIncoming(), c.queryMigrate(), c.migrateCancel(),
                c.migrateContinue(), c.migrateSetCapabilities(), c.queryMigrateCapabilities(),
                c.migrateSetParameters(), c.queryMigrateParameters(), c.queryYank(), c.yank(),
                c.migrateStartPostcopy(), c.migratePause(), c.migrateRecover(), c.xColoLostHeartbeat(),
                c.queryColoStatus(), c.xLivemigFingerprint(), c.xLivemigBecomeDestination(), c.xLivemigProcess())) {
            server.register(cmd);
        }
    }

    /** MIGRATION and MIGRATION_PASS, when the {@code events} capability is on. */
    private MigrationEvents events() {
        return new MigrationEvents() {
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
        };
    }

    /** COLO_EXIT: COLO ended on this machine (any thread). */
    private void coloExit(ColoState.Mode mode, ColoState.ExitReason reason) {
        ObjectNode d = QmpJson.object();
        d.put("mode", mode.qemuName());
        d.put("reason", reason.qemuName());
        server.emitEvent(COLO_EXIT, d);
    }

    /**
     * {@code x-colo-lost-heartbeat}: this machine's side of a COLO pair goes on alone. The
     * failover runs as a bottom half; the command returns at once.
     */
    private QmpCommand xColoLostHeartbeat() {
        return QmpCommand.builder("x-colo-lost-heartbeat").handler(args -> {
            call(() -> {
                migration.coloLostHeartbeat();
                return null;
            });
            return null;
        }).build();
    }

    /** {@code query-colo-status}: mode, the last mode, and why COLO ended. */
    private QmpCommand queryColoStatus() {
        return QmpCommand.builder("query-colo-status").handler(args -> {
            ColoState st = migration.coloState();
            ObjectNode r = QmpJson.object(); // COLOStatus's member order
            r.put("mode", st.mode().qemuName());
            r.put("last-mode", st.lastMode().qemuName());
            r.put("reason", st.reason().qemuName());
            return r;
        }).build();
    }

    /** {@code migrate}: starts an outgoing migration, or with {@code resume} resumes a paused postcopy. */
    private QmpCommand migrate() {
        return QmpCommand.builder("migrate")
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
                .build();
    }

    /** {@code migrate-incoming}: listens for the source (the machine must have been started with -incoming). */
    private QmpCommand migrateIncoming() {
        return QmpCommand.builder("migrate-incoming")
                .arg("uri", QmpType.STR)
                .optionalArg("exit-on-error", QmpType.BOOL)
                .handler(args -> {
                    if (machine.runState() != RunState.INMIGRATE) {
                        throw QmpError.generic("'-incoming' was not specified on the command line");
                    }
                    call(() -> migration.migrateIncoming(args.get("uri").asString(),
                            args.path("exit-on-error").asBoolean(true)));
                    return null;
                })
                .build();
    }

    /** {@code query-migrate}: the status and statistics of the current or last migration. */
    private QmpCommand queryMigrate() {
        return QmpCommand.builder("query-migrate").handler(args -> migration.queryMigrate()).build();
    }

    /** {@code migrate_cancel}: cancels the outgoing migration; the source keeps running. */
    private QmpCommand migrateCancel() {
        return QmpCommand.builder("migrate_cancel").handler(args -> {
            call(() -> {
                migration.cancelCommand();
                return null;
            });
            return null;
        }).build();
    }

    /** {@code migrate-continue}: lets a migration paused before the switchover go on. */
    private QmpCommand migrateContinue() {
        return QmpCommand.builder("migrate-continue")
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
                .build();
    }

    /** {@code migrate-set-capabilities}: every entry checked before any is changed. */
    private QmpCommand migrateSetCapabilities() {
        return QmpCommand.builder("migrate-set-capabilities")
                .arg("capabilities", QmpType.arrayOf(QmpType.struct(
                        QmpType.member("capability", QmpType.enumOf("MigrationCapability",
                                QEMU_CAPABILITIES.toArray(String[]::new))),
                        QmpType.member("state", QmpType.BOOL))))
                .handler(args -> {
                    for (JsonNode c : args.get("capabilities")) {
                        String name = c.get("capability").asString();
                        if (Capability.fromQemuName(name) == null && c.get("state").asBoolean()) {
                            throw QmpError.generic("Capability '" + name + "' is not supported by livemig yet");
                        }
                    }
                    call(() -> {
                        Map<Capability, Boolean> changes = new java.util.LinkedHashMap<>();
                        for (JsonNode c : args.get("capabilities")) {
                            Capability cap = Capability.fromQemuName(c.get("capability").asString());
                            if (cap != null) {
                                changes.put(cap, c.get("state").asBoolean());
                            }
                        }
                        migration.setCapabilities(changes);
                        return null;
                    });
                    return null;
                })
                .build();
    }

    /** {@code query-migrate-capabilities}: every QEMU 7.2 capability, in QEMU's order. */
    private QmpCommand queryMigrateCapabilities() {
        return QmpCommand.builder("query-migrate-capabilities").handler(args -> {
            ArrayNode list = QmpJson.NODES.arrayNode();
            var on = migration.capabilities();
            for (String name : QEMU_CAPABILITIES) {
                Capability c = Capability.fromQemuName(name);
                ObjectNode e = list.addObject();
                e.put("capability", name);
                e.put("state", c != null && on.contains(c));
            }
            return list;
        }).build();
    }

    /** {@code migrate-set-parameters}: QEMU 7.2's members; those livemig lacks are refused by name. */
    private QmpCommand migrateSetParameters() {
        QmpCommand.Builder b = QmpCommand.builder("migrate-set-parameters");
        for (Map.Entry<String, QmpType> p : QEMU_PARAMETERS.entrySet()) {
            b.optionalArg(p.getKey(), p.getValue());
        }
        return b.handler(args -> {
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
        }).build();
    }

    /** {@code query-migrate-parameters}. */
    private QmpCommand queryMigrateParameters() {
        return QmpCommand.builder("query-migrate-parameters").handler(args -> {
            MigrationParameters p = migration.parameters();
            ObjectNode r = QmpJson.object();
            r.put("throttle-trigger-threshold", p.throttleTriggerThreshold);
            r.put("cpu-throttle-initial", p.cpuThrottleInitial);
            r.put("cpu-throttle-increment", p.cpuThrottleIncrement);
            r.put("tls-creds", p.tlsCreds);
            r.put("tls-hostname", p.tlsHostname);
            r.put("tls-authz", p.tlsAuthz);
            r.put("max-bandwidth", unsigned(p.maxBandwidth));
            r.put("downtime-limit", unsigned(p.downtimeLimit));
            r.put("max-postcopy-bandwidth", unsigned(p.maxPostcopyBandwidth));
            r.put("max-cpu-throttle", p.maxCpuThrottle);
            r.put("multifd-channels", p.multifdChannels);
            r.put("multifd-compression", p.multifdCompression);
            r.put("x-checkpoint-delay", p.xCheckpointDelay);
            r.put("multifd-zlib-level", p.multifdZlibLevel);
            r.put("multifd-zstd-level", p.multifdZstdLevel);
            r.put("xbzrle-cache-size", p.xbzrleCacheSize);
            r.put("compress-level", p.compressLevel);
            r.put("compress-threads", p.compressThreads);
            r.put("decompress-threads", p.decompressThreads);
            r.put("compress-wait-thread", p.compressWaitThread);
            // QEMU 9.0's (7.2 has no such parameter and always detects zero pages)
            r.put("zero-page-detection", p.zeroPageDetection);
            return r;
        }).build();
    }

    /**
     * Whether the yank instance "migration" exists: as in QEMU, from migrate or migrate-incoming
     * (a destination still listening has it) until the migration ends.
     */
    private boolean yankInstanceExists() {
        Incoming in = migration.incoming();
        return migration.isActive() || (in != null && in.isListening());
    }

    /** {@code query-yank} (out of band): the migration instance while one runs or a destination listens. */
    private QmpCommand queryYank() {
        return QmpCommand.builder("query-yank").allowOob().handler(args -> {
            ArrayNode list = QmpJson.NODES.arrayNode();
            if (yankInstanceExists()) {
                list.addObject().put("type", "migration");
            }
            return list;
        }).build();
    }

    /** {@code yank} (out of band): breaks the migration's connections so that blocked IO fails at once. */
    private QmpCommand yank() {
        return QmpCommand.builder("yank")
                .arg("instances", QmpType.arrayOf(QmpType.struct(
                        QmpType.member("type", QmpType.enumOf("YankInstanceType", "block-node", "chardev", "migration")),
                        QmpType.optional("node-name", QmpType.STR),
                        QmpType.optional("id", QmpType.STR))))
                .allowOob()
                .handler(args -> {
                    for (JsonNode i : args.get("instances")) {
                        if (!i.get("type").asString().equals("migration") || !yankInstanceExists()) {
                            throw new QmpError(QmpErrorClass.DeviceNotFound, "Instance not found"); // QEMU's words
                        }
                    }
                    if (args.get("instances").isEmpty()) {
                        return null;
                    }
                    Outgoing o = migration.outgoing();
                    if (o != null && o.status().isActive()) {
                        o.yank();
                    }
                    Incoming in = migration.incoming();
                    // A destination still listening has no channel to yank (QEMU's keeps listening too).
                    if (in != null && !in.isListening()) {
                        in.shutdown();
                    }
                    return null;
                })
                .build();
    }

    /** {@code migrate-start-postcopy}: the source switches to postcopy at the end of the current iteration. */
    private QmpCommand migrateStartPostcopy() {
        return QmpCommand.builder("migrate-start-postcopy").handler(args -> {
            call(() -> {
                migration.startPostcopy();
                return null;
            });
            return null;
        }).build();
    }

    /**
     * {@code migrate-pause} (out of band, as in QEMU: it must work while the main loop is stuck on
     * a dead network): breaks a running postcopy's channels so that both sides pause.
     */
    private QmpCommand migratePause() {
        return QmpCommand.builder("migrate-pause").allowOob().handler(args -> {
            call(() -> {
                migration.pause();
                return null;
            });
            return null;
        }).build();
    }

    /** {@code migrate-recover} (out of band): the destination of a paused postcopy listens on a new address. */
    private QmpCommand migrateRecover() {
        return QmpCommand.builder("migrate-recover").arg("uri", QmpType.STR).allowOob().handler(args -> {
            call(() -> {
                migration.recover(args.get("uri").asString());
                return null;
            });
            return null;
        }).build();
    }

    /** {@code x-livemig-fingerprint} (livemig's own): the fingerprint of the stopped machine, to verify what a migration moved. */
    private QmpCommand xLivemigFingerprint() {
        return QmpCommand.builder("x-livemig-fingerprint").optionalArg("pages", QmpType.BOOL).handler(args -> {
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
        }).build();
    }

    /**
     * {@code x-livemig-become-destination} (livemig's own): a machine whose guest migrated away
     * waits for an incoming migration again, optionally with a new autostart (see
     * {@link Migration#becomeDestination}); then migrate-incoming as usual.
     */
    private QmpCommand xLivemigBecomeDestination() {
        return QmpCommand.builder("x-livemig-become-destination").optionalArg("autostart", QmpType.BOOL).handler(args -> {
            call(() -> {
                migration.becomeDestination(args.has("autostart") ? args.get("autostart").asBoolean() : null);
                return null;
            });
            return null;
        }).build();
    }

    /**
     * {@code x-livemig-process} (livemig's own): what this process holds, for leak checks (the
     * soak): Java heap in use right after a full GC, committed heap, live threads, direct and
     * mapped buffer memory. The GC runs here, on the main loop (a short pause).
     */
    private QmpCommand xLivemigProcess() {
        return QmpCommand.builder("x-livemig-process").handler(args -> {
            System.gc();
            var heap = java.lang.management.ManagementFactory.getMemoryMXBean().getHeapMemoryUsage();
            ObjectNode r = QmpJson.object();
            r.put("heap-used-after-gc", heap.getUsed());
            r.put("heap-committed", heap.getCommitted());
            r.put("threads", java.lang.management.ManagementFactory.getThreadMXBean().getThreadCount());
            for (var pool : java.lang.management.ManagementFactory.getPlatformMXBeans(java.lang.management.BufferPoolMXBean.class)) {
                r.put(pool.getName() + "-buffers-bytes", pool.getMemoryUsed());
            }
            return r;
        }).build();
    }

    /** A uint64 parameter as QEMU prints it: 2^64-1, not -1. */
    private static java.math.BigInteger unsigned(long v) {
        return new java.math.BigInteger(Long.toUnsignedString(v));
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
        switch (name) {
            case "multifd-compression" -> {
                p.multifdCompression = value.asString();
                return;
            }
            case "zero-page-detection" -> {
                p.zeroPageDetection = value.asString();
                return;
            }
            case "compress-wait-thread" -> {
                p.compressWaitThread = value.asBoolean();
                return;
            }
            default -> {
            }
        }
        // Checked as QEMU's type already; uint64 values keep their 64-bit pattern (-1 is 2^64-1, as in QEMU).
        long v = value.bigIntegerValue().longValue();
        if (name.equals("x-checkpoint-delay")) {
            p.xCheckpointDelay = v;
            return;
        }
        switch (name) {
            case "max-bandwidth" -> p.maxBandwidth = v;
            case "downtime-limit" -> p.downtimeLimit = v;
            case "max-postcopy-bandwidth" -> p.maxPostcopyBandwidth = v;
            case "cpu-throttle-initial" -> p.cpuThrottleInitial = (int) v;
            case "cpu-throttle-increment" -> p.cpuThrottleIncrement = (int) v;
            case "max-cpu-throttle" -> p.maxCpuThrottle = (int) v;
            case "throttle-trigger-threshold" -> p.throttleTriggerThreshold = (int) v;
            case "multifd-channels" -> p.multifdChannels = (int) v;
            case "multifd-zlib-level" -> p.multifdZlibLevel = (int) v;
            case "multifd-zstd-level" -> p.multifdZstdLevel = (int) v;
            case "xbzrle-cache-size" -> p.xbzrleCacheSize = v;
            case "compress-level" -> p.compressLevel = (int) v;
            case "compress-threads" -> p.compressThreads = (int) v;
            case "decompress-threads" -> p.decompressThreads = (int) v;
            default -> throw new IllegalStateException(name);
        }
    }

    private static final List<String> IMPLEMENTED_PARAMETERS = List.of("max-bandwidth", "downtime-limit", "max-postcopy-bandwidth",
            "cpu-throttle-initial", "cpu-throttle-increment", "max-cpu-throttle", "throttle-trigger-threshold",
            "multifd-channels", "multifd-compression", "multifd-zlib-level", "multifd-zstd-level", "xbzrle-cache-size",
            "compress-level", "compress-threads", "decompress-threads", "compress-wait-thread", "zero-page-detection",
            "x-checkpoint-delay", "tls-creds", "tls-hostname", "tls-authz");

    /** QEMU 7.2's migrate-set-parameters members and their types. */
    private static final Map<String, QmpType> QEMU_PARAMETERS;

    static {
        var m = new java.util.LinkedHashMap<String, QmpType>();
        // QEMU 7.2's QAPI types: its input visitor answers "expects uint8_t" etc. before any range check.
        for (String n : List.of("announce-initial", "announce-max", "announce-rounds", "announce-step")) {
            m.put(n, QmpType.SIZE);
        }
        for (String n : List.of("compress-level", "compress-threads", "decompress-threads", "throttle-trigger-threshold",
                "cpu-throttle-initial", "cpu-throttle-increment")) {
            m.put(n, QmpType.UINT8);
        }
        m.put("max-bandwidth", QmpType.SIZE);
        m.put("downtime-limit", QmpType.UINT64);
        m.put("x-checkpoint-delay", QmpType.UINT32);
        m.put("multifd-channels", QmpType.UINT8);
        m.put("xbzrle-cache-size", QmpType.SIZE);
        m.put("max-postcopy-bandwidth", QmpType.SIZE);
        m.put("max-cpu-throttle", QmpType.UINT8);
        m.put("multifd-zlib-level", QmpType.UINT8);
        m.put("multifd-zstd-level", QmpType.UINT8);
        for (String n : List.of("compress-wait-thread", "cpu-throttle-tailslow", "block-incremental")) {
            m.put(n, QmpType.BOOL);
        }
        for (String n : List.of("tls-creds", "tls-hostname", "tls-authz")) {
            m.put(n, QmpType.STR_OR_NULL);
        }
        m.put("multifd-compression", QmpType.enumOf("MultiFDCompression", "none", "zlib", "zstd"));
        // Not in QEMU 7.2: QEMU 9.0's ZeroPageDetection, without its "multifd" (9.0's packet layout).
        m.put("zero-page-detection", QmpType.enumOf("ZeroPageDetection", "none", "legacy"));
        m.put("block-bitmap-mapping", QmpType.arrayOf(QmpType.ANY));
        QEMU_PARAMETERS = java.util.Collections.unmodifiableMap(m);
    }
}
