package org.livemig.trace;

import jdk.jfr.Category;
import jdk.jfr.Description;
import jdk.jfr.Event;
import jdk.jfr.Label;
import jdk.jfr.Name;
import jdk.jfr.Timespan;

/** One QMP command, from its request read to its reply queued; the event spans it. */
@Name("livemig.QmpCommand")
@Label("QMP Command")
@Category({"livemig", "monitor"})
public final class QmpCommandEvent extends Event {
    @Label("Command") public String command;
    @Label("Out of band") public boolean oob;
    @Label("Wait for the main loop")
    @Description("from the request read to its handler starting on main with the BQL (0 out of band)")
    @Timespan(Timespan.NANOSECONDS) public long wait;
    @Label("Error") public boolean error;
}
