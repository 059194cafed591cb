package org.livemig.relay;

import org.livemig.analyze.StreamEvents.Command;
import org.livemig.analyze.StreamVisitor;
import org.livemig.stream.QemuStream;
import org.livemig.stream.SectionHeader;

/**
 * Called on the relay's stream reader thread. Tells the main stream's {@link FaultyLink} where
 * the points its faults wait for end: each section's header, and the postcopy package.
 */
final class FaultPointVisitor implements StreamVisitor {
    /** Type byte, section id, then for START and FULL: idstr length and idstr, instance id, version. */
    private static final int NAMED_HEADER = 1 + 4 + 1 + 4 + 4;
    private static final int SHORT_HEADER = 1 + 4;
    /** Type byte, command, length, blob length. */
    private static final int PACKAGED_HEADER = 1 + 2 + 2 + 4;

    private final FaultyLink link;

    FaultPointVisitor(FaultyLink link) {
        this.link = link;
    }

    @Override
    public void sectionStart(SectionHeader h) {
        if (h.idstr() == null) {
            return;
        }
        boolean named = h.type() == QemuStream.SECTION_START || h.type() == QemuStream.SECTION_FULL;
        long end = h.offset() + (named ? NAMED_HEADER + h.idstr().length() : SHORT_HEADER);
        link.reached(FaultPoint.Kind.SECTION, h.idstr(), end);
    }

    /** Seen once the whole blob is in (sections inside it are seen then too, so late). */
    @Override
    public void packageStart(Command c, int blobLength) {
        link.reached(FaultPoint.Kind.PACKAGE, null, c.offset() + PACKAGED_HEADER + Integer.toUnsignedLong(blobLength));
    }
}
