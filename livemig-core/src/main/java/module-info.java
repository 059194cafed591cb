/**
 * livemig: live migration of machines in the JVM, QEMU's wire format and monitor protocol.
 *
 * <p>Exports only {@code org.livemig.api}, the library API; everything else is internal and may
 * change (the command line and the benchmarks use it from the class path).
 */
module org.livemig.core {
    requires java.management; // x-livemig-process: heap after GC, threads, buffer pools
    requires jdk.management; // JitDirectives: HotSpot's flags (HotSpotDiagnosticMXBean)
    requires java.naming;
    requires jdk.jfr;
    requires jdk.unsupported; // direct-io: com.sun.nio.file.ExtendedOpenOption.DIRECT (O_DIRECT)
    requires tools.jackson.databind;
    requires com.github.luben.zstd_jni;
    requires org.bouncycastle.provider;
    requires org.bouncycastle.util;
    requires org.bouncycastle.pkix;
    requires org.bouncycastle.tls;

    exports org.livemig.api;
}
