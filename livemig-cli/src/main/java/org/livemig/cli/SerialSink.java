package org.livemig.cli;

import java.io.IOException;
import java.io.OutputStream;
import org.livemig.machine.SerialOutput;

/** {@code run --serial}: where the guest's serial output goes (QEMU's -serial file:PATH, stdio, none). */
final class SerialSink implements SerialOutput, AutoCloseable {
    private final OutputStream out;

    private SerialSink(OutputStream out) {
        this.out = out;
    }

    static SerialSink open(String spec) throws IOException {
        if (spec.equals("none")) {
            return new SerialSink(null);
        }
        if (spec.equals("stdio")) {
            return new SerialSink(System.out);
        }
        if (spec.startsWith("file:") && spec.length() > 5) {
            return new SerialSink(java.nio.file.Files.newOutputStream(java.nio.file.Path.of(spec.substring(5)),
                    java.nio.file.StandardOpenOption.CREATE, java.nio.file.StandardOpenOption.APPEND));
        }
        throw new IllegalArgumentException("--serial takes file:PATH, stdio or none, not '" + spec + "'");
    }

    @Override
    public void write(byte b) {
        if (out == null) {
            return;
        }
        try {
            out.write(b); // unbuffered, as QEMU's file chardev: a reader sees each byte at once
            if (out == System.out) {
                out.flush();
            }
        } catch (IOException e) {
            // the output is gone (a full disk, a closed terminal): the guest goes on regardless
        }
    }

    @Override
    public void close() {
        if (out != null && out != System.out) {
            try {
                out.close();
            } catch (IOException e) {
                // nothing more to write
            }
        }
    }
}
