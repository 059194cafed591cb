package org.livemig.cli;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;

import org.livemig.relay.Fault;
import org.livemig.relay.FaultChannel;
import org.livemig.relay.FaultPlan;
import org.livemig.relay.MigrationRelay;
import org.livemig.transport.MigrationAddress;
import org.livemig.transport.MigrationConnection;
import org.livemig.transport.MigrationListener;
import org.livemig.transport.Transports;

import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import org.livemig.security.ObjectException;
import org.livemig.security.ObjectOptions;
import org.livemig.security.ObjectRegistry;
import org.livemig.transport.ChannelSecurity;
import org.livemig.transport.tls.TlsChannelSecurity;
import org.livemig.transport.tls.TlsEndpoint;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code livemig relay}: sits between a migration source and its destination (QEMU's or ours),
 * forwarding the stream unchanged while decoding it, and the return path back. Statistics go to
 * standard output at the end; errors are one line on stderr, exit statuses as {@link ExitCodes}
 * (6 when the migration passed but its stream could not be fully decoded).
 */
@Command(name = "relay", mixinStandardHelpOptions = true,
        description = {"Relay one live migration: accept the source on --listen, connect to the destination",
            "on --to, forward every byte both ways unchanged while decoding each section, and print",
            "statistics at the end. With --fault, inject faults on the way (a chaos relay)."},
        exitCodeListHeading = ExitCodes.HEADING,
        footerHeading = "%nFaults:%n",
        footer = {"  --fault SPEC (repeatable), SPEC = KIND[:key=value,...]",
            "  cut[:channel=C,at=P,after=N]     pass what comes before the trigger, then",
            "                                   shut the channel's connection on both sides",
            "  stall:for=D[,channel=C,at=P,after=N]  pass nothing for D, then go on",
            "  rate:bps=N[,channel=C,at=P,after=N]   at most N bytes a second from there",
            "  delay:ms=N[,channel=C]           every byte N ms late, at full throughput",
            "                                   (no channel: every channel, each way)",
            "  flip[:channel=C,at=P,after=N,xor=X]   XOR the byte there with X (0xff)",
            "  C: main (default), return, preempt (with --postcopy-preempt), or multifdN",
            "     (the N-th multifd connection, from 0)",
            "  P: start (default); section:IDSTR, just after the header of the first",
            "     section with that idstr (ram, timer, 0000:00:01.3/piix4_pm, ...);",
            "     package, just after the postcopy package; sync[:K], just after the",
            "     header of the K-th multifd SYNC packet",
            "  The trigger is after=N bytes past P (offset=N is the same). N: bytes, with",
            "  K, M, G or T (binary). D: N ms or N s, below --idle-timeout. The main",
            "  stream and the return path share a connection: a cut of either cuts both.",
            "  A cut ends the relay with status 1.",
            "  e.g. --fault cut:at=section:ram,after=1M --fault delay:ms=20"},
        exitCodeList = {"0:relayed and decoded",
                "1:the relayed migration broke (a peer went away, --idle-timeout passed, or a --fault cut it)",
                ExitCodes.USAGE_TEXT, "4:the destination could not be reached", ExitCodes.NOT_DECODED_TEXT})
public final class RelayCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--listen", required = true, paramLabel = "ADDR",
            description = "where the source migrates to (tcp:HOST:PORT, unix:PATH)")
    String listen;

    @Option(names = "--to", required = true, paramLabel = "ADDR",
            description = "the destination (tcp:HOST:PORT, unix:PATH)")
    String to;

    @Option(names = "--record", paramLabel = "FILE", description = "also write the forward stream to FILE")
    Path record;

    @Option(names = "--timeout", paramLabel = "SECONDS", defaultValue = "600",
            description = "longest wait for the source to connect (default ${DEFAULT-VALUE})")
    long acceptSeconds;

    @Option(names = "--multifd-channels", paramLabel = "N", defaultValue = "0",
            description = {"the source migrates with multifd over N channels: accept them after the main",
                "connection and forward each to a connection of its own (default ${DEFAULT-VALUE}: none)"})
    int multifdChannels;

    @Option(names = "--postcopy-preempt",
            description = {"the source migrates with postcopy-preempt: take one more connection whenever it comes",
                "(QEMU 7.2 opens it at once, livemig at the switch to postcopy) and forward it to one of its own"})
    boolean postcopyPreempt;

    @Option(names = "--idle-timeout", paramLabel = "SECONDS", defaultValue = "120",
            description = "give up after this long without a byte in either direction (default ${DEFAULT-VALUE})")
    long idleSeconds;

    @Option(names = "--fault", paramLabel = "SPEC", converter = FaultConverter.class,
            description = {"inject a fault on the way (repeatable): cut, stall, rate, delay or flip, on",
                "a chosen channel, from a byte offset or a point of the stream; see FAULTS below"})
    List<Fault> faults = new ArrayList<>();

    @Option(names = "--object", paramLabel = "TYPE,id=ID,...",
            description = "a credential or authz object as QEMU's -object (repeatable), for the TLS options below")
    List<String> objects = new ArrayList<>();

    @Option(names = "--listen-tls-creds", paramLabel = "ID",
            description = "terminate the source's TLS with these server credentials (its tls-creds must be set too)")
    String listenTlsCreds;

    @Option(names = "--listen-tls-authz", paramLabel = "ID", description = "check the source's certificate name with this authz object")
    String listenTlsAuthz;

    @Option(names = "--to-tls-creds", paramLabel = "ID",
            description = "speak TLS to the destination with these client credentials (the destination's tls-creds must be set)")
    String toTlsCreds;

    @Option(names = "--to-tls-hostname", paramLabel = "NAME",
            description = "the name the destination's certificate must carry, instead of the --to host")
    String toTlsHostname;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        MigrationAddress from;
        MigrationAddress dst;
        try {
            from = MigrationAddress.parse(listen);
            dst = MigrationAddress.parse(to);
        } catch (IllegalArgumentException e) {
            err.println("livemig relay: " + e.getMessage());
            return ExitCodes.USAGE;
        }
        String faultError = checkFaults();
        if (faultError != null) {
            err.println("livemig relay: " + faultError);
            return ExitCodes.USAGE;
        }
        FaultPlan plan = new FaultPlan(faults);
        ChannelSecurity sourceSide;
        ChannelSecurity destinationSide;
        try {
            ObjectRegistry registry = new ObjectRegistry();
            for (String spec : objects) {
                ObjectOptions o = ObjectOptions.parse(spec);
                registry.add(o.type(), o.props());
            }
            sourceSide = registry.tls(listenTlsCreds, null, listenTlsAuthz, TlsEndpoint.SERVER,
                    TlsChannelSecurity.DEFAULT_HANDSHAKE_TIMEOUT, () -> true);
            destinationSide = registry.tls(toTlsCreds, toTlsHostname, null, TlsEndpoint.CLIENT,
                    TlsChannelSecurity.DEFAULT_HANDSHAKE_TIMEOUT, () -> true);
        } catch (ObjectException | IllegalArgumentException e) {
            err.println("livemig relay: " + e.getMessage());
            return 1;
        }
        try (MigrationListener listener = Transports.listen(from)) {
            err.println("livemig relay: listening on " + listener.boundAddress().uri());
            err.flush();
            MigrationConnection source = sourceSide.server(acceptWithin(listener, Duration.ofSeconds(acceptSeconds)));
            List<MigrationConnection> opened = new ArrayList<>();
            try (source;
                 MigrationConnection destination = destinationSide.client(Transports.connect(dst, Duration.ofSeconds(30)), dst);
                 FileChannel rec = record == null ? null : FileChannel.open(record, StandardOpenOption.CREATE,
                         StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
                err.println("livemig relay: " + source.description() + " -> " + destination.description());
                err.flush();
                // multifd as QEMU 7.2 has it: the channels come after the main connection, and go
                // to the destination after its main connection too.
                List<MigrationConnection[]> channels = new ArrayList<>();
                for (int i = 0; i < multifdChannels; i++) {
                    MigrationConnection fromSource = sourceSide.server(acceptWithin(listener, Duration.ofSeconds(acceptSeconds)));
                    opened.add(fromSource);
                    MigrationConnection toDestination = destinationSide.client(Transports.connect(dst, Duration.ofSeconds(30)), dst);
                    opened.add(toDestination);
                    channels.add(new MigrationConnection[] {fromSource, toDestination});
                }
                java.util.concurrent.CompletableFuture<MigrationConnection[]> preempt = null;
                if (postcopyPreempt) {
                    // the listener stays open for it; closing it (at the end) ends the wait
                    preempt = new java.util.concurrent.CompletableFuture<>();
                    acceptPreempt(listener, sourceSide, destinationSide, dst, opened, preempt);
                } else {
                    listener.close();
                }
                MigrationRelay.Result r;
                try {
                    r = MigrationRelay.run(source, destination, channels, rec,
                            Duration.ofSeconds(idleSeconds), Duration.ofSeconds(Math.min(idleSeconds, 60)), plan, preempt);
                } finally {
                    reportFaults(plan, err);
                }
                r.summary().forEach(out::println);
                out.flush();
                if (r.decodeError() != null) {
                    err.println("livemig relay: the stream was forwarded but not fully decoded: " + r.decodeError());
                    return ExitCodes.NOT_DECODED;
                }
                return 0;
            } finally {
                listener.close();
                synchronized (opened) {
                    for (MigrationConnection c : opened) {
                        c.close();
                    }
                }
            }
        } catch (IOException | RuntimeException e) {
            err.println("livemig relay: " + (e.getMessage() != null ? e.getMessage() : e.toString()));
            return e instanceof java.net.ConnectException ? ExitCodes.UNREACHABLE : ExitCodes.FAILED;
        }
    }

    /**
     * Accepts the preempt channel on a thread of its own ({@code relay-preempt-accept}) and
     * connects it to the destination (after the main connection, as QEMU 7.2 expects).
     */
    private static void acceptPreempt(MigrationListener listener, ChannelSecurity sourceSide, ChannelSecurity destinationSide,
                                      MigrationAddress dst, List<MigrationConnection> opened,
                                      java.util.concurrent.CompletableFuture<MigrationConnection[]> preempt) {
        Thread.ofPlatform().name("relay-preempt-accept").daemon().start(() -> {
            try {
                MigrationConnection fromSource = sourceSide.server(listener.accept());
                synchronized (opened) {
                    opened.add(fromSource);
                }
                MigrationConnection toDestination = destinationSide.client(Transports.connect(dst, Duration.ofSeconds(30)), dst);
                synchronized (opened) {
                    opened.add(toDestination);
                }
                preempt.complete(new MigrationConnection[] {fromSource, toDestination});
            } catch (IOException | RuntimeException e) {
                // the relay ended (the listener closed) before a preempt channel came, or it failed
                preempt.completeExceptionally(e);
            }
        });
    }

    /** What the faults need that this relay's options do not give, or null. */
    private String checkFaults() {
        for (Fault f : faults) {
            FaultChannel c = f.channel();
            if (c != null && c.type() == FaultChannel.Type.MULTIFD && c.index() >= multifdChannels) {
                return "--fault " + f + ": channel " + c + " is not relayed (--multifd-channels is "
                        + multifdChannels + "; multifd channels count from 0)";
            }
            if (c != null && c.type() == FaultChannel.Type.PREEMPT && !postcopyPreempt) {
                return "--fault " + f + ": channel preempt is relayed only with --postcopy-preempt";
            }
            if (f.kind() == Fault.Kind.STALL && f.duration().toSeconds() >= idleSeconds) {
                return "--fault " + f + ": a stall of " + f.duration().toMillis() + " ms is not shorter than --idle-timeout "
                        + idleSeconds + " s, which would end the relay first";
            }
        }
        return null;
    }

    /** One line per fault that acted, and one per fault that never did. */
    private static void reportFaults(FaultPlan plan, PrintWriter err) {
        for (FaultPlan.Event e : plan.events()) {
            if (e.fault().kind() != Fault.Kind.CUT) {
                // a cut ends the relay with an error line that says the same
                err.println("livemig relay: " + e);
            }
        }
        for (Fault f : plan.unfired()) {
            err.println("livemig relay: --fault " + f + ": never acted (its point or offset did not come)");
        }
        err.flush();
    }

    private static MigrationConnection acceptWithin(MigrationListener listener, Duration timeout)
            throws IOException {
        Thread closer = Thread.ofVirtual().name("relay-accept-timeout").start(() -> {
            try {
                Thread.sleep(timeout);
                listener.close();
            } catch (InterruptedException | IOException e) {
                // accepted in time, or closing failed and accept fails anyway
            }
        });
        try {
            return listener.accept();
        } catch (IOException e) {
            throw new IOException("no source connected to " + listener.boundAddress().uri() + " within "
                    + timeout.toSeconds() + " s", e);
        } finally {
            closer.interrupt();
        }
    }
}
