package org.livemig.cli;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.channels.Channels;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.Callable;

import org.livemig.analyze.Analysis;
import org.livemig.analyze.Analyzer;
import org.livemig.analyze.Limits;
import org.livemig.analyze.PythonJson;
import org.livemig.analyze.VmstateDump;
import org.livemig.relay.LiveAnalyzer;
import org.livemig.transport.MigrationAddress;
import org.livemig.stream.StreamFormatException;

import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code livemig analyze}: reads a QEMU migration stream (QEMU's or ours) and prints it as QEMU's
 * scripts/analyze-migration.py does, or extracts its RAM and device state. Errors are one line on
 * stderr and a non-zero exit status: 2 for a malformed stream, 1 for anything else.
 */
@Command(name = "analyze", mixinStandardHelpOptions = true,
        description = {"Decode a QEMU migration stream (format version 3) and print it as JSON,",
            "in the shape of QEMU's scripts/analyze-migration.py. With --listen, be the destination",
            "of a live migration and decode the stream as it arrives."},
        exitCodeListHeading = ExitCodes.HEADING, footer = "",
        exitCodeList = {"0:decoded and printed", "1:--dump desc of a stream with no vmdesc trailer, or a live source that failed",
                ExitCodes.USAGE_TEXT,
                "3:FILE cannot be read (no such file, permission), is not a QEMU stream, or is malformed (offset and section named)"})
public final class AnalyzeCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Parameters(index = "0", arity = "0..1", paramLabel = "FILE",
            description = "the stream; '-' reads standard input")
    String file;

    @Option(names = "--listen", paramLabel = "ADDR",
            description = {"accept one migration on ADDR (tcp:HOST:PORT, unix:PATH) instead of reading FILE;",
                "a source that opens a return path gets PONGs and a final SHUT"})
    String listen;

    @Option(names = "--object", paramLabel = "TYPE,id=ID,...",
            description = "with --listen: a credential or authz object as QEMU's -object (repeatable), e.g."
                    + " tls-creds-x509,id=tls0,endpoint=server,dir=DIR,verify-peer=on")
    List<String> objects = new java.util.ArrayList<>();

    @Option(names = "--tls-creds", paramLabel = "ID", description = "with --listen: take the source over TLS with these credentials (QEMU's tls-creds)")
    String tlsCreds;

    @Option(names = "--tls-authz", paramLabel = "ID", description = "with --listen: check the source's certificate name with this authz object (QEMU's tls-authz)")
    String tlsAuthz;

    @Option(names = "--timeout", paramLabel = "SECONDS", defaultValue = "600",
            description = "with --listen: longest wait for the source to connect (default ${DEFAULT-VALUE})")
    long timeoutSeconds;

    @Option(names = {"-d", "--dump"}, paramLabel = "state|desc|colo",
            description = "print the device state (default), the vmdesc description, or the COLO checkpoints that follow it")
    String dump;

    @Option(names = {"-x", "--extract"}, paramLabel = "DIR",
            description = "write each RAM block's final contents to DIR/<block> and the state to DIR/state.json")
    Path extract;

    @Option(names = "--vmstate", paramLabel = "DUMP.json",
            description = "QEMU -dump-vmstate output, to decode streams without a vmdesc trailer (postcopy)")
    Path vmstate;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        String what = dump == null ? (extract == null ? "state" : null) : dump;
        if (what != null && !what.equals("state") && !what.equals("desc") && !what.equals("colo")) {
            err.println("livemig analyze: --dump takes 'state' or 'desc' (or 'colo': the COLO checkpoints), not '" + dump + "'");
            return ExitCodes.USAGE;
        }
        if ((file == null) == (listen == null)) {
            err.println("livemig analyze: give either FILE or --listen ADDR");
            return ExitCodes.USAGE;
        }
        String name = file != null ? file : listen;
        try {
            Analyzer.Options options = Analyzer.Options.DEFAULT;
            if (vmstate != null) {
                options = options.withDump(VmstateDump.read(vmstate, Limits.DEFAULT));
            }
            if (extract != null) {
                Files.createDirectories(extract);
                options = options.withRamDir(extract);
            } else {
                options = options.withoutRam();
            }
            org.livemig.transport.ChannelSecurity security = org.livemig.transport.ChannelSecurity.PLAIN;
            if (listen != null) {
                org.livemig.security.ObjectRegistry registry = new org.livemig.security.ObjectRegistry();
                for (String spec : objects) {
                    org.livemig.security.ObjectOptions o = org.livemig.security.ObjectOptions.parse(spec);
                    registry.add(o.type(), o.props());
                }
                security = registry.tls(tlsCreds, null, tlsAuthz, org.livemig.transport.tls.TlsEndpoint.SERVER,
                        org.livemig.transport.tls.TlsChannelSecurity.DEFAULT_HANDSHAKE_TIMEOUT, () -> true);
            }
            try (Analysis a = listen != null ? LiveAnalyzer.accept(MigrationAddress.parse(listen), Duration.ofSeconds(timeoutSeconds), options,
                            msg -> { err.println("livemig analyze: " + msg); err.flush(); }, security)
                    : file.equals("-") ? Analyzer.analyze(Channels.newChannel(System.in), options)
                    : Analyzer.analyzeFile(Path.of(file), options)) {
                for (Analysis.Undecoded u : a.undecoded()) {
                    err.println("livemig analyze: warning: section " + u.section() + " at byte offset " + u.offset()
                            + " not decoded: " + u.reason());
                }
                if (extract != null) {
                    List<Path> files = a.extract(extract);
                    err.println("livemig analyze: wrote " + files.size() + " files to " + extract);
                }
                if ("desc".equals(what)) {
                    if (a.desc() == null) {
                        err.println("livemig analyze: " + name + ": the stream has no vmdesc trailer"
                                + " (postcopy streams have none)");
                        return 1;
                    }
                    out.println(PythonJson.write(a.desc()));
                } else if ("state".equals(what)) {
                    out.println(PythonJson.write(a.state()));
                } else if ("colo".equals(what)) {
                    out.println(PythonJson.write(a.coloJson()));
                }
                out.flush();
                return 0;
            }
        } catch (StreamFormatException e) {
            err.println("livemig analyze: " + name + ": " + e.getMessage());
            return ExitCodes.FILE;
        } catch (org.livemig.security.ObjectException e) {
            err.println("livemig analyze: " + e.getMessage());
            return ExitCodes.USAGE;
        } catch (java.nio.file.FileSystemException e) {
            err.println("livemig analyze: " + Main.describe(e));
            return ExitCodes.FILE;
        } catch (IOException | RuntimeException e) {
            err.println("livemig analyze: " + name + ": " + (e.getMessage() != null ? e.getMessage() : e));
            return 1;
        }
    }
}
