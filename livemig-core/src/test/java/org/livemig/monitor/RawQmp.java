package org.livemig.monitor;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.SocketAddress;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import tools.jackson.databind.JsonNode;
import tools.jackson.databind.node.ObjectNode;

/**
 * A byte-level QMP test client: sends exactly the bytes a test gives and hands back each line the
 * server writes, without its CR LF. Every server message must be exactly one line ending in CR LF,
 * as QEMU writes them (a line without the CR comes back prefixed "MISSING CR: ").
 */
final class RawQmp implements AutoCloseable {
    private static final String EOF = "\u0000EOF";
    private final SocketChannel ch;
    private final BlockingQueue<String> lines = new LinkedBlockingQueue<>();
    private final Thread reader;

    private RawQmp(SocketChannel ch) {
        this.ch = ch;
        this.reader = new Thread(this::readLoop, "raw-qmp-reader");
        reader.setDaemon(true);
        reader.start();
    }

    static RawQmp connect(SocketAddress address) throws IOException {
        SocketChannel ch = address instanceof UnixDomainSocketAddress
                ? SocketChannel.open(StandardProtocolFamily.UNIX) : SocketChannel.open();
        ch.connect(address);
        return new RawQmp(ch);
    }

    /** Connects, checks the greeting arrives, sends qmp_capabilities (optionally with oob). */
    static RawQmp negotiated(SocketAddress address, boolean oob) throws IOException, InterruptedException {
        RawQmp q = connect(address);
        q.nextLine(); // greeting
        String reply = q.exchange(oob
                ? "{\"execute\": \"qmp_capabilities\", \"arguments\": {\"enable\": [\"oob\"]}}"
                : "{\"execute\": \"qmp_capabilities\"}");
        if (!reply.equals("{\"return\": {}}")) {
            throw new AssertionError("negotiation failed: " + reply);
        }
        return q;
    }

    void send(String raw) throws IOException {
        send(raw.getBytes(StandardCharsets.UTF_8));
    }

    void send(byte[] raw) throws IOException {
        ByteBuffer buf = ByteBuffer.wrap(raw);
        while (buf.hasRemaining()) {
            ch.write(buf);
        }
    }

    /** Sends one line and returns the next line from the server. */
    String exchange(String json) throws IOException, InterruptedException {
        send(json + "\n");
        return nextLine();
    }

    /** The next line the server wrote, waiting at most 10 s. */
    String nextLine() throws InterruptedException {
        String line = lines.poll(10, TimeUnit.SECONDS);
        if (line == null) {
            throw new AssertionError("no QMP output within 10 s");
        }
        if (line == EOF) {
            lines.add(EOF);
            throw new AssertionError("QMP server closed the connection");
        }
        return line;
    }

    ObjectNode next() throws InterruptedException {
        JsonNode n = QmpJson.parse(nextLine());
        return (ObjectNode) n;
    }

    /** A line if one arrives within {@code millis}, else null (for asserting that nothing came yet). */
    String pollLine(long millis) throws InterruptedException {
        String line = lines.poll(millis, TimeUnit.MILLISECONDS);
        if (line == EOF) {
            lines.add(EOF);
        }
        return line;
    }

    /** True once the server closed the connection (after all its lines were taken). */
    boolean closedByPeer() {
        return lines.peek() == EOF;
    }

    private void readLoop() {
        ByteBuffer buf = ByteBuffer.allocate(64 * 1024);
        ByteArrayOutputStream line = new ByteArrayOutputStream();
        try {
            while (true) {
                buf.clear();
                int n = ch.read(buf);
                if (n < 0) {
                    break;
                }
                for (int i = 0; i < n; i++) {
                    byte b = buf.get(i);
                    if (b == '\n') {
                        String text = line.toString(StandardCharsets.UTF_8);
                        // QEMU ends every message with CR LF; so must we.
                        lines.add(text.endsWith("\r") ? text.substring(0, text.length() - 1)
                                : "MISSING CR: " + text);
                        line.reset();
                    } else {
                        line.write(b);
                    }
                }
            }
        } catch (IOException e) {
            // connection reset: same as closed
        }
        lines.add(EOF);
    }

    @Override
    public void close() throws IOException {
        ch.close();
    }
}
