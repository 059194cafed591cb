package org.livemig.trace;

import jdk.jfr.Category;
import jdk.jfr.Description;
import jdk.jfr.Event;
import jdk.jfr.Label;
import jdk.jfr.Name;
import jdk.jfr.Timespan;

/** Where the downtime of a precopy switchover went (QEMU's vmstate_downtime_checkpoint trace points). */
@Name("livemig.Switchover")
@Label("Switchover")
@Category({"livemig", "migration"})
@Description("Phases of the guest-stopped part of an outgoing migration, committed at its end (emitted through Trace)")
public final class SwitchoverEvent extends Event {
    @Label("Downtime") @Timespan(Timespan.NANOSECONDS) public long downtimeNanos;
    @Label("Stop vCPUs") @Timespan(Timespan.NANOSECONDS) public long stopNanos;
    @Label("CPU sync and device state") @Timespan(Timespan.NANOSECONDS) public long devicesNanos;
    @Label("Remaining RAM") @Timespan(Timespan.NANOSECONDS) public long ramNanos;
    @Label("Device state and EOF written") @Timespan(Timespan.NANOSECONDS) public long flushNanos;
    @Label("Destination acknowledged") @Timespan(Timespan.NANOSECONDS) public long ackNanos;
    @Label("Pending bytes at switchover") public long pendingBytes;
    @Label("Bandwidth estimate (bytes/s)") public long bandwidth;
}
