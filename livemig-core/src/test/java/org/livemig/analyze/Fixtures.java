package org.livemig.analyze;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.List;

/** The QEMU 7.2 fixtures in test resources (copied from shared/fixtures/qemu-7.2, see MANIFEST.md there). */
final class Fixtures {
    private Fixtures() {}

    /** Every stream fixture. */
    static final List<String> ALL = List.of(
            "pc-16M-paused.mig",
            "q35-32M-paused.mig",
            "pc-16M-pattern-memfile.mig",
            "pc-16M-dirtyloop-xbzrle.mig",
            "pc-16M-pattern-compress.mig",
            "pc-16M-ignore-shared-uuid.mig",
            "pc-16M-live-tcp-returnpath.mig");

    /** Fixtures analyze-migration.py could print {@code --dump state} for. */
    static final List<String> WITH_STATE = List.of(
            "pc-16M-paused.mig", "q35-32M-paused.mig", "pc-16M-pattern-memfile.mig");

    static Path path(String name) {
        try {
            var url = Fixtures.class.getResource("/qemu-7.2/" + name);
            if (url == null) {
                throw new IllegalStateException("missing test resource qemu-7.2/" + name);
            }
            return Path.of(url.toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    static byte[] bytes(String name) {
        try (InputStream in = Fixtures.class.getResourceAsStream("/qemu-7.2/" + name)) {
            if (in == null) {
                throw new IllegalStateException("missing test resource qemu-7.2/" + name);
            }
            return in.readAllBytes();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** A plain (non-seekable) channel over bytes, as a socket would deliver them. */
    static java.nio.channels.ReadableByteChannel channel(byte[] bytes) {
        return java.nio.channels.Channels.newChannel(new java.io.ByteArrayInputStream(bytes));
    }
}
