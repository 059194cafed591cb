package org.livemig.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/**
 * The command line itself: --help on every command and sub-command, the version from the build,
 * hidden test hooks, documented exit statuses, and the completion script and man pages made from
 * the same model.
 */
class CommandLineTest {
    @TempDir
    Path dir;

    /** Every visible command path: [], [demo], [snapshot], [snapshot, save], ... */
    private static List<List<String>> commandPaths() {
        List<List<String>> paths = new ArrayList<>();
        walk(Main.commandLine(), new ArrayList<>(), paths);
        return paths;
    }

    private static void walk(CommandLine cl, List<String> path, List<List<String>> out) {
        out.add(List.copyOf(path));
        for (Map.Entry<String, CommandLine> e : cl.getSubcommands().entrySet()) {
            if (e.getValue().getCommandSpec().usageMessage().hidden() || !e.getKey().equals(e.getValue().getCommandName())) {
                continue;
            }
            path.add(e.getKey());
            walk(e.getValue(), path, out);
            path.removeLast();
        }
    }

    @Test
    void helpWorksOnEveryCommandAndSubCommandAndListsItsExitStatuses() {
        List<List<String>> paths = commandPaths();
        assertThat(paths).contains(List.of("snapshot"), List.of("snapshot", "save"), List.of("snapshot", "load"),
                List.of("bench"), List.of("bench", "precopy"), List.of("watch"), List.of("check"), List.of("run"), List.of("qmp"));
        for (List<String> path : paths) {
            if (path.equals(List.of("help"))) {
                continue;
            }
            List<String> args = new ArrayList<>(path);
            args.add("--help");
            Cli.Run r = Cli.run(args.toArray(String[]::new));
            assertThat(r.status()).as(String.join(" ", args) + ": " + r.all()).isZero();
            assertThat(r.out()).as(String.join(" ", args)).startsWith("Usage: livemig" + (path.isEmpty() ? "" : " " + String.join(" ", path)))
                    .doesNotContain("Unknown option");
            if (!path.equals(List.of("snapshot")) && !path.equals(List.of("bench"))) {
                assertThat(r.out()).as(String.join(" ", args)).contains("Exit status:").containsPattern("(?m)^  0 ");
            }
        }
        assertThat(Cli.run("help", "snapshot").out()).startsWith("Usage: livemig snapshot");
    }

    @Test
    void theVersionComesFromTheBuild() throws Exception {
        Cli.Run r = Cli.run("--version");
        assertThat(r.status()).isZero();
        String built;
        try (var in = Main.class.getResourceAsStream("version.properties")) {
            java.util.Properties p = new java.util.Properties();
            p.load(in);
            built = p.getProperty("version");
        }
        assertThat(built).doesNotContain("${").matches("\\d+\\.\\d+\\.\\d+.*");
        assertThat(r.out()).startsWith("livemig " + built + "\n").contains("Java " + Runtime.version());
    }

    @Test
    void testHooksAreHidden() {
        assertThat(Cli.run("run", "--help").out()).doesNotContain("--x-").contains("--daemonize").contains("--pidfile");
        assertThat(Cli.run("check", "--help").out()).doesNotContain("--x-");
        assertThat(Cli.run("--help").out()).doesNotContain("x-aot-train").contains("watch").contains("check");
    }

    @Test
    void eachExitStatusMeansOneThing() {
        Cli.Run unknown = Cli.run("demo", "--max-bandwith", "1G");
        assertThat(unknown.status()).isEqualTo(ExitCodes.USAGE);
        assertThat(unknown.err()).startsWith("livemig: Unknown options: '--max-bandwith', '1G'").contains("--max-bandwidth")
                .contains("Try 'livemig demo --help' for more information.").doesNotContain("Usage:");
        assertThat(Cli.run("demo", "--transport", "pigeon").status()).isEqualTo(ExitCodes.USAGE);
        Cli.Run missing = Cli.run("snapshot", "load", dir.resolve("none.mig").toString());
        assertThat(missing.status()).isEqualTo(ExitCodes.FILE);
        Cli.Run unreachable = Cli.run("watch", dir.resolve("nobody.sock").toString());
        assertThat(unreachable.status()).isEqualTo(ExitCodes.UNREACHABLE);
        assertThat(unreachable.err()).contains("nobody.sock");
        assertThat(Cli.run("qmp", dir.resolve("nobody.sock").toString(), "query-status").status()).isEqualTo(ExitCodes.UNREACHABLE);
    }

    @Test
    void aCompletionScriptAndManPagesAreGeneratedFromTheModel() throws Exception {
        List<Path> files = Docs.write(dir);
        Path script = dir.resolve("completion/livemig.bash");
        assertThat(files).contains(script);
        String text = Files.readString(script);
        assertThat(text).contains("_picocli_livemig_run").contains("--daemonize").doesNotContain("--x-fault").doesNotContain("x-aot-train");
        // bash parses it and completes from it
        Process syntax = new ProcessBuilder("bash", "-n", script.toString()).redirectErrorStream(true).start();
        assertThat(new String(syntax.getInputStream().readAllBytes())).isEmpty();
        assertThat(syntax.waitFor()).isZero();
        assertThat(bash("source " + script + "; COMP_WORDS=(livemig wat); COMP_CWORD=1; COMP_LINE='livemig wat'; COMP_POINT=11;"
                + " _complete_livemig livemig wat livemig; echo ${COMPREPLY[@]}").strip()).isEqualTo("watch");
        assertThat(bash("source " + script + "; COMP_WORDS=(livemig run --daem); COMP_CWORD=2; COMP_LINE='livemig run --daem';"
                + " COMP_POINT=18; _complete_livemig livemig --daem run; echo ${COMPREPLY[@]}").strip()).isEqualTo("--daemonize");
        String zsh = org.livemig.testing.HostTools.onPath("zsh");
        if (zsh != null) {
            // zsh sources the same script, which registers itself through bashcompinit
            Process p = new ProcessBuilder(zsh, "-c", "source " + script + " && print ${_comps[livemig]}")
                    .redirectError(ProcessBuilder.Redirect.DISCARD).start();
            String registered = new String(p.getInputStream().readAllBytes());
            assertThat(p.waitFor()).isZero();
            assertThat(registered).contains("_complete_livemig");
        }
        // a man page per visible command, with its exit statuses
        for (List<String> path : commandPaths()) {
            if (path.equals(List.of("help"))) {
                continue;
            }
            String name = path.isEmpty() ? "livemig" : "livemig-" + String.join("-", path);
            Path page = dir.resolve("man/man1/" + name + ".1");
            assertThat(page).as(name).exists();
            assertThat(Files.readString(page)).startsWith(".TH \"" + name.toUpperCase(java.util.Locale.ROOT) + "\" 1");
        }
        assertThat(Files.readString(dir.resolve("man/man1/livemig-watch.1"))).contains(".SH EXIT STATUS").contains(".SH OPTIONS");
        String groff = org.livemig.testing.HostTools.onPath("groff");
        if (groff != null) {
            Process p = new ProcessBuilder(groff, "-man", "-Tascii", "-P-cbou", "-ww", dir.resolve("man/man1/livemig-run.1").toString())
                    .redirectErrorStream(true).start();
            String rendered = new String(p.getInputStream().readAllBytes());
            assertThat(p.waitFor()).isZero();
            assertThat(rendered).as("groff warnings").doesNotContain("troff:").contains("EXIT STATUS").contains("--pidfile");
        }
    }

    /** Standard output of {@code bash -c script} (compopt complains outside a real completion: stderr is dropped). */
    private static String bash(String script) throws Exception {
        Process p = new ProcessBuilder("bash", "-c", script).redirectError(ProcessBuilder.Redirect.DISCARD).start();
        String out = new String(p.getInputStream().readAllBytes());
        assertThat(p.waitFor()).as(out).isZero();
        return out;
    }
}
