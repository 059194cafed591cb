package org.livemig.relay;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.time.Duration;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Consumer;

import org.livemig.analyze.Analysis;
import org.livemig.analyze.Analyzer;
import org.livemig.analyze.StreamVisitor;
import org.livemig.stream.StreamFormatException;
import org.livemig.transport.MigrationAddress;
import org.livemig.transport.MigrationConnection;
import org.livemig.transport.MigrationListener;
import org.livemig.transport.Transports;

/**
 * Called on one thread, which it blocks. Is the destination of one live migration: listens,
 * accepts the source, and analyzes the stream as it arrives, answering a return path with a
 * {@link ReturnPathResponder} so that a QEMU source with the return-path capability completes.
 */
public final class LiveAnalyzer {
    private LiveAnalyzer() {}

    /**
     * Listens on {@code address}, accepts one source (waiting at most {@code acceptTimeout}),
     * and analyzes its stream to the end.
     *
     * @param log gets one line when listening (with the port really bound) and one on accept
     * @throws StreamFormatException if the stream is malformed (the source, if it opened a
     *                               return path, is sent SHUT 1 first)
     * @throws IOException           if nothing connected in time or the connection failed
     */
    public static Analysis accept(MigrationAddress address, Duration acceptTimeout, Analyzer.Options options,
                                  Consumer<String> log) throws IOException {
        return accept(address, acceptTimeout, options, log, org.livemig.transport.ChannelSecurity.PLAIN, null);
    }

    /** As above, with {@code observer} also told every record, after the return path's answer. */
    public static Analysis accept(MigrationAddress address, Duration acceptTimeout, Analyzer.Options options,
                                  Consumer<String> log, StreamVisitor observer) throws IOException {
        return accept(address, acceptTimeout, options, log, org.livemig.transport.ChannelSecurity.PLAIN, observer);
    }

    /** As above, the source's connection secured by {@code security} (TLS) before it is read. */
    public static Analysis accept(MigrationAddress address, Duration acceptTimeout, Analyzer.Options options,
                                  Consumer<String> log, org.livemig.transport.ChannelSecurity security) throws IOException {
        return accept(address, acceptTimeout, options, log, security, null);
    }

    /**
     * As above, the source's connection secured by {@code security} (TLS) before it is read, and
     * {@code observer} (if not null) also told every record, after the return path's answer.
     */
    public static Analysis accept(MigrationAddress address, Duration acceptTimeout, Analyzer.Options options,
                                  Consumer<String> log, org.livemig.transport.ChannelSecurity security,
                                  StreamVisitor observer) throws IOException {
        MigrationConnection conn;
        try (MigrationListener listener = Transports.listen(address)) {
            log.accept("listening on " + listener.boundAddress().uri());
            AtomicBoolean accepted = new AtomicBoolean();
            ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor(
                    r -> Thread.ofPlatform().name("analyze-accept-timeout").daemon().unstarted(r));
            timer.schedule(() -> {
                if (!accepted.get()) {
                    try {
                        listener.close();
                    } catch (IOException e) {
                        // closing is best effort; accept() fails either way
                    }
                }
            }, acceptTimeout.toMillis(), TimeUnit.MILLISECONDS);
            try {
                conn = listener.accept();
                accepted.set(true);
            } catch (IOException e) {
                throw new IOException("no source connected to " + listener.boundAddress().uri() + " within "
                        + acceptTimeout.toSeconds() + " s", e);
            } finally {
                timer.shutdownNow();
            }
        }
        log.accept("accepted " + conn.description());
        MigrationConnection secured = security.server(conn);
        if (!security.isPlain()) {
            log.accept("TLS established with " + secured.description());
        }
        try (secured) {
            ReturnPathResponder responder = new ReturnPathResponder(secured.out());
            try {
                return Analyzer.analyze(secured.in(), options,
                        observer == null ? responder : StreamVisitor.tee(responder, observer));
            } catch (StreamFormatException e) {
                responder.finishQuietly(1);
                throw e;
            } catch (UncheckedIOException e) {
                throw e.getCause();
            }
        }
    }
}
