package org.livemig.trace;

import jdk.jfr.Category;
import jdk.jfr.DataAmount;
import jdk.jfr.Event;
import jdk.jfr.Label;
import jdk.jfr.Name;
import jdk.jfr.Timespan;

/** One COLO checkpoint on the primary or the secondary; the event spans it. */
@Name("livemig.ColoCheckpoint")
@Label("COLO Checkpoint")
@Category({"livemig", "colo"})
public final class ColoCheckpointEvent extends Event {
    @Label("Side") public String side;
    @Label("Checkpoint") public long number;
    @Label("Bytes") @DataAmount public long bytes;
    @Label("RAM bytes") @DataAmount public long ramBytes;
    @Label("Device state bytes") @DataAmount public long deviceBytes;
    @Label("Guest paused") @Timespan(Timespan.NANOSECONDS) public long pause;
}
