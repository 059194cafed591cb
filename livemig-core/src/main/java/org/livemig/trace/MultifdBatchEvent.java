package org.livemig.trace;

import jdk.jfr.Category;
import jdk.jfr.DataAmount;
import jdk.jfr.Event;
import jdk.jfr.Label;
import jdk.jfr.Name;

/** A multifd channel sent or received one packet; the event spans its IO. */
@Name("livemig.MultifdBatch")
@Label("Multifd Packet")
@Category({"livemig", "multifd"})
public final class MultifdBatchEvent extends Event {
    @Label("Channel") public int channel;
    @Label("Sending") public boolean sending;
    @Label("Pages") public int pages;
    @Label("Bytes") @DataAmount public long bytes;
    @Label("Sync") public boolean sync;
}
