package org.livemig.cli;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import picocli.AutoComplete;
import picocli.CommandLine;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;
import picocli.CommandLine.Model.PositionalParamSpec;

/**
 * Shell completion and man pages, generated from the picocli model at build time (the build runs
 * {@code Docs TARGET_DIR}): {@code completion/livemig.bash}, which bash and zsh both source, and
 * a troff page per command and sub-command in {@code man/man1} ({@code livemig-run.1}, ...).
 * Hidden commands and options (the test hooks) are left out of both.
 */
public final class Docs {
    private Docs() {}

    public static void main(String[] args) throws IOException {
        if (args.length != 1) {
            throw new IllegalArgumentException("usage: Docs TARGET_DIR");
        }
        List<Path> written = write(Path.of(args[0]));
        System.out.println("livemig: wrote " + written.size() + " completion and man page files under " + args[0]);
    }

    /** Writes the completion script and the man pages under {@code dir}; returns the files. */
    static List<Path> write(Path dir) throws IOException {
        CommandLine cl = Main.commandLine();
        List<Path> out = new ArrayList<>();
        Path completion = dir.resolve("completion").resolve("livemig.bash");
        Files.createDirectories(completion.getParent());
        Files.writeString(completion, AutoComplete.bash("livemig", cl));
        out.add(completion);
        Path man = dir.resolve("man").resolve("man1");
        Files.createDirectories(man);
        manPages(cl.getCommandSpec(), man, out);
        return out;
    }

    private static void manPages(CommandSpec spec, Path dir, List<Path> out) throws IOException {
        if (spec.usageMessage().hidden() || spec.userObject() instanceof CommandLine.HelpCommand) {
            return;
        }
        Path file = dir.resolve(String.join("-", spec.qualifiedName().split(" ")) + ".1");
        Files.writeString(file, manPage(spec));
        out.add(file);
        for (CommandLine sub : new java.util.LinkedHashSet<>(spec.subcommands().values())) {
            manPages(sub.getCommandSpec(), dir, out);
        }
    }

    /** One command's page in man(7) markup. */
    static String manPage(CommandSpec spec) {
        String qualified = spec.qualifiedName();
        String pageName = String.join("-", qualified.split(" "));
        StringBuilder b = new StringBuilder();
        b.append(".TH \"").append(pageName.toUpperCase(java.util.Locale.ROOT)).append("\" 1 \"\" \"livemig ")
                .append(Main.Version.version()).append("\" \"livemig manual\"\n");
        String[] description = spec.usageMessage().description();
        b.append(".SH NAME\n").append(escape(pageName)).append(" \\- ")
                .append(escape(description.length > 0 ? description[0] : "")).append('\n');
        b.append(".SH SYNOPSIS\n.nf\n");
        String synopsis = new CommandLine.Help(spec, CommandLine.Help.defaultColorScheme(CommandLine.Help.Ansi.OFF))
                .synopsis(0).strip();
        b.append(escape(synopsis.replaceFirst("^Usage: ", ""))).append("\n.fi\n");
        if (description.length > 1) {
            b.append(".SH DESCRIPTION\n");
            for (int i = 1; i < description.length; i++) {
                b.append(".PP\n").append(escape(description[i])).append('\n');
            }
        }
        List<PositionalParamSpec> params = spec.positionalParameters().stream().filter(p -> !p.hidden()).toList();
        List<OptionSpec> options = spec.options().stream().filter(o -> !o.hidden()).toList();
        if (!params.isEmpty() || !options.isEmpty()) {
            b.append(".SH OPTIONS\n");
            for (PositionalParamSpec p : params) {
                b.append(".TP\n.I ").append(escape(p.paramLabel())).append('\n').append(escape(String.join(" ", p.description())))
                        .append('\n');
            }
            for (OptionSpec o : options) {
                String label = o.typeInfo().isBoolean() ? "" : "=" + o.paramLabel();
                b.append(".TP\n.B ").append(escape(String.join(", ", o.names()) + label)).append('\n')
                        .append(escape(String.join(" ", o.description()).replace("${DEFAULT-VALUE}",
                                String.valueOf(o.defaultValue())))).append('\n');
            }
        }
        List<CommandSpec> subs = spec.subcommands().values().stream().map(CommandLine::getCommandSpec).distinct()
                .filter(s -> !s.usageMessage().hidden()).toList();
        if (!subs.isEmpty()) {
            b.append(".SH COMMANDS\n");
            for (CommandSpec s : subs) {
                String[] d = s.usageMessage().description();
                b.append(".TP\n.B ").append(escape(s.name())).append('\n').append(escape(d.length > 0 ? d[0] : "")).append('\n');
            }
        }
        Map<String, String> codes = spec.usageMessage().exitCodeList();
        if (!codes.isEmpty()) {
            b.append(".SH EXIT STATUS\n");
            codes.forEach((code, meaning) -> b.append(".TP\n.B ").append(escape(code.strip())).append('\n')
                    .append(escape(meaning)).append('\n'));
        }
        String[] footer = spec.usageMessage().footer();
        if (footer.length > 0 && !String.join("", footer).isBlank()) {
            // a footer is the environment unless its heading names it (relay: its faults)
            String heading = spec.usageMessage().footerHeading().replace("%n", "").replace(":", "").strip();
            b.append(".SH ").append(heading.isEmpty() ? "ENVIRONMENT" : escape(heading.toUpperCase(java.util.Locale.ROOT)))
                    .append("\n.nf\n");
            for (String f : footer) {
                // .nf keeps the lines as they are: keep continuation lines indented under their item
                b.append(escape(f.replaceFirst("^  ", "").stripTrailing())).append('\n');
            }
            b.append(".fi\n");
        }
        if (spec.parent() != null) {
            b.append(".SH SEE ALSO\n").append(escape(String.join("-", spec.parent().qualifiedName().split(" ")))).append("(1)\n");
        }
        return b.toString();
    }

    /** Text safe in man(7): backslashes, hyphens, and a leading dot or quote. */
    static String escape(String s) {
        String t = s.replace("\\", "\\e").replace("-", "\\-").replace("%n", "\n");
        StringBuilder b = new StringBuilder();
        for (String line : t.split("\n", -1)) {
            if (!b.isEmpty()) {
                b.append('\n');
            }
            b.append(line.startsWith(".") || line.startsWith("'") ? "\\&" + line : line);
        }
        return b.toString();
    }
}
