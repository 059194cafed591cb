package org.livemig.trace;

import jdk.jfr.Category;
import jdk.jfr.Description;
import jdk.jfr.Event;
import jdk.jfr.Label;
import jdk.jfr.Name;
import jdk.jfr.Timespan;

/** A postcopy page a vCPU waited for arrived: from its fault to the page placed. */
@Name("livemig.PageRequest")
@Label("Postcopy Page Request")
@Category({"livemig", "postcopy"})
@Description("A requested postcopy page was placed: how long the faulting vCPU waited")
public final class PageRequestEvent extends Event {
    @Label("Block") public String block;
    @Label("Offset") public long offset;
    @Label("Fault to placed") @Timespan(Timespan.NANOSECONDS) public long latency;
    @Label("Placed by") @Description("the thread that placed the page (mig/dst/preempt or mig/dst/listen)") public String placedBy;
}
