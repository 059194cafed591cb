package org.livemig.testing;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * A TCP tee for tests: forwards every connection it accepts to {@code target}, both ways, and
 * records what the first connection carried from the client (a migration's main stream).
 */
public final class TcpTee implements AutoCloseable {
    private final ServerSocket server;
    private final ByteArrayOutputStream recorded = new ByteArrayOutputStream();
    private final List<Socket> sockets = new CopyOnWriteArrayList<>();

    public TcpTee(int targetPort) throws IOException {
        server = new ServerSocket();
        server.bind(new InetSocketAddress("127.0.0.1", 0));
        Thread.ofPlatform().name("tee-accept").daemon().start(() -> {
            boolean first = true;
            try {
                while (true) {
                    Socket in = server.accept();
                    Socket out = new Socket("127.0.0.1", targetPort);
                    sockets.add(in);
                    sockets.add(out);
                    pump(in.getInputStream(), out.getOutputStream(), first ? recorded : null, out);
                    pump(out.getInputStream(), in.getOutputStream(), null, in);
                    first = false;
                }
            } catch (IOException e) {
                // closed
            }
        });
    }

    private static void pump(InputStream from, OutputStream to, ByteArrayOutputStream copy, Socket toSocket) {
        Thread.ofPlatform().name("tee-pump").daemon().start(() -> {
            byte[] buf = new byte[65536];
            try {
                int n;
                while ((n = from.read(buf)) >= 0) {
                    if (copy != null) {
                        synchronized (copy) {
                            copy.write(buf, 0, n);
                        }
                    }
                    to.write(buf, 0, n);
                }
                toSocket.shutdownOutput();
            } catch (IOException e) {
                // one side went away
            }
        });
    }

    /** Where clients connect: {@code tcp:127.0.0.1:PORT}. */
    public String uri() {
        return "tcp:127.0.0.1:" + server.getLocalPort();
    }

    /** What the first connection's client sent so far. */
    public byte[] recorded() {
        synchronized (recorded) {
            return recorded.toByteArray();
        }
    }

    @Override
    public void close() throws IOException {
        server.close();
        for (Socket s : sockets) {
            s.close();
        }
    }
}
