package org.livemig.trace;

import jdk.jfr.Category;
import jdk.jfr.DataAmount;
import jdk.jfr.Description;
import jdk.jfr.Event;
import jdk.jfr.Label;
import jdk.jfr.Name;

/** One precopy pass over RAM ended with a dirty-bitmap sync; the event spans the pass. */
@Name("livemig.Pass")
@Label("Precopy Pass")
@Category({"livemig", "migration"})
@Description("A pass over RAM ended (dirty bitmap synced): what it sent and what the guest dirtied meanwhile")
public final class PassEvent extends Event {
    @Label("Pass") public long pass;
    @Label("Pages dirtied") public long pagesDirtied;
    @Label("Bytes sent") @DataAmount public long bytesSent;
    @Label("Bandwidth") @DataAmount(DataAmount.BYTES) @Description("bytes per second") public long bandwidth;
    @Label("Pending after sync") @DataAmount public long pendingBytes;
    @Label("Pass duration") @jdk.jfr.Timespan(jdk.jfr.Timespan.NANOSECONDS) public long passNanos;
}
