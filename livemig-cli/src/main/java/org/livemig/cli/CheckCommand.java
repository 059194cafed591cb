package org.livemig.cli;

import java.io.IOException;
import java.io.PrintWriter;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import org.livemig.memory.postcopy.PostcopyBackend;
import org.livemig.memory.ThreadScheduling;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code livemig check}: what this host allows, before a migration relies on it, as {@code criu
 * check} does for CRIU. Each item says whether it is there, what it found, and what to do when it
 * is missing; the exit status says whether everything needed is there (Java 25 always, the
 * others when named with {@code --require}).
 */
@Command(name = "check", mixinStandardHelpOptions = true,
        description = {"Check what this host allows: Java 25, userfaultfd (missing and write-protect modes) for this process,"
                + " SCHED_FIFO for --postcopy-request-priority, huge pages, the launcher's AOT cache, a QEMU binary for the"
                + " interop features, and the memory a machine can have. Each missing item says what to do.",
            "Needed: java, and whatever --require names; the rest only informs."},
        exitCodeListHeading = ExitCodes.HEADING, footer = "",
        exitCodeList = {"0:everything needed is here", "1:something needed is missing (the lines marked MISSING say what to do)",
                ExitCodes.USAGE_TEXT})
final class CheckCommand implements Callable<Integer> {
    /** The items, in the order they print. */
    static final List<String> ITEMS = List.of("java", "userfaultfd", "userfaultfd-wp", "sched-fifo", "huge-pages", "aot-cache",
            "qemu", "memory");

    @Option(names = "--require", split = ",", paramLabel = "ITEM",
            description = "Also treat these as needed (comma-separated, or 'all'): userfaultfd, userfaultfd-wp, sched-fifo,"
                    + " huge-pages, aot-cache, qemu.")
    List<String> require = new ArrayList<>();

    /** Test hook: report these items as missing, whatever the host has. */
    @Option(names = "--x-pretend-missing", split = ",", hidden = true)
    List<String> pretendMissing = new ArrayList<>();

    @Spec
    CommandSpec spec;

    /** One line of the report. */
    record Item(String name, boolean present, String found, String fix) {}

    @Override
    public Integer call() {
        Set<String> needed = new LinkedHashSet<>(List.of("java"));
        for (String r : require) {
            if (r.equals("all")) {
                needed.addAll(ITEMS);
            } else if (!ITEMS.contains(r)) {
                throw new CommandLine.ParameterException(spec.commandLine(), "--require: no item '" + r + "' (items: "
                        + String.join(", ", ITEMS) + ")");
            } else {
                needed.add(r);
            }
        }
        for (String p : pretendMissing) {
            if (!ITEMS.contains(p)) {
                throw new CommandLine.ParameterException(spec.commandLine(), "--x-pretend-missing: no item '" + p + "'");
            }
        }
        PrintWriter out = spec.commandLine().getOut();
        List<String> missingNeeded = new ArrayList<>();
        for (String name : ITEMS) {
            Item i = probe(name);
            if (pretendMissing.contains(name)) {
                i = new Item(name, false, "(pretended missing by --x-pretend-missing)", i.fix());
            }
            boolean need = needed.contains(name);
            out.printf("%-8s %-15s %s%n", i.present() ? "ok" : need ? "MISSING" : "missing", name, i.found());
            if (!i.present()) {
                out.printf("%-8s %-15s -> %s%n", "", "", i.fix());
                if (need) {
                    missingNeeded.add(name);
                }
            }
        }
        out.println(missingNeeded.isEmpty() ? "everything needed is here (needed: " + String.join(", ", needed) + ")"
                : "missing what is needed: " + String.join(", ", missingNeeded));
        out.flush();
        return missingNeeded.isEmpty() ? ExitCodes.OK : ExitCodes.FAILED;
    }

    static Item probe(String name) {
        return switch (name) {
            case "java" -> java();
            case "userfaultfd" -> userfaultfd();
            case "userfaultfd-wp" -> userfaultfdWriteProtect();
            case "sched-fifo" -> schedFifo();
            case "huge-pages" -> hugePages();
            case "aot-cache" -> aotCache();
            case "qemu" -> qemu();
            case "memory" -> memory();
            default -> throw new IllegalArgumentException(name);
        };
    }

    private static Item java() {
        Runtime.Version v = Runtime.version();
        return new Item("java", v.feature() >= 25, "Java " + v + " (" + System.getProperty("java.vm.vendor") + "), "
                + System.getProperty("java.home"),
                "install Java 25 (e.g. Temurin 25) and set JAVA_HOME to it; ./livemig also looks in /usr/lib/jvm");
    }

    private static final String UFFD_FIX = "postcopy then uses the checked backend (slower faults). To allow userfaultfd:"
            + " sysctl vm.unprivileged_userfaultfd=1, or CAP_SYS_PTRACE, or read-write access to /dev/userfaultfd (Linux 6.1+)";

    private static Item userfaultfd() {
        PostcopyBackend.Availability a = PostcopyBackend.userfaultfdAvailability();
        return new Item("userfaultfd", a.available(), (a.available() ? "missing mode, for this process: " : "") + a.reason(), UFFD_FIX);
    }

    private static Item userfaultfdWriteProtect() {
        try {
            boolean wp = PostcopyBackend.userfaultfdWriteProtect();
            return new Item("userfaultfd-wp", wp, wp ? "write-protect mode offered (UFFD_FEATURE_PAGEFAULT_FLAG_WP)"
                    : "userfaultfd opens, but the kernel offers no write-protect mode",
                    "needs Linux 5.7 or later on x86-64 (only a background snapshot would use it)");
        } catch (IOException | RuntimeException e) {
            return new Item("userfaultfd-wp", false, "userfaultfd cannot be opened: " + e.getMessage(), UFFD_FIX);
        }
    }

    private static Item schedFifo() {
        String[] why = new String[1];
        // A scratch thread takes SCHED_FIFO and ends: nothing of this process keeps it.
        Thread t = Thread.ofPlatform().name("check-sched-fifo").start(() -> why[0] = ThreadScheduling.useFifo(1));
        try {
            t.join(5_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        boolean ok = !t.isAlive() && why[0] == null;
        return new Item("sched-fifo", ok, ok ? "this process may use SCHED_FIFO (run --postcopy-request-priority works)"
                : String.valueOf(why[0]),
                "only --postcopy-request-priority needs it: run with CAP_SYS_NICE (setcap cap_sys_nice+ep on java),"
                        + " or raise RLIMIT_RTPRIO (ulimit -r 99; 'rtprio' in /etc/security/limits.conf)");
    }

    private static Item hugePages() {
        Path thp = Path.of("/sys/kernel/mm/transparent_hugepage/enabled");
        String mode = firstLine(thp);
        if (mode == null) {
            return new Item("huge-pages", false, "no transparent huge pages (" + thp + " unreadable)",
                    "a kernel with CONFIG_TRANSPARENT_HUGEPAGE pre-faults guest RAM 2 MiB at a time");
        }
        String selected = mode.replaceAll(".*\\[(\\w+)\\].*", "$1");
        boolean ok = selected.equals("always") || selected.equals("madvise");
        return new Item("huge-pages", ok, "transparent huge pages: " + selected
                + (ok ? " (guest RAM is advised for them: pre-faulting maps 2 MiB per fault)" : ""),
                "echo madvise > " + thp + " (as root): pre-faulting 1 GiB then takes about a third of the time");
    }

    private static Item aotCache() {
        String cache = System.getenv("LIVEMIG_AOT_CACHE");
        boolean inUse = ManagementFactory.getRuntimeMXBean().getInputArguments().stream().anyMatch(a -> a.startsWith("-XX:AOTCache="));
        String fix = "run through ./livemig with LIVEMIG_NO_AOT unset: it trains the cache on first use (a few seconds)";
        if (System.getenv("LIVEMIG_NO_AOT") != null) {
            return new Item("aot-cache", false, "off (LIVEMIG_NO_AOT is set)", "unset LIVEMIG_NO_AOT");
        }
        if (cache == null || !Files.isRegularFile(Path.of(cache))) {
            return new Item("aot-cache", false, "none: this JVM was not started by ./livemig with a trained cache", fix);
        }
        try {
            Path p = Path.of(cache);
            String jar = System.getProperty("java.class.path");
            boolean stale = Files.isRegularFile(Path.of(jar))
                    && Files.getLastModifiedTime(Path.of(jar)).compareTo(Files.getLastModifiedTime(p)) > 0;
            return new Item("aot-cache", inUse && !stale, cache + " (" + Sizes.human(Files.size(p)) + ")"
                    + (stale ? ", older than the jar" : inUse ? ", in use" : ", not in use by this JVM"), fix);
        } catch (IOException e) {
            return new Item("aot-cache", false, cache + ": " + e.getMessage(), fix);
        }
    }

    private static Item qemu() {
        String fix = "apt-get install qemu-system-x86 (only the interop features need it: a real QEMU as source or"
                + " destination, relaying QEMU's migrations, and their tests)";
        for (String dir : System.getenv().getOrDefault("PATH", "/usr/bin").split(":")) {
            Path q = Path.of(dir.isEmpty() ? "." : dir, "qemu-system-x86_64");
            if (Files.isExecutable(q)) {
                try {
                    Process p = new ProcessBuilder(q.toString(), "--version").redirectErrorStream(true).start();
                    String first = new String(p.getInputStream().readNBytes(4096), StandardCharsets.UTF_8).lines().findFirst().orElse("");
                    if (!p.waitFor(10, TimeUnit.SECONDS)) {
                        p.destroyForcibly();
                        return new Item("qemu", false, q + " --version did not answer within 10 s", fix);
                    }
                    return new Item("qemu", p.exitValue() == 0, first.strip() + ", " + q, fix);
                } catch (IOException e) {
                    return new Item("qemu", false, q + ": " + e.getMessage(), fix);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return new Item("qemu", false, "interrupted", fix);
                }
            }
        }
        return new Item("qemu", false, "no qemu-system-x86_64 on PATH", fix);
    }

    private static Item memory() {
        return HostMemory.read().map(h -> new Item("memory", true, h.why() + ": a machine may have up to "
                + Sizes.human(h.availableBytes()) + " of RAM, a demo half that each", ""))
                .orElseGet(() -> new Item("memory", false, "/proc/meminfo unreadable: --ram is not checked against the host",
                        "on Linux, make /proc readable"));
    }

    private static String firstLine(Path p) {
        try {
            return Files.readAllLines(p).stream().findFirst().orElse(null);
        } catch (IOException e) {
            return null;
        }
    }
}
