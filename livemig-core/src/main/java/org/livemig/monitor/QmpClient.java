package org.livemig.monitor;

import java.io.IOException;
import java.lang.System.Logger.Level;
import java.net.StandardProtocolFamily;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import java.util.function.Predicate;

import tools.jackson.databind.JsonNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * A QMP client for livemig and for a real QEMU: connects to {@code unix:PATH} or
 * {@code tcp:HOST:PORT}, reads the greeting, negotiates capabilities, executes commands with an
 * {@code id} and matches replies by it, and collects events as they arrive (also between a
 * command and its reply).
 *
 * <pre>{@code
 * try (QmpClient qmp = QmpClient.connect("unix:/tmp/dst.sock")) {
 *     qmp.negotiate();
 *     qmp.execute("migrate-incoming", QmpClient.args("uri", "tcp:127.0.0.1:4444"));
 *     ObjectNode done = qmp.waitForEvent("MIGRATION",
 *             e -> e.path("data").path("status").asString().equals("completed"), Duration.ofMinutes(1));
 * }
 * }</pre>
 *
 * <p>Thread-safe: commands may be executed from several threads; a reader thread named
 * {@code qmp-client} receives everything. Events are kept (up to {@value #MAX_KEPT_EVENTS}, the
 * oldest dropped first) until taken by {@link #takeEvents()} or {@link #waitForEvent}.
 */
public final class QmpClient implements AutoCloseable {
    /** Events kept for {@link #waitForEvent} before the oldest are dropped. */
    public static final int MAX_KEPT_EVENTS = 10_000;
    /** Default bound on waiting for the greeting and for each reply. */
    public static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(60);

    private static final System.Logger LOG = System.getLogger(QmpClient.class.getName());

    private final SocketChannel channel;
    /** What is read and written: the socket, or a TLS session over it. */
    private final java.nio.channels.ReadableByteChannel in;
    private final java.nio.channels.WritableByteChannel out;
    private final java.io.Closeable closer;
    private final QmpAddress address;
    private final Thread reader;
    private final CompletableFuture<ObjectNode> greeting = new CompletableFuture<>();
    private final AtomicLong nextId = new AtomicLong();
    private final Object writeLock = new Object();
    private final CopyOnWriteArrayList<Consumer<ObjectNode>> eventListeners = new CopyOnWriteArrayList<>();
    private volatile Duration timeout = DEFAULT_TIMEOUT;

    // Guarded by "this".
    private final Map<String, CompletableFuture<ObjectNode>> outstanding = new LinkedHashMap<>();
    private final ArrayDeque<ObjectNode> events = new ArrayDeque<>();
    private IOException failure;

    private QmpClient(SocketChannel channel, QmpAddress address) {
        this(channel, address, channel, channel, channel);
    }

    private QmpClient(SocketChannel channel, QmpAddress address, java.nio.channels.ReadableByteChannel in,
                      java.nio.channels.WritableByteChannel out, java.io.Closeable closer) {
        this.channel = channel;
        this.in = in;
        this.out = out;
        this.closer = closer;
        this.address = address;
        this.reader = new Thread(this::readLoop, "qmp-client");
        reader.setDaemon(true);
    }

    /** Connects to {@code unix:PATH}, {@code tcp:HOST:PORT} or a socket path and reads the greeting. */
    public static QmpClient connect(String address) throws IOException {
        return connect(QmpAddress.parse(address), DEFAULT_TIMEOUT);
    }

    /**
     * Connects over TLS ({@code security} from the client's credentials, as QEMU's
     * {@code tls-creds} on a chardev; the server's certificate must be for the address's host) and
     * waits up to {@code timeout} for the greeting.
     */
    public static QmpClient connect(QmpAddress address, Duration timeout, org.livemig.transport.ChannelSecurity security)
            throws IOException {
        if (security.isPlain()) {
            return connect(address, timeout);
        }
        org.livemig.transport.MigrationAddress to = switch (address) {
            case QmpAddress.Unix u -> new org.livemig.transport.MigrationAddress.Unix(u.path());
            case QmpAddress.Tcp t -> new org.livemig.transport.MigrationAddress.Tcp(t.host().isEmpty() ? "127.0.0.1" : t.host(), t.port());
        };
        org.livemig.transport.MigrationConnection conn;
        try {
            conn = security.client(org.livemig.transport.Transports.connect(to, timeout), to);
        } catch (IOException e) {
            throw new IOException("cannot connect to QMP at " + address + ": " + e.getMessage(), e);
        }
        QmpClient client = new QmpClient(null, address, conn.in(), conn.out(), conn::close);
        client.timeout = timeout;
        client.reader.start();
        try {
            client.await(client.greeting, "the QMP greeting");
        } catch (IOException e) {
            client.close();
            throw e;
        }
        return client;
    }

    /** Connects and waits up to {@code timeout} for the greeting. */
    public static QmpClient connect(QmpAddress address, Duration timeout) throws IOException {
        SocketChannel ch = switch (address) {
            case QmpAddress.Unix u -> SocketChannel.open(StandardProtocolFamily.UNIX);
            case QmpAddress.Tcp t -> SocketChannel.open();
        };
        try {
            ch.connect(address.socketAddress());
        } catch (IOException e) {
            ch.close();
            throw new IOException("cannot connect to QMP at " + address + ": " + e.getMessage(), e);
        }
        QmpClient client = new QmpClient(ch, address);
        client.timeout = timeout;
        client.reader.start();
        try {
            client.await(client.greeting, "the QMP greeting");
        } catch (IOException e) {
            client.close();
            throw e;
        }
        return client;
    }

    /** A small helper for arguments: {@code args("uri", "tcp:...", "detach", true)}. */
    public static ObjectNode args(Object... keyValues) {
        if (keyValues.length % 2 != 0) {
            throw new IllegalArgumentException("args needs key/value pairs");
        }
        ObjectNode o = QmpJson.object();
        for (int i = 0; i < keyValues.length; i += 2) {
            String key = (String) keyValues[i];
            Object v = keyValues[i + 1];
            switch (v) {
                case null -> o.putNull(key);
                case JsonNode n -> o.set(key, n);
                case String s -> o.put(key, s);
                case Boolean b -> o.put(key, b);
                case Integer n -> o.put(key, n);
                case Long n -> o.put(key, n);
                case Double n -> o.put(key, n);
                default -> throw new IllegalArgumentException("unsupported argument value " + v.getClass());
            }
        }
        return o;
    }

    /** How long to wait for each reply (default {@link #DEFAULT_TIMEOUT}). */
    public QmpClient timeout(Duration replyTimeout) {
        this.timeout = Objects.requireNonNull(replyTimeout, "replyTimeout");
        return this;
    }

    /** The greeting: {@code {"QMP": {"version": ..., "capabilities": [...]}}}. */
    public ObjectNode greeting() {
        return greeting.getNow(null);
    }

    public QmpAddress address() {
        return address;
    }

    /** {@code qmp_capabilities} without extra capabilities. */
    public void negotiate() throws IOException {
        execute("qmp_capabilities");
    }

    /** {@code qmp_capabilities} enabling out-of-band execution (needed for {@link #executeOob}). */
    public void negotiateOob() throws IOException {
        ObjectNode a = QmpJson.object();
        a.putArray("enable").add("oob");
        execute("qmp_capabilities", a);
    }

    /** Executes a command without arguments; see {@link #execute(String, ObjectNode)}. */
    public JsonNode execute(String command) throws IOException {
        return execute(command, null);
    }

    /**
     * Executes {@code command} and returns its {@code return} value.
     *
     * @throws QmpError when the reply is an error (class and desc as received)
     * @throws IOException when the connection fails or no reply comes within the timeout
     */
    public JsonNode execute(String command, ObjectNode arguments) throws IOException {
        return unwrap(request("execute", command, arguments));
    }

    /** As {@link #execute(String, ObjectNode)}, sent with {@code exec-oob}. */
    public JsonNode executeOob(String command, ObjectNode arguments) throws IOException {
        return unwrap(request("exec-oob", command, arguments));
    }

    /** Sends a command and returns the whole reply ({@code return} or {@code error}, with {@code id}). */
    public ObjectNode request(String command, ObjectNode arguments) throws IOException {
        return request("execute", command, arguments);
    }

    private ObjectNode request(String execKey, String command, ObjectNode arguments) throws IOException {
        return await(send(execKey, command, arguments), "the reply to " + command);
    }

    /**
     * Sends a command without waiting; the future completes with the whole reply. The request
     * carries an {@code id} of the client's choosing.
     */
    public CompletableFuture<ObjectNode> send(String execKey, String command, ObjectNode arguments) throws IOException {
        String id = "livemig-" + nextId.incrementAndGet();
        ObjectNode msg = QmpJson.object();
        msg.put(execKey, command);
        if (arguments != null) {
            msg.set("arguments", arguments);
        }
        msg.put("id", id);
        CompletableFuture<ObjectNode> reply = new CompletableFuture<>();
        synchronized (this) {
            if (failure != null) {
                throw new IOException(failure.getMessage(), failure);
            }
            outstanding.put(id, reply);
        }
        try {
            writeAll(QmpJson.wire(msg));
        } catch (IOException e) {
            synchronized (this) {
                outstanding.remove(id);
            }
            throw e;
        }
        return reply;
    }

    private void writeAll(byte[] bytes) throws IOException {
        ByteBuffer buf = ByteBuffer.wrap(bytes);
        synchronized (writeLock) {
            while (buf.hasRemaining()) {
                out.write(buf);
            }
        }
    }

    private static JsonNode unwrap(ObjectNode reply) {
        if (reply.has("error")) {
            JsonNode error = reply.get("error");
            String cls = error.path("class").asString("GenericError");
            QmpErrorClass errorClass;
            try {
                errorClass = QmpErrorClass.valueOf(cls);
            } catch (IllegalArgumentException e) {
                errorClass = QmpErrorClass.GenericError;
            }
            throw new QmpError(errorClass, error.path("desc").asString(""));
        }
        return reply.get("return");
    }

    /**
     * Calls {@code listener} on the reader thread for every event, as it arrives and before
     * {@link #waitForEvent} or {@link #takeEvents} can return it.
     */
    public void onEvent(Consumer<ObjectNode> listener) {
        eventListeners.add(Objects.requireNonNull(listener, "listener"));
    }

    /** All events received and not yet taken, oldest first; they are removed. */
    public synchronized List<ObjectNode> takeEvents() {
        List<ObjectNode> all = new ArrayList<>(events);
        events.clear();
        return all;
    }

    /** Waits up to {@code timeout} for an event named {@code name} (earlier ones count) and takes it. */
    public ObjectNode waitForEvent(String name, Duration waitTimeout) throws IOException, TimeoutException {
        return waitForEvent(name, e -> true, waitTimeout);
    }

    /**
     * Waits up to {@code timeout} for an event named {@code name} matching {@code filter}, taking
     * it (and only it) from the kept events. Events already received count.
     */
    public synchronized ObjectNode waitForEvent(String name, Predicate<ObjectNode> filter, Duration waitTimeout)
            throws IOException, TimeoutException {
        long deadline = System.nanoTime() + waitTimeout.toNanos();
        while (true) {
            for (Iterator<ObjectNode> it = events.iterator(); it.hasNext(); ) {
                ObjectNode e = it.next();
                if (name.equals(e.path("event").asString()) && filter.test(e)) {
                    it.remove();
                    return e;
                }
            }
            if (failure != null) {
                throw new IOException("QMP connection lost while waiting for event " + name, failure);
            }
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                throw new TimeoutException("no QMP event " + name + " within " + waitTimeout);
            }
            try {
                TimeUnit.NANOSECONDS.timedWait(this, left);
            } catch (InterruptedException ie) {
                Thread.currentThread().interrupt();
                throw new IOException("interrupted waiting for QMP event " + name, ie);
            }
        }
    }

    /** True until the connection closes or fails. */
    public synchronized boolean isConnected() {
        return failure == null;
    }

    @Override
    public void close() {
        try {
            closer.close();
        } catch (IOException e) {
            LOG.log(Level.DEBUG, () -> "QMP client close: " + e.getMessage());
        }
        fail(new IOException("QMP connection to " + address + " closed"));
    }

    private <T> T await(CompletableFuture<T> future, String what) throws IOException {
        Duration t = timeout;
        try {
            return future.get(t.toNanos(), TimeUnit.NANOSECONDS);
        } catch (TimeoutException e) {
            throw new IOException("no " + what + " from " + address + " within " + t, e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted waiting for " + what, e);
        } catch (ExecutionException e) {
            Throwable cause = e.getCause();
            throw cause instanceof IOException io ? new IOException(io.getMessage(), io)
                    : new IOException("waiting for " + what + ": " + cause, cause);
        }
    }

    // ---------------------------------------------------------------- reader thread

    private void readLoop() {
        JsonStreamParser parser = new JsonStreamParser(new JsonStreamParser.Sink() {
            @Override
            public void value(JsonNode value) {
                onMessage(value);
            }

            @Override
            public void error(String desc) {
                LOG.log(Level.WARNING, "unparseable QMP output from " + address + ": " + desc);
            }
        }, 64 << 20, 1 << 22);
        ByteBuffer buf = ByteBuffer.allocate(64 * 1024);
        try {
            while (true) {
                buf.clear();
                int n = in.read(buf);
                if (n < 0) {
                    fail(new IOException("QMP connection to " + address + " closed by the peer"));
                    return;
                }
                buf.flip();
                parser.feed(buf);
            }
        } catch (IOException e) {
            fail(new IOException("QMP connection to " + address + " failed: " + e.getMessage(), e));
        }
    }

    private void onMessage(JsonNode value) {
        if (!(value instanceof ObjectNode msg)) {
            LOG.log(Level.WARNING, "QMP output that is not an object: " + value);
            return;
        }
        if (msg.has("QMP")) {
            greeting.complete(msg);
        } else if (msg.has("event")) {
            // Listeners first: whoever takes the event from the queue can rely on every
            // listener having seen it already.
            for (Consumer<ObjectNode> l : eventListeners) {
                try {
                    l.accept(msg);
                } catch (RuntimeException e) {
                    LOG.log(Level.WARNING, "QMP event listener failed", e);
                }
            }
            synchronized (this) {
                if (events.size() == MAX_KEPT_EVENTS) {
                    events.poll();
                }
                events.add(msg);
                notifyAll();
            }
        } else if (msg.has("return") || msg.has("error")) {
            CompletableFuture<ObjectNode> reply;
            synchronized (this) {
                JsonNode id = msg.get("id");
                if (id != null && id.isString()) {
                    reply = outstanding.remove(id.stringValue());
                } else {
                    // A reply without our id (e.g. to input the server could not parse): oldest first.
                    Iterator<CompletableFuture<ObjectNode>> it = outstanding.values().iterator();
                    reply = it.hasNext() ? it.next() : null;
                    if (reply != null) {
                        it.remove();
                    }
                }
            }
            if (reply != null) {
                reply.complete(msg);
            } else {
                LOG.log(Level.WARNING, "unexpected QMP reply: " + QmpJson.write(msg));
            }
        } else {
            LOG.log(Level.WARNING, "unknown QMP message: " + QmpJson.write(msg));
        }
    }

    private void fail(IOException e) {
        List<CompletableFuture<ObjectNode>> pending;
        synchronized (this) {
            if (failure != null) {
                return;
            }
            failure = e;
            pending = new ArrayList<>(outstanding.values());
            outstanding.clear();
            notifyAll();
        }
        greeting.completeExceptionally(e);
        pending.forEach(f -> f.completeExceptionally(e));
    }
}
