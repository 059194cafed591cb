package org.livemig.arch;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * Every method that asserts the BQL says so in its javadoc's first words: "Called with the BQL
 * held" for {@code assertHeld()}, "Called without the BQL" for {@code assertNotHeld()}, or, where
 * a flag decides, "... as {@code bqlHeld} says". Read from the sources, since javadoc is not in the
 * class files ArchUnit sees.
 */
class BqlDocTest {
    private static final Path SOURCES = Path.of("src/main/java");
    private static final Pattern ASSERT = Pattern.compile("\\b(assertHeld|assertNotHeld)\\(\\)");
    private static final Pattern METHOD = Pattern.compile(
            "^ {4}(?: {4})?(?:(?:public|private|protected|static|final|synchronized|default) )*[\\w<>\\[\\], .?]+ \\w+\\(.*");
    private static final Pattern BY_FLAG = Pattern.compile("as (?:this load's )?\\{@code bqlHeld\\} says");

    @Test
    void everyMethodThatAssertsTheBqlSaysSoFirst() throws IOException {
        List<String> bad = new ArrayList<>();
        int methods = 0;
        try (Stream<Path> files = Files.walk(SOURCES)) {
            for (Path p : files.filter(f -> f.toString().endsWith(".java")).toList()) {
                if (p.getFileName().toString().equals("Bql.java")) {
                    continue; // the lock itself
                }
                List<String> lines = Files.readAllLines(p);
                int lastMethod = -1;
                for (int i = 0; i < lines.size(); i++) {
                    Matcher m = ASSERT.matcher(lines.get(i));
                    if (!m.find() || lines.get(i).contains("void assert")) {
                        continue;
                    }
                    int j = i;
                    while (j > 0 && !METHOD.matcher(lines.get(j)).matches()) {
                        j--;
                    }
                    if (j == lastMethod) {
                        continue;
                    }
                    lastMethod = j;
                    methods++;
                    String doc = javadocAbove(lines, j);
                    String want = m.group(1).equals("assertHeld") ? "Called with the BQL held" : "Called without the BQL";
                    if (!doc.startsWith(want) && !BY_FLAG.matcher(doc).find()) {
                        bad.add(SOURCES.relativize(p) + ":" + (j + 1) + " " + lines.get(j).strip() + " (" + m.group(1)
                                + "; javadoc: \"" + doc.substring(0, Math.min(80, doc.length())) + "\")");
                    }
                }
            }
        }
        assertThat(methods).as("methods found that assert the BQL").isGreaterThan(40);
        assertThat(bad).as("methods that assert the BQL without saying so first").isEmpty();
    }

    /** The javadoc above line {@code at} (annotations skipped), as one line without its stars. */
    private static String javadocAbove(List<String> lines, int at) {
        int k = at - 1;
        while (k > 0 && lines.get(k).strip().startsWith("@")) {
            k--;
        }
        if (k < 0 || !lines.get(k).strip().endsWith("*/")) {
            return "";
        }
        int end = k;
        while (k > 0 && !lines.get(k).strip().startsWith("/**")) {
            k--;
        }
        StringBuilder b = new StringBuilder();
        for (String l : lines.subList(k, end + 1)) {
            b.append(l.strip().replaceAll("^/\\*\\*|\\*/$|^\\*", "").strip()).append(' ');
        }
        return b.toString().strip();
    }
}
