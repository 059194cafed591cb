package org.livemig.monitor;

import java.io.IOException;
import java.lang.System.Logger.Level;
import java.net.SocketAddress;
import java.net.StandardProtocolFamily;
import java.net.StandardSocketOptions;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Instant;
import java.time.InstantSource;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

import tools.jackson.databind.JsonNode;
import tools.jackson.databind.node.ArrayNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * A QMP monitor server speaking QEMU 7.2's protocol on any number of unix and TCP listeners.
 *
 * <p>Threads. One thread, {@code qmp-io}, does all socket IO for all sessions with a
 * non-blocking {@link Selector}: it accepts, reads and parses requests, writes replies and
 * events, and runs out-of-band commands itself (without the BQL). Ordinary commands are handed
 * to {@link MonitorHost#schedule} — the main loop, BQL held — one at a time per session; the main
 * loop writes each reply itself, as QEMU's does, and events are written by the thread that emits
 * them, both under the session's output lock and in order with what qmp-io writes; what the
 * socket does not take at once is left to qmp-io. Otherwise other threads talk to qmp-io only
 * through its task queue ({@link #post}). TLS sessions leave all writing to qmp-io.
 *
 * <p>Flow control as QEMU's: a session queues at most {@value #MAX_PENDING_REQUESTS} in-band
 * requests (one without OOB); then qmp-io stops reading it until the queue drains. Input is
 * parsed as a stream with bounded message size; output beyond {@code maxOutputBytes} (a client
 * that never reads its events) closes the session. A client that disconnects mid-command costs
 * nothing: the reply is dropped.
 *
 * <pre>{@code
 * QmpServer server = QmpServer.builder(host).build();
 * RunStateCommands.register(server, vm);
 * server.listen("unix:/run/livemig/qmp.sock");
 * server.emitEvent("MIGRATION", data);
 * }</pre>
 */
public final class QmpServer implements AutoCloseable {
    /** QEMU's QMP_REQ_QUEUE_LEN_MAX: in-band requests queued per session before reading stops. */
    public static final int MAX_PENDING_REQUESTS = 8;
    /** Default bound on queued output per session. */
    public static final long DEFAULT_MAX_OUTPUT_BYTES = 16L << 20;
    /** How long {@link #close()} tries to flush replies still queued (e.g. the reply to quit). */
    private static final long CLOSE_FLUSH_NANOS = TimeUnit.SECONDS.toNanos(1);

    private static final System.Logger LOG = System.getLogger(QmpServer.class.getName());
    private static final Set<PosixFilePermission> OWNER_RW = PosixFilePermissions.fromString("rw-------");
    private static final Set<PosixFilePermission> OWNER_RWX = PosixFilePermissions.fromString("rwx------");

    private final MonitorHost host;
    private final QmpCommandRegistry registry = new QmpCommandRegistry();
    private final QmpDispatch dispatch;
    /** Orders {@link #listen} against the final drain in {@link #shutdown}. */
    private final Object listenLock = new Object();
    private final ObjectNode version;
    private final byte[] greeting;
    private final InstantSource clock;
    private final int maxMessageBytes;
    private final long maxOutputBytes;

    private final Selector selector;
    private final Thread ioThread;
    private final ConcurrentLinkedQueue<Runnable> tasks = new ConcurrentLinkedQueue<>();
    private final AtomicBoolean closing = new AtomicBoolean();
    /** Set once qmp-io has finished: later posts are dropped instead of piling up. */
    private volatile boolean terminated;
    private final AtomicInteger sessionCount = new AtomicInteger();
    private final AtomicLong droppedReplies = new AtomicLong();
    private final AtomicLong nextSessionId = new AtomicLong(1);

    /** Pacing (see {@link Builder#pacing}): when it applies, and the time between two dispatches. */
    private final java.util.function.BooleanSupplier pacedWhen;
    private final long pacedGapNanos;

    /** Changed by qmp-io only; read by threads emitting events. */
    private final List<QmpSession> sessions = new java.util.concurrent.CopyOnWriteArrayList<>();
    // Owned by qmp-io.
    /** Paced: sessions waiting for their turn to dispatch, oldest first; and when the next turn starts. */
    private final java.util.ArrayDeque<QmpSession> turns = new java.util.ArrayDeque<>();
    private long nextTurnNanos;
    private final List<Listener> listeners = new ArrayList<>();
    /** The keys one select found ready, handled after the posted tasks. */
    private final ArrayList<SelectionKey> readyKeys = new ArrayList<>();
    private final java.util.function.Consumer<SelectionKey> gatherReady = readyKeys::add;

    /** A listening socket; for unix sockets the file we created and must remove. */
    private record Listener(ServerSocketChannel channel, Path socketFile, Object fileKey,
                            org.livemig.transport.ChannelSecurity security) {
    }

    private QmpServer(Builder b) throws IOException {
        this.host = Objects.requireNonNull(b.host, "host");
        this.dispatch = new QmpDispatch(registry, host);
        this.clock = b.clock;
        this.maxMessageBytes = b.maxMessageBytes;
        this.maxOutputBytes = b.maxOutputBytes;
        this.pacedWhen = b.pacedWhen;
        this.pacedGapNanos = b.pacedPerSecond == 0 ? 0 : 1_000_000_000L / b.pacedPerSecond;
        this.version = QmpJson.object();
        ObjectNode qemu = version.putObject("qemu");
        qemu.put("major", b.major);
        qemu.put("minor", b.minor);
        qemu.put("micro", b.micro);
        version.put("package", b.pkg);
        ObjectNode greet = QmpJson.object();
        ObjectNode qmp = greet.putObject("QMP");
        qmp.set("version", version.deepCopy());
        qmp.putArray("capabilities").add("oob");
        this.greeting = QmpJson.wire(greet);
        registerBuiltins();
        this.selector = Selector.open();
        this.ioThread = new Thread(this::ioLoop, "qmp-io");
        ioThread.setDaemon(true);
        ioThread.start();
    }

    /** A builder for a server whose ordinary commands run through {@code host}. */
    public static Builder builder(MonitorHost host) {
        return new Builder(host);
    }

    /** Server settings. */
    public static final class Builder {
        private final MonitorHost host;
        private int major = 7;
        private int minor = 2;
        private int micro = 0;
        private String pkg = "livemig 0.1.0";
        private InstantSource clock = InstantSource.system();
        private int maxMessageBytes = JsonStreamParser.DEFAULT_MAX_MESSAGE_BYTES;
        private long maxOutputBytes = DEFAULT_MAX_OUTPUT_BYTES;
        private java.util.function.BooleanSupplier pacedWhen;
        private int pacedPerSecond;

        private Builder(MonitorHost host) {
            this.host = host;
        }

        /**
         * The version the greeting and query-version report. Defaults to QEMU 7.2.0 (the protocol
         * spoken) with package "livemig 0.1.0".
         */
        public Builder version(int qemuMajor, int qemuMinor, int qemuMicro, String packageName) {
            this.major = qemuMajor;
            this.minor = qemuMinor;
            this.micro = qemuMicro;
            this.pkg = Objects.requireNonNull(packageName, "packageName");
            return this;
        }

        /** Source of event timestamps (tests inject a fixed one). */
        public Builder clock(InstantSource instantSource) {
            this.clock = Objects.requireNonNull(instantSource, "instantSource");
            return this;
        }

        /** Largest request accepted, in bytes of JSON tokens (default 1 MiB). */
        public Builder maxMessageBytes(int bytes) {
            if (bytes < 64) {
                throw new IllegalArgumentException("maxMessageBytes too small: " + bytes);
            }
            this.maxMessageBytes = bytes;
            return this;
        }

        /** Output queued for one session beyond which it is closed (default 16 MiB). */
        public Builder maxOutputBytes(long bytes) {
            if (bytes < 4096) {
                throw new IllegalArgumentException("maxOutputBytes too small: " + bytes);
            }
            this.maxOutputBytes = bytes;
            return this;
        }

        /**
         * While {@code when} says so (asked by qmp-io before each dispatch; a migration running,
         * say), in-band commands of all sessions together start at most {@code perSecond} a
         * second, sessions taking turns, so that clients polling as fast as they can leave the
         * CPU to what matters more; out-of-band commands are never paced. 0 turns it off.
         */
        public Builder pacing(java.util.function.BooleanSupplier when, int perSecond) {
            if (perSecond < 0) {
                throw new IllegalArgumentException("commands per second must be >= 0, not " + perSecond);
            }
            this.pacedWhen = perSecond == 0 ? null : Objects.requireNonNull(when, "when");
            this.pacedPerSecond = perSecond;
            return this;
        }

        /** Creates the server and starts its qmp-io thread; it listens once {@link #listen} is called. */
        public QmpServer build() throws IOException {
            return new QmpServer(this);
        }
    }

    // ---------------------------------------------------------------- public API

    /** The command table; {@link #register} is the short form of {@code commands().register}. */
    public QmpCommandRegistry commands() {
        return registry;
    }

    /**
     * Adds a command. May be called at any time, from any thread.
     *
     * @throws IllegalArgumentException when the name is taken
     */
    public void register(QmpCommand command) {
        registry.register(command);
    }

    /**
     * Called without the BQL; waits for the main loop. Runs one command in this process, as a
     * client in command mode would over a socket: its arguments checked by the same schema, run
     * on the main loop with the BQL held, its reply returned (an error reply thrown as a
     * {@link QmpError}). For an application embedding a machine, so that its calls mean exactly
     * what the same QMP commands mean.
     *
     * @throws QmpError the command's error reply, or GenericError when the main loop did not run it in time
     */
    public JsonNode executeInProcess(String command, ObjectNode arguments, java.time.Duration timeout) {
        ObjectNode request = QmpJson.object();
        request.put("execute", command);
        if (arguments != null) {
            request.set("arguments", arguments);
        }
        ObjectNode response = switch (dispatch.prepare(request, true, false)) {
            case QmpDispatch.Reply r -> r.response();
            case QmpDispatch.Call c -> {
                java.util.concurrent.CompletableFuture<ObjectNode> done = new java.util.concurrent.CompletableFuture<>();
                host.schedule(() -> done.complete(dispatch.execute(c)));
                try {
                    yield done.get(timeout.toNanos(), TimeUnit.NANOSECONDS);
                } catch (java.util.concurrent.TimeoutException e) {
                    throw new QmpError(QmpErrorClass.GenericError, command + ": the main loop did not run it within " + timeout);
                } catch (java.util.concurrent.ExecutionException e) {
                    throw new QmpError(QmpErrorClass.GenericError, command + ": " + e.getCause(), e.getCause());
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new QmpError(QmpErrorClass.GenericError, command + ": interrupted", e);
                }
            }
        };
        if (response.get("error") instanceof ObjectNode err) {
            QmpErrorClass cls;
            try {
                cls = QmpErrorClass.valueOf(err.path("class").asString());
            } catch (IllegalArgumentException e) {
                cls = QmpErrorClass.GenericError;
            }
            throw new QmpError(cls, err.path("desc").asString());
        }
        return response.get("return");
    }

    /**
     * Starts listening on {@code unix:PATH} or {@code tcp:HOST:PORT} (see {@link QmpAddress}).
     * A unix socket file is created with mode 0600, replacing a stale socket at that path, and
     * removed on {@link #close()}. TCP binds to loopback unless a host is given.
     *
     * @return the bound address (with the real port for {@code tcp:HOST:0})
     */
    public SocketAddress listen(String address) throws IOException {
        return listen(QmpAddress.parse(address));
    }

    /** As {@link #listen(String)}. */
    public SocketAddress listen(QmpAddress address) throws IOException {
        return listen(address, org.livemig.transport.ChannelSecurity.PLAIN);
    }

    /**
     * As {@link #listen(String)}, every session over TLS when {@code security} is not plain
     * (QEMU's {@code -chardev socket,...,tls-creds=ID}): the greeting follows the handshake.
     */
    public SocketAddress listen(QmpAddress address, org.livemig.transport.ChannelSecurity security) throws IOException {
        synchronized (listenLock) {
            if (closing.get()) {
                throw new IllegalStateException("QMP server is closed");
            }
            return bindAndRegister(address, security.isPlain() ? null : security);
        }
    }

    private SocketAddress bindAndRegister(QmpAddress address, org.livemig.transport.ChannelSecurity security) throws IOException {
        Listener listener;
        SocketAddress bound;
        switch (address) {
            case QmpAddress.Unix unix -> {
                listener = bindUnix(unix.path().toAbsolutePath(), security);
                bound = UnixDomainSocketAddress.of(listener.socketFile());
            }
            case QmpAddress.Tcp tcp -> {
                ServerSocketChannel ch = ServerSocketChannel.open();
                try {
                    ch.setOption(StandardSocketOptions.SO_REUSEADDR, true);
                    ch.bind(tcp.socketAddress(), 16);
                } catch (IOException e) {
                    ch.close();
                    throw new IOException("cannot listen for QMP on " + tcp + ": " + e.getMessage(), e);
                }
                listener = new Listener(ch, null, null, security);
                bound = ch.getLocalAddress();
            }
        }
        listener.channel().configureBlocking(false);
        post(() -> {
            try {
                listener.channel().register(selector, SelectionKey.OP_ACCEPT, listener);
                listeners.add(listener);
            } catch (ClosedChannelException e) {
                LOG.log(Level.WARNING, "QMP listener closed before it was registered");
            }
        });
        return bound;
    }

    /**
     * Sends an event to every session that finished capabilities negotiation, as
     * {@code {"timestamp": {"seconds": s, "microseconds": us}, "event": NAME, "data": DATA}}.
     * The timestamp is taken now. Callable from any thread; {@code data} is serialised before
     * this returns, so the caller may reuse it. A null {@code data} omits the member, as QEMU
     * does for events without data (STOP, RESUME).
     */
    public void emitEvent(String name, ObjectNode data) {
        Objects.requireNonNull(name, "name");
        Instant now = clock.instant();
        ObjectNode event = QmpJson.object();
        ObjectNode ts = event.putObject("timestamp");
        ts.put("seconds", now.getEpochSecond());
        ts.put("microseconds", now.getNano() / 1000);
        event.put("event", name);
        if (data != null) {
            event.set("data", data);
        }
        byte[] bytes = QmpJson.wire(event);
        for (QmpSession s : sessions) {
            if (s.tls != null || Thread.currentThread() == ioThread) {
                post(() -> {
                    if (s.commandMode) {
                        send(s, bytes);
                    }
                });
            } else if (s.commandMode) {
                sendDirect(s, bytes);
            }
        }
    }

    /** Sessions currently connected. */
    public int sessionCount() {
        return sessionCount.get();
    }

    /** Replies dropped because their session closed while the command ran. */
    long droppedReplies() {
        return droppedReplies.get();
    }

    /**
     * Stops listening, tries for up to a second to flush queued replies (the reply to
     * {@code quit}), closes every session and removes unix socket files. Idempotent.
     */
    @Override
    public void close() {
        if (!closing.compareAndSet(false, true)) {
            return;
        }
        selector.wakeup();
        if (Thread.currentThread() != ioThread) {
            try {
                ioThread.join(TimeUnit.SECONDS.toMillis(5));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    // ---------------------------------------------------------------- built-in commands

    private void registerBuiltins() {
        registry.register(qmpCapabilities());
        registry.register(queryVersion());
        registry.register(queryCommands());
        registry.register(queryQmpSchema());
    }

    /** {@code qmp_capabilities}: leaves negotiation mode (the session does that; the command only checks its arguments). */
    private static QmpCommand qmpCapabilities() {
        return QmpCommand.builder(QmpDispatch.CAPABILITIES)
                .optionalArg("enable", QmpType.arrayOf(QmpType.enumOf("QMPCapability", "oob")))
                .handler(args -> null)
                .build();
    }

    /** {@code query-version}: the version this server announces in its greeting. */
    private QmpCommand queryVersion() {
        return QmpCommand.builder("query-version")
                .handler(args -> version.deepCopy())
                .build();
    }

    /** {@code query-commands}: every registered command's name. */
    private QmpCommand queryCommands() {
        return QmpCommand.builder("query-commands")
                .handler(args -> {
                    ArrayNode list = QmpJson.NODES.arrayNode();
                    for (String name : registry.names()) {
                        list.addObject().put("name", name);
                    }
                    return list;
                })
                .build();
    }

    /** {@code query-qmp-schema}: the schema of the registered commands' arguments, in QEMU's introspection shape. */
    private QmpCommand queryQmpSchema() {
        return QmpCommand.builder("query-qmp-schema")
                .handler(args -> {
                    List<QmpCommand> commands = new java.util.ArrayList<>();
                    for (String name : registry.names()) {
                        QmpCommand c = registry.lookup(name);
                        if (c != null) {
                            commands.add(c);
                        }
                    }
                    return QmpSchema.of(commands);
                })
                .build();
    }

    // ---------------------------------------------------------------- qmp-io

    /** Runs {@code task} on qmp-io. Callable from any thread; dropped once the server closed. */
    void post(Runnable task) {
        if (terminated) {
            return;
        }
        tasks.add(task);
        selector.wakeup();
    }

    /**
     * Queues {@code task} for qmp-io and wakes it only when {@code s} has requests waiting; else
     * the task runs at qmp-io's next wake-up, which comes before it reads anything more of
     * {@code s}. (Saves a wake-up per command; qmp-io checks the queue before it blocks, and
     * whichever of the two happens last sees the other: the queue, or {@link QmpSession#backlog}.)
     */
    private void postLazily(Runnable task, QmpSession s) {
        if (terminated) {
            return;
        }
        tasks.add(task);
        if (s.backlog) {
            selector.wakeup();
        }
    }

    private void ioLoop() {
        try {
            while (!closing.get()) {
                long wait = turns.isEmpty() ? 0 : Math.max(1, (nextTurnNanos - System.nanoTime() + 999_999) / 1_000_000);
                // Ready keys are gathered by a consumer into a reused list: the selected-key set
                // costs a hash node per key per wake-up, and the monitor's garbage sets the pace
                // of the young collections that stop it (issue 21).
                if (tasks.isEmpty()) {
                    selector.select(gatherReady, wait);
                } else {
                    selector.selectNow(gatherReady);
                }
                runTasks();
                serveTurns();
                for (int i = 0; i < readyKeys.size(); i++) {
                    handleKey(readyKeys.get(i));
                }
                readyKeys.clear();
            }
            runTasks();
            flushForClose();
        } catch (IOException | RuntimeException e) {
            LOG.log(Level.ERROR, "qmp-io failed; closing the QMP server", e);
        } finally {
            shutdown();
        }
    }

    private void runTasks() {
        Runnable task;
        while ((task = tasks.poll()) != null) {
            try {
                task.run();
            } catch (RuntimeException e) {
                LOG.log(Level.ERROR, "QMP task failed", e);
            }
        }
    }

    private void handleKey(SelectionKey key) {
        if (!key.isValid()) {
            return;
        }
        if (key.attachment() instanceof Listener l) {
            accept(l);
            return;
        }
        QmpSession s = (QmpSession) key.attachment();
        try {
            if (key.isWritable()) {
                flush(s);
            }
            if (!s.closed && key.isValid() && key.isReadable()) {
                read(s);
            }
        } catch (IOException e) {
            LOG.log(Level.DEBUG, () -> s + ": " + e.getMessage());
            closeSession(s);
        } catch (RuntimeException | AssertionError e) {
            // One broken session must not take qmp-io, and with it every other session, down.
            LOG.log(Level.ERROR, s + " failed; closing it", e);
            closeSession(s);
        }
    }

    private void accept(Listener l) {
        SocketChannel ch;
        try {
            ch = l.channel().accept();
            if (ch == null) {
                return;
            }
            ch.configureBlocking(false);
        } catch (IOException e) {
            LOG.log(Level.WARNING, "QMP accept failed: " + e.getMessage());
            return;
        }
        QmpSession s = new QmpSession(nextSessionId.getAndIncrement(), ch);
        if (l.security() != null) {
            try {
                s.tls = org.livemig.transport.tls.NonBlockingTlsChannel.server(ch, l.security(), "QMP client " + s.id);
                s.io = s.tls;
            } catch (IOException | RuntimeException e) {
                LOG.log(Level.WARNING, "QMP TLS session could not start: " + e.getMessage());
                try {
                    ch.close();
                } catch (IOException ignored) {
                    // the session never started
                }
                return;
            }
        }
        s.parser = new JsonStreamParser(new SessionSink(s), maxMessageBytes, JsonStreamParser.DEFAULT_MAX_TOKENS);
        try {
            s.key = ch.register(selector, SelectionKey.OP_READ, s);
        } catch (ClosedChannelException e) {
            return;
        }
        sessions.add(s);
        sessionCount.incrementAndGet();
        send(s, greeting);
    }

    /** Parser callbacks for one session, on qmp-io. */
    private final class SessionSink implements JsonStreamParser.Sink {
        private final QmpSession s;

        SessionSink(QmpSession s) {
            this.s = s;
        }

        @Override
        public void value(JsonNode value) {
            onRequest(s, value);
        }

        @Override
        public void error(String desc) {
            onRequest(s, new QmpSession.ParseError(desc));
        }

        @Override
        public boolean paused() {
            return s.suspended || s.closed;
        }
    }

    /**
     * Reads what arrived. A suspended session is still read into its (bounded) buffer, without
     * parsing, so that a client hanging up mid-command is noticed, as QEMU's chardev notices it.
     */
    private void read(QmpSession s) throws IOException {
        if (s.readBuf.hasRemaining()) {
            int n = s.io.read(s.readBuf);
            if (n < 0) {
                closeSession(s);
                return;
            }
            if (!s.suspended) {
                feedBuffered(s);
            }
        }
        if (s.tls != null && !s.closed) {
            // the handshake may just have finished: what waited (the greeting) goes now
            flush(s);
            return;
        }
        updateInterest(s);
    }

    /** Feeds read bytes to the parser until they run out or the session is suspended. */
    private void feedBuffered(QmpSession s) {
        if (s.feeding) {
            return;
        }
        s.feeding = true;
        try {
            s.readBuf.flip();
            s.parser.feed(s.readBuf);
            s.readBuf.compact();
        } finally {
            s.feeding = false;
        }
    }

    /** One parsed request (or parse error): run it now if out-of-band, else queue it. */
    private void onRequest(QmpSession s, Object request) {
        if (s.closed) {
            return;
        }
        if (request instanceof ObjectNode o && o.has("exec-oob") && !o.has("execute")) {
            ObjectNode response = switch (dispatch.prepare(o, s.commandMode, s.oobEnabled)) {
                case QmpDispatch.Reply r -> r.response();
                case QmpDispatch.Call c -> dispatch.execute(c); // here, on qmp-io, without the BQL
            };
            send(s, QmpJson.wire(response));
            return;
        }
        s.pending.add(request);
        pump(s);
        updateFlow(s);
    }

    /**
     * Paced: whether {@code s} may dispatch now (its turn has come and the gap since the last
     * dispatch has passed); if not, it waits in line for {@link #serveTurns}. Always true unpaced.
     */
    private boolean takeTurn(QmpSession s) {
        if (pacedWhen == null || (turns.isEmpty() && !pacedWhen.getAsBoolean())) {
            return true;
        }
        long now = System.nanoTime();
        if ((turns.isEmpty() || turns.peek() == s) && now >= nextTurnNanos) {
            turns.remove(s);
            nextTurnNanos = Math.max(now, nextTurnNanos) + pacedGapNanos;
            return true;
        }
        if (!turns.contains(s)) {
            turns.add(s);
        }
        return false;
    }

    /** Paced: lets the sessions in line dispatch as their turns come (all of them once pacing no longer applies). */
    private void serveTurns() {
        while (!turns.isEmpty()) {
            QmpSession s = turns.peek();
            if (s.closed || s.inFlight || s.pending.isEmpty()) {
                turns.poll();
                continue;
            }
            if (!pacedWhen.getAsBoolean()) {
                nextTurnNanos = 0;
            } else if (System.nanoTime() < nextTurnNanos) {
                return;
            }
            pump(s);
            if (turns.peek() == s) {
                return; // not served (cannot happen: its turn had come); try again at the next wake-up
            }
            updateFlow(s);
        }
    }

    /** Dispatches queued in-band requests, one on the main loop at a time (paced, see {@link #takeTurn}). */
    private void pump(QmpSession s) {
        while (!s.inFlight && !s.closed && !s.pending.isEmpty()) {
            if (!takeTurn(s)) {
                return;
            }
            Object request = s.pending.poll();
            QmpDispatch.Prepared prepared = request instanceof QmpSession.ParseError e
                    ? QmpDispatch.error(QmpErrorClass.GenericError, e.desc(), null, !s.commandMode)
                    : dispatch.prepare((JsonNode) request, s.commandMode, s.oobEnabled);
            switch (prepared) {
                case QmpDispatch.Reply r -> send(s, QmpJson.wire(r.response()));
                case QmpDispatch.Call c -> {
                    s.inFlight = true;
                    // qmp_capabilities changes the session's mode on qmp-io before its reply goes out.
                    boolean direct = s.tls == null
                            && !(c.negotiating() && c.command().name().equals(QmpDispatch.CAPABILITIES));
                    try {
                        host.schedule(() -> {
                            ObjectNode response = dispatch.execute(c);
                            if (direct) {
                                if (!sendDirect(s, QmpJson.wire(response))) {
                                    droppedReplies.incrementAndGet();
                                }
                                postLazily(() -> replied(s), s);
                            } else {
                                post(() -> complete(s, c, response));
                            }
                        });
                    } catch (RuntimeException e) {
                        s.inFlight = false;
                        send(s, QmpJson.wire(QmpDispatch.error(QmpErrorClass.GenericError,
                                "The main loop is not running: " + e.getMessage(), c.id(), c.negotiating()).response()));
                    }
                }
            }
        }
    }

    /** The main loop finished an in-band command and wrote its reply: go on with the session's queue. */
    private void replied(QmpSession s) {
        if (s.closed) {
            return;
        }
        s.inFlight = false;
        pump(s);
        updateFlow(s);
    }

    /** The main loop finished an in-band command: reply, then go on with the session's queue. */
    private void complete(QmpSession s, QmpDispatch.Call call, ObjectNode response) {
        if (s.closed) {
            droppedReplies.incrementAndGet();
            return;
        }
        if (call.command().name().equals(QmpDispatch.CAPABILITIES) && call.negotiating()
                && response.has("return")) {
            s.commandMode = true;
            JsonNode enable = call.args().get("enable");
            s.oobEnabled = false;
            if (enable != null) {
                for (JsonNode cap : enable) {
                    s.oobEnabled |= cap.stringValue().equals("oob");
                }
            }
        }
        s.inFlight = false;
        send(s, QmpJson.wire(response));
        pump(s);
        updateFlow(s);
    }

    /**
     * Suspends reading while the in-band queue is full (QEMU: {@value #MAX_PENDING_REQUESTS}
     * with OOB, one without), resumes — feeding bytes already read first — once it has room.
     */
    private void updateFlow(QmpSession s) {
        if (s.closed) {
            return;
        }
        boolean mayRead = s.oobEnabled ? s.pending.size() < MAX_PENDING_REQUESTS
                : s.pending.isEmpty() && !s.inFlight;
        if (!mayRead) {
            s.suspended = true;
        } else if (s.suspended) {
            s.suspended = false;
            feedBuffered(s);
        }
        updateInterest(s);
    }

    private void updateInterest(QmpSession s) {
        if (s.closed || !s.key.isValid()) {
            return;
        }
        s.backlog = !s.pending.isEmpty() || (s.suspended && s.readBuf.position() > 0);
        boolean readable = !s.suspended || s.readBuf.hasRemaining();
        boolean writing = hasOutput(s) || (s.tls != null && s.tls.pendingOutput());
        int ops = (readable ? SelectionKey.OP_READ : 0) | (writing ? SelectionKey.OP_WRITE : 0);
        if (s.key.interestOps() != ops) {
            s.key.interestOps(ops);
        }
    }

    private boolean hasOutput(QmpSession s) {
        s.outLock.lock();
        try {
            return !s.out.isEmpty();
        } finally {
            s.outLock.unlock();
        }
    }

    /** Queues {@code bytes} for {@code s} and writes what the socket takes; on qmp-io. */
    private void send(QmpSession s, byte[] bytes) {
        if (s.closed) {
            return;
        }
        if (!enqueue(s, bytes)) {
            closeOverflowing(s);
            return;
        }
        try {
            flush(s);
        } catch (IOException e) {
            LOG.log(Level.DEBUG, () -> s + ": " + e.getMessage());
            closeSession(s);
        }
    }

    /**
     * Queues {@code bytes} for a plain (not TLS) session and writes what the socket takes now,
     * from the calling thread (the main loop's reply, an event); what is left, an error or an
     * overflow is handed to qmp-io. Never blocks on the socket.
     *
     * @return false when the session is closed (the bytes are dropped)
     */
    private boolean sendDirect(QmpSession s, byte[] bytes) {
        boolean rest;
        s.outLock.lock();
        try {
            if (s.closed) {
                return false;
            }
            if (!enqueue(s, bytes)) {
                post(() -> closeOverflowing(s));
                return true;
            }
            rest = !writeQueued(s);
        } catch (IOException e) {
            post(() -> {
                LOG.log(Level.DEBUG, () -> s + ": " + e.getMessage());
                closeSession(s);
            });
            return true;
        } finally {
            s.outLock.unlock();
        }
        if (rest) {
            post(() -> {
                try {
                    flush(s);
                } catch (IOException e) {
                    LOG.log(Level.DEBUG, () -> s + ": " + e.getMessage());
                    closeSession(s);
                }
            });
        }
        return true;
    }

    /** Adds {@code bytes} to the session's output; false (nothing added) past {@code maxOutputBytes}. */
    private boolean enqueue(QmpSession s, byte[] bytes) {
        s.outLock.lock();
        try {
            if (s.outBytes + bytes.length > maxOutputBytes) {
                return false;
            }
            s.out.add(ByteBuffer.wrap(bytes));
            s.outBytes += bytes.length;
            return true;
        } finally {
            s.outLock.unlock();
        }
    }

    private void closeOverflowing(QmpSession s) {
        if (s.closed) {
            return;
        }
        LOG.log(Level.WARNING, s + " does not read its replies and events (" + s.outBytes
                + " bytes queued); closing it");
        closeSession(s);
    }

    /** Writes queued output until the socket takes no more; true when all of it went. Output lock held. */
    private static boolean writeQueued(QmpSession s) throws IOException {
        while (!s.out.isEmpty()) {
            ByteBuffer head = s.out.peek();
            int n = s.io.write(head);
            s.outBytes -= n;
            if (head.hasRemaining()) {
                return false;
            }
            s.out.poll();
        }
        return true;
    }

    private void flush(QmpSession s) throws IOException {
        if (s.closed) {
            return;
        }
        s.outLock.lock();
        try {
            if (s.tls != null) {
                s.tls.flush();
            }
            writeQueued(s);
        } finally {
            s.outLock.unlock();
        }
        updateInterest(s);
    }

    private void closeSession(QmpSession s) {
        if (s.closed) {
            return;
        }
        s.outLock.lock();
        try {
            s.closed = true;
            s.out.clear();
            s.outBytes = 0;
        } finally {
            s.outLock.unlock();
        }
        s.pending.clear();
        if (s.key != null) {
            s.key.cancel();
        }
        try {
            s.channel.close();
        } catch (IOException e) {
            LOG.log(Level.DEBUG, () -> s + ": close: " + e.getMessage());
        }
        sessions.remove(s);
        sessionCount.decrementAndGet();
    }

    /** Writes what is queued for up to {@link #CLOSE_FLUSH_NANOS}; on qmp-io after closing began. */
    private void flushForClose() throws IOException {
        for (Listener l : listeners) {
            SelectionKey key = l.channel().keyFor(selector);
            if (key != null) {
                key.cancel();
            }
        }
        long deadline = System.nanoTime() + CLOSE_FLUSH_NANOS;
        while (sessions.stream().anyMatch(this::hasOutput)) {
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                break;
            }
            selector.select(Math.max(1, TimeUnit.NANOSECONDS.toMillis(left)));
            runTasks();
            var it = selector.selectedKeys().iterator();
            while (it.hasNext()) {
                SelectionKey key = it.next();
                it.remove();
                if (key.isValid() && key.attachment() instanceof QmpSession s && key.isWritable()) {
                    try {
                        flush(s);
                    } catch (IOException e) {
                        closeSession(s);
                    }
                }
            }
        }
    }

    private void shutdown() {
        for (QmpSession s : List.copyOf(sessions)) {
            closeSession(s);
        }
        synchronized (listenLock) {
            // Replies for closed sessions are dropped; listeners bound meanwhile get registered.
            runTasks();
        }
        for (Listener l : listeners) {
            try {
                l.channel().close();
            } catch (IOException e) {
                LOG.log(Level.DEBUG, () -> "QMP listener close: " + e.getMessage());
            }
            removeSocketFile(l);
        }
        listeners.clear();
        terminated = true;
        tasks.clear();
        try {
            selector.close();
        } catch (IOException e) {
            LOG.log(Level.DEBUG, () -> "QMP selector close: " + e.getMessage());
        }
    }

    // ---------------------------------------------------------------- unix sockets

    /**
     * Binds a unix socket that is 0600 from the first moment anyone can reach it: bound inside a
     * fresh 0700 directory, chmod-ed, then renamed into place (replacing a stale socket, as QEMU
     * unlinks one).
     */
    private static Listener bindUnix(Path target, org.livemig.transport.ChannelSecurity security) throws IOException {
        if (Files.exists(target, LinkOption.NOFOLLOW_LINKS)) {
            BasicFileAttributes attrs = Files.readAttributes(target, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
            if (!attrs.isOther()) {
                throw new FileAlreadyExistsException(target.toString(), null,
                        "exists and is not a socket; not replacing it with the QMP socket");
            }
        }
        Path parent = target.getParent();
        Path dir = privateDir(parent);
        if (dir.resolve("s").toString().getBytes(StandardCharsets.UTF_8).length > 100) {
            Files.delete(dir);
            dir = privateDir(Path.of(System.getProperty("java.io.tmpdir")));
        }
        Path tmp = dir.resolve("s");
        ServerSocketChannel ch = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        try {
            ch.bind(UnixDomainSocketAddress.of(tmp), 16);
            Files.setPosixFilePermissions(tmp, OWNER_RW);
            Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            Object fileKey = Files.readAttributes(target, BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS).fileKey();
            return new Listener(ch, target, fileKey, security);
        } catch (IOException e) {
            ch.close();
            throw new IOException("cannot listen for QMP on unix:" + target + ": " + e.getMessage(), e);
        } finally {
            Files.deleteIfExists(tmp);
            Files.deleteIfExists(dir);
        }
    }

    private static Path privateDir(Path parent) throws IOException {
        for (int attempt = 0; ; attempt++) {
            Path dir = parent.resolve(".qmp-" + HexFormat.of().toHexDigits(ThreadLocalRandom.current().nextInt()));
            try {
                return Files.createDirectory(dir, PosixFilePermissions.asFileAttribute(OWNER_RWX));
            } catch (FileAlreadyExistsException e) {
                if (attempt > 8) {
                    throw e;
                }
            }
        }
    }

    private static void removeSocketFile(Listener l) {
        if (l.socketFile() == null) {
            return;
        }
        try {
            Object key = Files.readAttributes(l.socketFile(), BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS).fileKey();
            if (Objects.equals(key, l.fileKey())) {
                Files.deleteIfExists(l.socketFile());
            }
        } catch (IOException e) {
            // Already gone, or replaced by someone else's socket: leave it.
        }
    }
}
