package org.livemig.transport.tls;

import java.io.IOException;
import java.lang.System.Logger.Level;
import java.math.BigInteger;
import java.net.InetAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.SecureRandom;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.time.Instant;
import java.util.Date;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicBoolean;
import org.bouncycastle.asn1.DEROctetString;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.GeneralNames;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;
import org.livemig.stream.MigrationFile;
import org.livemig.transport.ChannelSecurity;
import org.livemig.transport.MigrationAddress;
import org.livemig.transport.MigrationConnection;
import org.livemig.transport.MigrationListener;
import org.livemig.transport.Transports;

/**
 * Compiles the TLS paths before a migration needs them: once TLS credentials exist in a process,
 * a background thread ({@value #THREAD_NAME}, lowest priority) sends some hundreds of MiB over
 * loopback TLS with throwaway credentials of the same kind, written and read as a migration's
 * stream is (headers and pages through {@link MigrationFile}). Cold, the JDK's AES-GCM runs
 * interpreted until C2 compiles its intrinsics, and a first TLS migration of 1 GiB ran at a tenth
 * of its warm speed here.
 */
public final class TlsWarmUp {
    public static final String THREAD_NAME = "livemig-tls-warm-up";
    private static final System.Logger LOG = System.getLogger(TlsWarmUp.class.getName());
    private static final long BYTES_PER_ROUND = 128L << 20;
    private static final int ROUNDS = 3;
    private static final int HANDSHAKES = 16;
    private static final long QUIET_WAIT_MILLIS = 3000;
    private static final long QUIET_WINDOW_MILLIS = 100;
    private static final int PAGE = 4096;
    private static final long RAM_BYTES = 4L << 20;
    private static final byte FILL = 0x5a;
    /** A header with no page after it, sent alone in a record every {@value #SMALL_RECORD_EVERY} pages. */
    private static final long NO_PAGE = -1;
    private static final int SMALL_RECORD_EVERY = 512;
    private static final AtomicBoolean X509_STARTED = new AtomicBoolean();
    private static final AtomicBoolean PSK_STARTED = new AtomicBoolean();

    private TlsWarmUp() {}

    /** Starts the warm-up for {@code credentials}' kind in the background, once per kind and process. */
    public static void startOnce(TlsCredentials credentials) {
        boolean x509 = credentials instanceof TlsCredentials.X509;
        if (!(x509 ? X509_STARTED : PSK_STARTED).compareAndSet(false, true)) {
            return;
        }
        Thread t = Thread.ofPlatform().name(THREAD_NAME).daemon(true).unstarted(() -> warm(credentials));
        t.setPriority(Thread.MIN_PRIORITY);
        t.start();
    }

    /**
     * The warm-up for {@code credentials}' kind now, on the calling thread (a machine process
     * starting with TLS credentials runs it in the background once its monitor listens, before
     * its scratch migrations), once per kind and process.
     */
    public static void runOnce(TlsCredentials credentials) {
        boolean x509 = credentials instanceof TlsCredentials.X509;
        if ((x509 ? X509_STARTED : PSK_STARTED).compareAndSet(false, true)) {
            warm(credentials);
        }
    }

    private static void warm(TlsCredentials like) {
        long t0 = System.nanoTime();
        try {
            Sides sides = like instanceof TlsCredentials.X509 x ? x509Sides(keyAlgorithm(x), keyBits(x)) : pskSides();
            for (int round = 0; round < ROUNDS; round++) {
                round(sides, BYTES_PER_ROUND);
            }
            // The handshake too: with RSA keys a cold one took a tenth of a second of the migration.
            for (int i = 0; i < HANDSHAKES; i++) {
                round(sides, PAGE);
            }
            awaitCompilersQuiet();
            LOG.log(Level.DEBUG, () -> String.format("TLS warm-up (%s) took %d ms", like instanceof TlsCredentials.X509 ? "x509" : "psk",
                    (System.nanoTime() - t0) / 1_000_000));
        } catch (Exception e) {
            if (e instanceof InterruptedException) {
                Thread.currentThread().interrupt();
            }
            LOG.log(Level.DEBUG, "TLS warm-up stopped: " + e);
        }
    }

    /**
     * Waits, at most {@value #QUIET_WAIT_MILLIS} ms, until the JIT compilers' threads have used
     * no more than a clock tick of CPU in each of two windows of {@value #QUIET_WINDOW_MILLIS} ms:
     * C2 compiles the warm-up's hottest methods (the record ciphers) for up to a second each after
     * their last use, and a migration started meanwhile shared the CPU with it (the scratch
     * migrations start after this). Returns at once without Linux's /proc.
     */
    static void awaitCompilersQuiet() throws InterruptedException {
        long deadline = System.nanoTime() + QUIET_WAIT_MILLIS * 1_000_000L;
        long last = compilerTicks();
        int quiet = 0;
        while (last >= 0 && quiet < 2 && System.nanoTime() < deadline) {
            Thread.sleep(QUIET_WINDOW_MILLIS);
            long now = compilerTicks();
            quiet = now >= last && now - last <= 1 ? quiet + 1 : 0;
            last = now;
        }
    }

    /** CPU clock ticks the compiler threads of this process have used, or -1 without /proc. */
    static long compilerTicks() {
        Path tasks = Path.of("/proc/self/task");
        long ticks = 0;
        try (var dirs = Files.list(tasks)) {
            for (Path t : (Iterable<Path>) dirs::iterator) {
                try {
                    String stat = Files.readString(t.resolve("stat"));
                    int open = stat.indexOf('(');
                    int close = stat.lastIndexOf(')');
                    String name = stat.substring(open + 1, close);
                    if (!name.startsWith("C1 Compiler") && !name.startsWith("C2 Compiler")) {
                        continue;
                    }
                    // after the name: state, then fields 4..; utime and stime are fields 14 and 15
                    String[] f = stat.substring(close + 2).split(" ");
                    ticks += Long.parseLong(f[11]) + Long.parseLong(f[12]);
                } catch (IOException | RuntimeException e) {
                    // a thread that ended meanwhile
                }
            }
        } catch (IOException | RuntimeException e) {
            return -1;
        }
        return ticks;
    }

    /** The two ends of a throwaway TLS connection. */
    record Sides(ChannelSecurity server, ChannelSecurity client) {}

    /** The algorithm of the real credentials' key (or of their CA's, for a client without one): the handshake's signatures. */
    private static String keyAlgorithm(TlsCredentials.X509 x) {
        if (x.key() != null) {
            return x.key().getAlgorithm();
        }
        return x.trusted().isEmpty() ? "EC" : x.trusted().get(0).getPublicKey().getAlgorithm();
    }

    private static int keyBits(TlsCredentials.X509 x) {
        java.security.Key k = x.key() != null ? x.key() : x.trusted().isEmpty() ? null : x.trusted().get(0).getPublicKey();
        return k instanceof java.security.interfaces.RSAKey r ? r.getModulus().bitLength() : 2048;
    }

    /**
     * Throwaway X.509 ends with a key of {@code algorithm} ("RSA" of {@code rsaBits}, else EC
     * P-256), each with a certificate and checking the other's, as verify-peer does.
     */
    static Sides x509Sides(String algorithm, int rsaBits) throws Exception {
        boolean rsa = "RSA".equals(algorithm);
        KeyPairGenerator g = KeyPairGenerator.getInstance(rsa ? "RSA" : "EC");
        g.initialize(rsa ? Math.max(2048, Math.min(rsaBits, 8192)) : 256);
        KeyPair kp = g.generateKeyPair();
        X500Name name = new X500Name("CN=127.0.0.1");
        Instant now = Instant.now();
        JcaX509v3CertificateBuilder b = new JcaX509v3CertificateBuilder(name, BigInteger.ONE,
                Date.from(now.minusSeconds(3600)), Date.from(now.plusSeconds(3600)), name, kp.getPublic());
        b.addExtension(Extension.subjectAlternativeName, false, new GeneralNames(new GeneralName(GeneralName.iPAddress,
                new DEROctetString(InetAddress.getLoopbackAddress().getAddress()))));
        X509Certificate cert = new JcaX509CertificateConverter().getCertificate(
                b.build(new JcaContentSignerBuilder(rsa ? "SHA256withRSA" : "SHA256withECDSA").build(kp.getPrivate())));
        Duration timeout = Duration.ofSeconds(30);
        return new Sides(
                TlsChannelSecurity.of(new TlsCredentials.X509(TlsEndpoint.SERVER, List.of(cert), kp.getPrivate(),
                        List.of(cert), true), null, null, timeout),
                TlsChannelSecurity.of(new TlsCredentials.X509(TlsEndpoint.CLIENT, List.of(cert), kp.getPrivate(),
                        List.of(cert), true), null, null, timeout));
    }

    static Sides pskSides() throws IOException {
        byte[] key = new byte[32];
        new SecureRandom().nextBytes(key);
        Duration timeout = Duration.ofSeconds(30);
        return new Sides(
                TlsChannelSecurity.of(new TlsCredentials.Psk(TlsEndpoint.SERVER, "warm-up", Map.of("warm-up", key)),
                        null, null, timeout),
                TlsChannelSecurity.of(new TlsCredentials.Psk(TlsEndpoint.CLIENT, "warm-up", Map.of("warm-up", key)),
                        null, null, timeout));
    }

    /** One connection carrying {@code bytes} of pages: the bytes of pages that arrived intact (all of them when all did). */
    static long round(Sides sides, long bytes) throws Exception {
        ChannelSecurity server = sides.server();
        ChannelSecurity client = sides.client();
        Duration timeout = Duration.ofSeconds(30);
        try (MigrationListener l = Transports.listen(MigrationAddress.parse("tcp:127.0.0.1:0"))) {
            // Through MigrationFile, as a migration's streams go: its writes and reads then have
            // met TLS channels as well as the plain sockets of the scratch migrations, and stay
            // compiled for both when a TLS migration comes (else they deoptimize and C2 compiles
            // them again during the migration).
            java.util.concurrent.atomic.AtomicLong received = new java.util.concurrent.atomic.AtomicLong();
            Thread reader = Thread.ofPlatform().name(THREAD_NAME + "-reader").daemon(true).start(() -> {
                try (MigrationConnection c = server.server(l.accept()); Arena arena = Arena.ofConfined()) {
                    MigrationFile f = MigrationFile.forReading(c.in());
                    MemorySegment ram = arena.allocate(RAM_BYTES, PAGE);
                    for (long expected = 0; !f.atEof(); expected += PAGE) {
                        long offset = f.getBe64();
                        if (offset == NO_PAGE) {
                            expected -= PAGE;
                            continue;
                        }
                        f.readInto(ram, offset & (RAM_BYTES - 1), PAGE);
                        if (offset != (expected & (RAM_BYTES - 1)) || ram.get(ValueLayout.JAVA_BYTE, offset & (RAM_BYTES - 1)) != FILL) {
                            return;
                        }
                        received.addAndGet(PAGE);
                    }
                } catch (IOException e) {
                    // the writer closed
                }
            });
            try (MigrationConnection c = client.client(Transports.connect(l.boundAddress(), timeout), l.boundAddress());
                 Arena arena = Arena.ofConfined()) {
                MemorySegment ram = arena.allocate(RAM_BYTES, PAGE);
                ram.fill(FILL);
                MigrationFile f = MigrationFile.forWriting(c.out());
                for (long sent = 0; sent < bytes; sent += PAGE) {
                    if (sent % (SMALL_RECORD_EVERY * PAGE) == 0) {
                        // A record of a few bytes now and then, as a migration's sections and
                        // small flushes make: the ciphers' short-input paths get compiled too
                        // (a real migration's first small record sent them back to the interpreter).
                        f.flush();
                        f.putBe64(NO_PAGE);
                        f.flush();
                    }
                    long offset = sent & (RAM_BYTES - 1);
                    f.putBe64(offset);
                    f.putRam(ram, offset, PAGE);
                }
                f.flush();
            }
            reader.join(30_000);
            return received.get();
        }
    }
}
