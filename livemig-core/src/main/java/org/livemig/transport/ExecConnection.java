package org.livemig.transport;

import java.io.IOException;
import java.io.InputStream;
import java.io.InterruptedIOException;
import java.io.OutputStream;
import java.lang.ProcessBuilder.Redirect;
import java.nio.ByteBuffer;
import java.nio.channels.GatheringByteChannel;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * An {@code exec:} connection: {@code /bin/sh -c COMMAND}, the source writing the stream to its
 * standard input (its output discarded), the destination reading its standard output (its input
 * empty). Its standard error is kept (the last few KiB) for error messages.
 *
 * <p>Threads: one reader or writer; {@link #shutdown()} from any thread kills the command and
 * everything it started, which closes the pipes under a blocked reader or writer.
 * {@link #close()} waits a bounded time for the command to exit, then kills it.
 */
final class ExecConnection extends AbstractConnection {
    static final Duration DEFAULT_EXIT_TIMEOUT = Duration.ofSeconds(10);
    private static final int STDERR_TAIL_BYTES = 4096;
    private static final int COPY_CHUNK = 64 * 1024;

    private final MigrationAddress.Exec addr;
    private final Process process;
    private final boolean writing;
    private final Duration exitTimeout;
    private final ReadableByteChannel in;
    private final WritableByteChannel out;
    private final StderrTail stderr;
    /** Set by the reading thread when the command's output ended. */
    private volatile boolean reachedEof;
    /** Set once this side killed the command (its exit status then says nothing). */
    private volatile boolean killed;
    /** Set by the writing thread while it is inside a write to the command. */
    private volatile boolean writeInProgress;

    private ExecConnection(MigrationAddress.Exec addr, Process process, boolean writing, Duration exitTimeout) {
        super(addr.uri() + " (pid " + process.pid() + (writing ? ", writing)" : ", reading)"));
        this.addr = addr;
        this.process = process;
        this.writing = writing;
        this.exitTimeout = exitTimeout;
        if (writing) {
            this.in = missingDirection(addr.uri() + " is written by the source; it has no incoming stream");
            this.out = new Output(process.getOutputStream());
        } else {
            this.in = input(new Input(process.getInputStream()));
            this.out = missingDirection(addr.uri() + " is read by the destination; it has no outgoing stream");
        }
        this.stderr = new StderrTail(process.getErrorStream(), process.pid());
    }

    /** Starts the command; {@code writing} for the source side. */
    static ExecConnection start(MigrationAddress.Exec addr, boolean writing, Duration exitTimeout) throws IOException {
        ProcessBuilder pb = new ProcessBuilder("/bin/sh", "-c", addr.command());
        if (writing) {
            pb.redirectOutput(Redirect.DISCARD);
        } else {
            pb.redirectInput(Redirect.from(new java.io.File("/dev/null")));
        }
        pb.redirectError(Redirect.PIPE);
        Process p;
        try {
            p = pb.start();
        } catch (IOException e) {
            throw new IOException("cannot start " + addr.uri() + ": " + e.getMessage(), e);
        }
        return new ExecConnection(addr, p, writing, exitTimeout);
    }

    @Override
    public ReadableByteChannel in() {
        return in;
    }

    @Override
    public WritableByteChannel out() {
        return out;
    }

    /** The command's process, for tests. */
    Process process() {
        return process;
    }

    @Override
    void doShutdown() {
        killTree();
    }

    /**
     * Kills the shell and every process under it. The list is taken before the shell dies (its
     * children are then re-parented and out of reach); a child the shell forks in the instant
     * between listing and killing survives, and keeps the pipe open until it exits.
     */
    private void killTree() {
        killed = true;
        List<ProcessHandle> descendants = process.descendants().toList();
        // through the handle: Process.destroyForcibly() also closes the pipes, which waits for
        // the lock a blocked writer holds, so it would hang exactly when it is needed
        process.toHandle().destroyForcibly();
        descendants.forEach(ProcessHandle::destroyForcibly);
    }

    @Override
    void doClose() throws IOException {
        if (writeInProgress) {
            // the owner closes while a writer still runs (it should have shut down first): the
            // writer may hold the pipe's lock, blocked on a full pipe; killing the command frees it
            killTree();
        }
        // every write was flushed, so closing loses nothing; it fails only on a pipe the JDK
        // already closed because the command exited, whose status tells more
        closeQuietly(writing ? process.getOutputStream() : process.getInputStream());
        boolean wanted = writing || reachedEof;
        String timedOut = null;
        try {
            if (!wanted) {
                // the destination stopped reading early: the command's output is of no use
                killTree();
            }
            if (!process.waitFor(exitTimeout.toNanos(), TimeUnit.NANOSECONDS)) {
                killTree();
                process.waitFor(5, TimeUnit.SECONDS);
                timedOut = addr.uri() + " did not exit within " + exitTimeout.toMillis()
                        + " ms after its stream was closed; killed it";
            }
            stderr.join(Duration.ofSeconds(1));
        } catch (InterruptedException e) {
            killTree();
            Thread.currentThread().interrupt();
            InterruptedIOException ie = new InterruptedIOException(
                    "interrupted waiting for " + addr.uri() + " to exit; killed it");
            ie.initCause(e);
            throw ie;
        } finally {
            closeQuietly(process.getErrorStream());
        }
        if (isShutdown()) {
            return; // killed on purpose: neither its status nor a broken pipe says anything
        }
        if (timedOut != null) {
            throw new IOException(timedOut + stderr.note());
        }
        if (!killed && process.exitValue() != 0) {
            throw new IOException(addr.uri() + " exited with status " + process.exitValue() + stderr.note());
        }
    }

    /** Why a write failed: the command's exit status and error output, if it has ended. */
    private IOException writeFailed(IOException e) {
        if (isShutdown()) {
            return shutdownError(e);
        }
        String exit = "";
        try {
            if (process.waitFor(200, TimeUnit.MILLISECONDS)) {
                stderr.join(Duration.ofMillis(200));
                exit = " (command exited with status " + process.exitValue() + stderr.note() + ")";
            }
        } catch (InterruptedException ie) {
            Thread.currentThread().interrupt();
        }
        return new IOException("writing to " + addr.uri() + " failed: " + e.getMessage() + exit, e);
    }

    private static void closeQuietly(java.io.Closeable c) {
        try {
            c.close();
        } catch (IOException e) {
            // nothing more to report
        }
    }

    /** The command's standard input as a gathering channel. Owned by the writing thread. */
    private final class Output implements GatheringByteChannel {
        private final OutputStream os;
        private final byte[] scratch = new byte[COPY_CHUNK];

        Output(OutputStream os) {
            this.os = os;
        }

        @Override
        public int write(ByteBuffer src) throws IOException {
            if (isShutdown()) {
                throw shutdownError(null);
            }
            int n = src.remaining();
            writeInProgress = true;
            try {
                if (src.hasArray()) {
                    os.write(src.array(), src.arrayOffset() + src.position(), n);
                    src.position(src.limit());
                } else {
                    while (src.hasRemaining()) {
                        int c = Math.min(scratch.length, src.remaining());
                        src.get(scratch, 0, c);
                        os.write(scratch, 0, c);
                    }
                }
                os.flush();
            } catch (IOException e) {
                throw writeFailed(e);
            } finally {
                writeInProgress = false;
            }
            return n;
        }

        @Override
        public long write(ByteBuffer[] srcs, int offset, int length) throws IOException {
            long total = 0;
            for (int i = offset; i < offset + length; i++) {
                total += write(srcs[i]);
            }
            return total;
        }

        @Override
        public long write(ByteBuffer[] srcs) throws IOException {
            return write(srcs, 0, srcs.length);
        }

        @Override
        public boolean isOpen() {
            return process.isAlive() && !isShutdown();
        }

        @Override
        public void close() throws IOException {
            ExecConnection.this.close();
        }
    }

    /** The command's standard output as a channel. Owned by the reading thread. */
    private final class Input implements ReadableByteChannel {
        private final InputStream is;
        private final byte[] scratch = new byte[COPY_CHUNK];

        Input(InputStream is) {
            this.is = is;
        }

        @Override
        public int read(ByteBuffer dst) throws IOException {
            if (!dst.hasRemaining()) {
                return 0;
            }
            int n;
            if (dst.hasArray()) {
                n = is.read(dst.array(), dst.arrayOffset() + dst.position(), dst.remaining());
                if (n > 0) {
                    dst.position(dst.position() + n);
                }
            } else {
                n = is.read(scratch, 0, Math.min(scratch.length, dst.remaining()));
                if (n > 0) {
                    dst.put(scratch, 0, n);
                }
            }
            if (n < 0) {
                reachedEof = true;
            }
            return n;
        }

        @Override
        public boolean isOpen() {
            return !isShutdown();
        }

        @Override
        public void close() throws IOException {
            ExecConnection.this.close();
        }
    }

    /**
     * Drains the command's standard error on its own thread (so the command never blocks on a
     * full pipe) and keeps the last {@value #STDERR_TAIL_BYTES} bytes.
     */
    private static final class StderrTail implements Runnable {
        private final InputStream is;
        private final Thread thread;
        /** Guarded by this. */
        private final byte[] ring = new byte[STDERR_TAIL_BYTES];
        /** Guarded by this: total bytes seen. */
        private long seen;

        StderrTail(InputStream is, long pid) {
            this.is = is;
            this.thread = Thread.ofPlatform().daemon().name("mig/exec-stderr-" + pid).start(this);
        }

        @Override
        public void run() {
            byte[] b = new byte[1024];
            try {
                int n;
                while ((n = is.read(b)) >= 0) {
                    append(b, n);
                }
            } catch (IOException e) {
                // the stream was closed: the tail is what we have
            }
        }

        private synchronized void append(byte[] b, int n) {
            for (int i = 0; i < n; i++) {
                ring[(int) (seen++ % ring.length)] = b[i];
            }
        }

        void join(Duration d) throws InterruptedException {
            thread.join(d);
        }

        /** {@code ": <last lines of stderr>"}, or empty. */
        synchronized String note() {
            int len = (int) Math.min(seen, ring.length);
            if (len == 0) {
                return "";
            }
            byte[] out = new byte[len];
            long start = seen - len;
            for (int i = 0; i < len; i++) {
                out[i] = ring[(int) ((start + i) % ring.length)];
            }
            String text = new String(out, StandardCharsets.UTF_8).strip().replace('\n', ' ');
            return text.isEmpty() ? "" : ": " + text;
        }
    }
}
