package org.livemig.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.InputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import picocli.CommandLine;

/** {@code livemig analyze} end to end through picocli, on the QEMU 7.2 fixtures of livemig-core's tests. */
class AnalyzeCommandTest {
    @TempDir
    Path dir;

    record Run(int status, String out, String err) {
    }

    static Run run(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        CommandLine cl = new CommandLine(new Main());
        cl.setOut(new PrintWriter(out));
        cl.setErr(new PrintWriter(err));
        int status = cl.execute(args);
        return new Run(status, out.toString(), err.toString());
    }

    /** Copies a fixture out of the livemig-core test jar. */
    Path fixture(String name) throws Exception {
        try (InputStream in = getClass().getResourceAsStream("/qemu-7.2/" + name)) {
            assertThat(in).as(name).isNotNull();
            Path p = dir.resolve(name);
            Files.copy(in, p);
            return p;
        }
    }

    String text(String name) throws Exception {
        try (InputStream in = getClass().getResourceAsStream("/qemu-7.2/" + name)) {
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
    }

    @Test
    void dumpStatePrintsWhatAnalyzeMigrationPyPrinted() throws Exception {
        Run r = run("analyze", fixture("pc-16M-paused.mig").toString(), "--dump", "state");
        assertThat(r.err()).isEmpty();
        assertThat(r.status()).isZero();
        assertThat(r.out()).isEqualTo(text("pc-16M-paused.mig.state.json"));
    }

    @Test
    void dumpDescPrintsWhatAnalyzeMigrationPyPrinted() throws Exception {
        Run r = run("analyze", "-d", "desc", fixture("q35-32M-paused.mig").toString());
        assertThat(r.status()).isZero();
        assertThat(r.out()).isEqualTo(text("q35-32M-paused.mig.desc.json"));
    }

    @Test
    void extractWritesBlocksAndState() throws Exception {
        Path out = dir.resolve("x");
        Run r = run("analyze", fixture("pc-16M-pattern-compress.mig").toString(), "--extract", out.toString());
        assertThat(r.status()).as(r.err()).isZero();
        assertThat(r.out()).isEmpty();
        assertThat(r.err()).contains("wrote 7 files");
        assertThat(Files.size(out.resolve("mem0"))).isEqualTo(16 << 20);
        byte[] mem = Files.readAllBytes(out.resolve("mem0"));
        assertThat(mem[0x100000 + 7]).isEqualTo((byte) 0); // page 256 holds 256 as a big-endian be64
        assertThat(mem[0x100000 + 6]).isEqualTo((byte) 1);
        assertThat(mem[0x7FFFFF]).isEqualTo((byte) 1);
        assertThat(Files.readString(out.resolve("state.json"))).contains("\"ram (2)\"");
    }

    @Test
    void malformedStreamIsOneLineAndStatus3() throws Exception {
        Path bad = dir.resolve("bad.mig");
        byte[] s = Files.readAllBytes(fixture("pc-16M-paused.mig"));
        Files.write(bad, java.util.Arrays.copyOf(s, 1000));
        Run r = run("analyze", bad.toString());
        assertThat(r.status()).isEqualTo(ExitCodes.FILE);
        assertThat(r.out()).isEmpty();
        assertThat(r.err().strip()).doesNotContain("\n").doesNotContain("Exception")
                .contains("stream truncated").contains("at byte offset").contains("in section ram");
    }

    @Test
    void notAStreamAndMissingFilesAreOneLine() throws Exception {
        Path notStream = dir.resolve("x.json");
        Files.writeString(notStream, "{\"page_size\": 4096}\n");
        Run r = run("analyze", notStream.toString());
        assertThat(r.status()).isEqualTo(ExitCodes.FILE);
        assertThat(r.err().strip()).doesNotContain("\n").contains("not a QEMU migration stream");
        r = run("analyze", dir.resolve("nope.mig").toString());
        assertThat(r.status()).isEqualTo(ExitCodes.FILE);
        assertThat(r.err().strip()).isEqualTo("livemig analyze: no such file: " + dir.resolve("nope.mig"));
        r = run("analyze", fixture("pc-16M-paused.mig").toString(), "--dump", "ram");
        assertThat(r.status()).isEqualTo(ExitCodes.USAGE);
        assertThat(r.err().strip()).doesNotContain("\n").contains("'state' or 'desc'");
    }

    @Test
    void vmstateDumpIsAccepted() throws Exception {
        Run r = run("analyze", fixture("pc-16M-paused.mig").toString(), "--vmstate",
                fixture("vmstate-dump-pc-i440fx-7.2.json").toString());
        assertThat(r.status()).isZero();
        assertThat(r.out()).isEqualTo(text("pc-16M-paused.mig.state.json"));
    }
}
