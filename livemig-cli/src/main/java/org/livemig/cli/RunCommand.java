package org.livemig.cli;

import java.nio.file.Path;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Callable;
import org.livemig.machine.Machine;
import org.livemig.machine.MachineListener;
import org.livemig.machine.RunState;
import org.livemig.migration.Migration;
import org.livemig.migration.WarmUp;
import org.livemig.monitor.MigrationCommands;
import org.livemig.monitor.MachineMonitor;
import org.livemig.monitor.QmpServer;
import org.livemig.monitor.RunStateCommands;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code livemig run}: one long-lived machine process, as {@code qemu-system} is: the guest runs
 * (or waits for {@code --incoming}), and a QMP monitor drives it until {@code quit}.
 */
@Command(name = "run", mixinStandardHelpOptions = true,
        description = {"Run a machine, driven over QMP, optionally waiting for an incoming migration.",
            "Once its QMP sockets listen it prints one line on stderr, 'livemig run: ready ...'; with --daemonize it returns"
                    + " then, leaving the machine running in the background, so that a script's next command finds the sockets."},
        exitCodeListHeading = ExitCodes.HEADING, footer = "",
        exitCodeList = {"0:quit (the QMP command), or with --daemonize: the machine is ready in the background",
                "1:an incoming migration failed and exit-on-error was on (as QEMU); or the machine could not start",
                ExitCodes.USAGE_TEXT + "; also a --ram this host cannot back",
                ExitCodes.FILE_TEXT,
                "128+N:killed by signal N (as the shell reports it)"})
final class RunCommand implements Callable<Integer> {
    @Mixin
    MachineOptions machine = new MachineOptions();

    @Option(names = "--name", description = "Machine name (query-name).")
    String name;

    @Option(names = "--incoming", description = "URI to listen on for an incoming migration, or 'defer' to wait for migrate-incoming.")
    String incoming;

    @Option(names = "--qmp", description = "QMP monitor address: unix:PATH or tcp:HOST:PORT (repeatable).")
    java.util.List<String> qmp = new java.util.ArrayList<>();

    @Option(names = "--object", paramLabel = "TYPE,id=ID,...",
            description = "Create a credential or authorization object as QEMU's -object (repeatable), for example "
                    + "tls-creds-x509,id=tls0,endpoint=server,dir=DIR; tls-creds-psk,id=tls0,endpoint=client,dir=DIR,username=NAME; "
                    + "authz-simple,id=auth0,identity=DN; authz-list,id=auth0,policy=deny,rules.0.match=CN=*,... (see the README's TLS section).")
    java.util.List<String> objects = new java.util.ArrayList<>();

    @Option(names = "--qmp-allow-insecure-tcp",
            description = "Allow a plain (unencrypted, unauthenticated) QMP TCP socket on a non-loopback address; a warning is printed.")
    boolean qmpAllowInsecureTcp;

    @Option(names = "-S", description = "Do not start the guest (after an incoming migration too), as QEMU's -S.")
    boolean noAutostart;

    @Option(names = "--postcopy-backend", defaultValue = "auto",
            description = "Demand paging for incoming postcopy: auto (userfaultfd where allowed), checked, userfaultfd.")
    String postcopyBackend;

    @Option(names = "--postcopy-request-priority", defaultValue = "0",
            description = "SCHED_FIFO priority (1-99) for the threads a vCPU waiting on a postcopy page depends on (mig/src/rp_thr,"
                    + " mig/dst/fault, mig/dst/preempt); needs CAP_SYS_NICE or RLIMIT_RTPRIO. 0 (default): normal scheduling.")
    int postcopyRequestPriority;

    @Option(names = "--daemonize",
            description = "As QEMU's -daemonize: return once the machine is ready (its QMP sockets listen), leaving it running"
                    + " in the background, detached from the terminal; its later output is discarded.")
    boolean daemonize;

    @Option(names = "--pidfile", paramLabel = "FILE",
            description = "As QEMU's -pidfile: write the machine's process id to FILE once it is ready (locked while it runs,"
                    + " removed when it exits); a FILE locked by a running machine is refused.")
    Path pidfile;

    /** Set in the process a --daemonize started: it reports readiness to its parent on stdout. */
    @Option(names = "--x-daemon-child", hidden = true)
    boolean daemonChild;

    @Option(names = "--x-fault-outgoing", hidden = true, description = "Test hook: faults injected into outgoing migrations (e.g. cut:after=1m).")
    String faultOutgoing;

    @Option(names = "--x-fault-incoming", hidden = true, description = "Test hook: faults injected into incoming migrations.")
    String faultIncoming;

    @Option(names = "--trace", paramLabel = "FILE.jfr",
            description = "Record livemig's trace events (status changes, passes, switchovers, page requests, multifd packets,"
                    + " COLO checkpoints, QMP commands) with Flight Recorder into FILE; read it with `livemig trace FILE`.")
    Path trace;

    @Option(names = "--serial", paramLabel = "file:PATH|stdio|none", defaultValue = "none",
            description = "Where the guest's serial output goes, as QEMU's -serial (default: ${DEFAULT-VALUE}).")
    String serial;
    @Option(names = "--monitor-pace", defaultValue = "1000", paramLabel = "N",
            description = "While this machine migrates out, in-band QMP commands start at most N a second, all clients together"
                    + " taking turns, so that clients polling as fast as they can leave the CPU to the migration (default:"
                    + " ${DEFAULT-VALUE}; 0: no limit). Out-of-band commands are never paced.")
    int monitorPace;

    @Option(names = "--warm-up", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = "At startup, in the background, run seven small scratch migrations (precopy, postcopy, multifd) so the first real one "
                    + "runs compiled code; gives way to a real migration at once (default: on; --no-warm-up skips it).")
    boolean warmUp;

    /** Test hook: rounds of the startup warm-up, so that a test can find it still running. */
    @Option(names = "--x-warm-up-rounds", hidden = true, defaultValue = "" + WarmUp.DEFAULT_ROUNDS)
    int warmUpRounds;

    @Spec
    CommandSpec spec;
    /**
     * The monitor gives full control of the machine: a TCP socket off loopback without TLS
     * ({@code tls-creds=ID} on the address, as QEMU's chardev) needs
     * {@code --qmp-allow-insecure-tcp}, and gets a warning.
     */
    private void checkQmpAddress(String addr) throws java.net.UnknownHostException {
        if (org.livemig.monitor.QmpAddress.tlsCredsOf(addr) != null) {
            return; // TLS: encrypted, and the client checked as the credentials say
        }
        org.livemig.monitor.QmpAddress a = org.livemig.monitor.QmpAddress.parse(addr);
        if (a instanceof org.livemig.monitor.QmpAddress.Tcp tcp) {
            java.net.InetSocketAddress sa = (java.net.InetSocketAddress) tcp.socketAddress();
            if (!sa.getAddress().isLoopbackAddress()) {
                if (!qmpAllowInsecureTcp) {
                    throw new IllegalArgumentException("--qmp " + addr
                            + ": a plain QMP socket on a non-loopback address lets anyone who reaches it control the machine;"
                            + " add --qmp-allow-insecure-tcp to do it anyway");
                }
                System.err.println("livemig run: WARNING: QMP on " + addr + " is plain TCP on a non-loopback address:"
                        + " anyone who reaches it controls this machine");
            }
        }
    }

    @Override
    public Integer call() throws Exception {
        if (qmp.isEmpty() && (daemonize || daemonChild)) {
            throw new IllegalArgumentException("--daemonize needs --qmp: a machine in the background is driven over QMP");
        }
        if (monitorPace < 0) {
            throw new IllegalArgumentException("--monitor-pace must be 0 (no limit) or a number of commands per second, not "
                    + monitorPace);
        }
        if (daemonize) {
            return Daemon.start(spec, pidfile);
        }
        Machine.Config cfg = machine.config(name == null ? "livemig" : name);
        Daemon.PidFile pid = pidfile == null ? null : Daemon.PidFile.lock(pidfile);
        CountDownLatch quit = new CountDownLatch(1);
        SerialSink sink = SerialSink.open(serial);
        TraceRecording recording = trace == null ? null : TraceRecording.start(trace);
        try (Machine m = new Machine(cfg)) {
            m.setSerialOutput(sink);
            Migration mig = new Migration(m);
            // Before the monitor opens: a migration its clients start gives way to nothing later.
            StartupWarmUp warm = warmUp ? StartupWarmUp.givingWayTo(mig) : null;
            mig.setAutostart(!noAutostart);
            mig.setPostcopyBackend(postcopyBackend);
            mig.setPostcopyRequestPriority(postcopyRequestPriority);
            if (faultOutgoing != null || faultIncoming != null) {
                mig.setFaultInjection(org.livemig.transport.FaultSpec.parse(faultOutgoing == null ? "" : faultOutgoing),
                        org.livemig.transport.FaultSpec.parse(faultIncoming == null ? "" : faultIncoming));
            }
            m.setExitHandler(status -> {
                if (pid != null) {
                    pid.release();
                }
                if (recording != null) {
                    recording.close();
                }
                System.err.flush();
                Runtime.getRuntime().halt(status);
            });
            m.addListener(new MachineListener() {
                @Override
                public void shutdownRequested() {
                    quit.countDown();
                }
            });
            QmpServer server = QmpServer.builder(MachineMonitor.host(m)).pacing(() -> {
                org.livemig.migration.Outgoing o = mig.outgoing();
                return o != null && o.status().isActive();
            }, monitorPace).build();
            RunStateCommands.register(server, MachineMonitor.vm(m, name));
            MigrationCommands.register(server, mig);
            for (String spec : objects) {
                org.livemig.security.ObjectOptions o = org.livemig.security.ObjectOptions.parse(spec);
                try {
                    mig.objects().add(o.type(), o.props());
                } catch (org.livemig.security.ObjectException e) {
                    throw new IllegalArgumentException("--object " + spec + ": " + e.getMessage(), e);
                }
            }
            org.livemig.monitor.ObjectCommands.register(server, mig.objects());
            for (String addr : qmp) {
                checkQmpAddress(addr);
                String creds = org.livemig.monitor.QmpAddress.tlsCredsOf(addr);
                org.livemig.transport.ChannelSecurity security = org.livemig.transport.ChannelSecurity.PLAIN;
                if (creds != null) {
                    try {
                        security = mig.objects().tls(creds, null, null, org.livemig.transport.tls.TlsEndpoint.SERVER,
                                org.livemig.transport.tls.TlsChannelSecurity.DEFAULT_HANDSHAKE_TIMEOUT, () -> true);
                    } catch (org.livemig.security.ObjectException e) {
                        throw new IllegalArgumentException("--qmp " + addr + ": " + e.getMessage(), e);
                    }
                }
                server.listen(org.livemig.monitor.QmpAddress.parse(addr), security);
            }
            m.mainLoop().call(() -> {
                if (incoming != null) {
                    m.boot(RunState.INMIGRATE);
                    if (!incoming.equals("defer")) {
                        mig.migrateIncoming(incoming, true);
                    }
                } else {
                    m.boot(noAutostart ? RunState.PRELAUNCH : RunState.RUNNING);
                }
                return null;
            }, 60_000);
            if (pid != null) {
                pid.write();
            }
            if (warm != null) {
                // The monitor listens: the warm-ups only share the CPU with a monitor that already
                // answers (issue 21), and give way to a real migration. Started before the ready
                // line, so a script that read it sees their threads.
                java.util.List<org.livemig.transport.tls.TlsCredentials> tls = new java.util.ArrayList<>();
                for (var o : mig.objects().list()) {
                    var creds = org.livemig.security.ObjectRegistry.credentialsOf(o);
                    if (creds != null) {
                        tls.add(creds);
                    }
                }
                warm.start(tls, () -> WarmUp.start(warmUpRounds, !machine.devices.isEmpty()));
            }
            // One line for people and scripts: the machine can be driven now.
            System.err.println("livemig run: ready: pid " + ProcessHandle.current().pid() + ", QMP on " + String.join(", ", qmp)
                    + (incoming == null ? ", guest " + (noAutostart ? "stopped (-S; 'cont' starts it)" : "running")
                    : incoming.equals("defer") ? ", waiting for migrate-incoming" : ", waiting for a migration on " + incoming));
            System.err.flush();
            if (daemonChild) {
                Daemon.detached();
            }
            quit.await();
            // quit asks for the shutdown from inside the command: one more turn of the main loop,
            // and its reply has been handed to the monitor, which flushes it as it closes.
            m.mainLoop().call(() -> null, 5_000);
            server.close();
            // Closing the machine ends its migrations first (their threads joined).
        } finally {
            if (pid != null) {
                pid.release();
            }
            if (recording != null) {
                recording.close();
            }
            sink.close();
        }
        return 0;
    }
}
