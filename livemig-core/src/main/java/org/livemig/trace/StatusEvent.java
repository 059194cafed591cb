package org.livemig.trace;

import jdk.jfr.Category;
import jdk.jfr.Description;
import jdk.jfr.Event;
import jdk.jfr.Label;
import jdk.jfr.Name;

/** A migration's status changed (QEMU's migrate_set_state trace point). */
@Name("livemig.MigrationStatus")
@Label("Migration Status")
@Category({"livemig", "migration"})
@Description("A migration's status changed, on the source or the destination")
public final class StatusEvent extends Event {
    @Label("Side") @Description("source or destination") public String side;
    @Label("From") public String from;
    @Label("To") public String to;
}
